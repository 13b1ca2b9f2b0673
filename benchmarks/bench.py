#!/usr/bin/env python3
"""The benchmark suite (`make bench`): every benchmark, one table, one JSON file.

Each benchmark starts its own real mail stack (Dovecot + SMTP front on 127.0.0.1,
helpdesk/testing/mailstack.py) and measures its baseline in the same run:

  ingest   `helpdesk run --once --only ingest` on N realistic letters vs a bare
           imapclient fetch + mail-parser script; then `run --once --only outbox`
           sending what was queued vs a bare aiosmtplib loop (SQLite and PostgreSQL)
  latency  daemon idle in IDLE: student's letter accepted by SMTP -> acknowledgement
           in the student's mailbox, median and p95, vs a bare SMTP->LMTP->IMAP delivery
  memory   peak RSS of `run --once --only ingest` draining a large and a small backlog
  sweep    the SLA sweep over 100,000 open appeals vs the bare indexed SELECT
  explain  `helpdesk explain --json` letters/s vs parse_letter alone

    python3 benchmarks/bench.py                  # everything, the issue's sizes
    python3 benchmarks/bench.py --quick          # tiny sizes: checks the suite works
    python3 benchmarks/bench.py --only ingest,latency --no-postgres
    python3 benchmarks/bench.py --profile ingest # + a pyinstrument profile of ingest

Results: benchmarks/out/results.json (and the profile files) unless --out says otherwise.
"""
from __future__ import annotations

import argparse
import json
import platform
import os
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

BENCHMARKS = ("ingest", "latency", "memory", "sweep", "explain")
DEFAULTS = {"letters": 2000, "latency_letters": 50, "memory_letters": 10_000,
            "memory_small": 2000, "appeals": 100_000, "explain_letters": 1000, "profile_letters": 2000}
QUICK = {"letters": 20, "latency_letters": 3, "memory_letters": 60, "memory_small": 20,
         "appeals": 1000, "explain_letters": 40, "profile_letters": 20}
HELP = {"letters": "letters for ingest/outbox", "latency_letters": "letters timed one by one",
        "memory_letters": "large backlog for peak RSS", "memory_small": "small backlog for peak RSS",
        "appeals": "open appeals for the SLA sweep", "explain_letters": "letters for explain",
        "profile_letters": "letters for --profile ingest"}
COLUMNS = ("benchmark", "helpdesk", "baseline", "ratio", "target", "met?")


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true",
                   help="tiny sizes (20 letters ...): shows the suite works, measures nothing")
    p.add_argument("--only", help=f"comma-separated benchmarks: {', '.join(BENCHMARKS)}")
    p.add_argument("--no-postgres", action="store_true", help="ingest/outbox on SQLite only")
    p.add_argument("--profile", choices=["ingest"], help="also profile this with pyinstrument")
    p.add_argument("--out", default=str(ROOT / "benchmarks" / "out"),
                   help="directory for results.json and profiles (default benchmarks/out)")
    for key, value in DEFAULTS.items():
        p.add_argument("--" + key.replace("_", "-"), type=int, default=None,
                       metavar="N", help=f"{HELP[key]} (default {value}; {QUICK[key]} with --quick)")
    return p


def _cell(value, unit: str = "") -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        value = (f"{value:.3f}" if abs(value) < 1 else f"{value:.2f}" if abs(value) < 10
                 else f"{value:.1f}" if abs(value) < 1000 else f"{value:,.0f}")
    return f"{value} {unit}".strip()


def table(rows: list[dict]) -> str:
    lines = []
    for r in rows:
        if r.get("skipped"):
            lines.append((r["benchmark"], "skipped: " + r["skipped"], "", "", "", "-"))
            continue
        unit = r.get("unit", "")
        met = {True: "yes", False: "NO", None: "-"}[r.get("met")]
        lines.append((r["benchmark"], _cell(r.get("helpdesk"), unit), _cell(r.get("baseline"), unit),
                      _cell(r.get("ratio")), r.get("target", "-"), met))
    widths = [max(len(str(x)) for x in col) for col in zip(COLUMNS, *lines)]
    fmt = lambda cells: "| " + " | ".join(str(c).ljust(w) for c, w in zip(cells, widths)) + " |"  # noqa: E731
    out = [fmt(COLUMNS), "|" + "|".join("-" * (w + 2) for w in widths) + "|"]
    return "\n".join(out + [fmt(line) for line in lines])


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    sizes = {k: getattr(args, k) if getattr(args, k) is not None else (QUICK if args.quick else DEFAULTS)[k]
             for k in DEFAULTS}
    chosen = [s.strip() for s in args.only.split(",")] if args.only else list(BENCHMARKS)
    unknown = [s for s in chosen if s not in BENCHMARKS]
    if unknown:
        print(f"bench: unknown benchmark(s) {', '.join(unknown)}; choose from {', '.join(BENCHMARKS)}",
              file=sys.stderr)
        return 2
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)

    def log(text: str) -> None:
        print(text, flush=True)

    from benchmarks import explain_rate, latency, memory, sla_sweep, throughput

    steps = {
        "ingest": lambda: throughput.run(sizes["letters"], postgres=not args.no_postgres, log=log),
        "latency": lambda: latency.run(sizes["latency_letters"], log=log),
        "memory": lambda: memory.run(sizes["memory_letters"], sizes["memory_small"], log=log),
        "sweep": lambda: sla_sweep.measure(sizes["appeals"], 2 if args.quick else 5, log=lambda t: log("  " + t)),
        "explain": lambda: explain_rate.measure(sizes["explain_letters"], log=lambda t: log("  " + t)),
    }
    began = time.perf_counter()
    rows, timings, failures = [], {}, {}
    for name in chosen:
        log(f"== {name}")
        t0 = time.perf_counter()
        try:
            rows += steps[name]()
        except Exception as exc:  # noqa: BLE001 - one broken benchmark must not hide the others
            failures[name] = f"{type(exc).__name__}: {exc}"
            rows.append({"benchmark": name, "skipped": f"FAILED ({type(exc).__name__}: "
                         f"{str(exc).strip().splitlines()[0] if str(exc).strip() else ''})", "met": None})
            log(f"  {name} FAILED: {exc}")
        timings[name] = round(time.perf_counter() - t0, 1)
        log(f"  ({timings[name]} s)")

    profile = None
    if args.profile == "ingest":
        from benchmarks import profiling

        log("== profile ingest (pyinstrument)")
        t0 = time.perf_counter()
        profile = profiling.run(sizes["profile_letters"], out, log=log)
        timings["profile"] = round(time.perf_counter() - t0, 1)
        log(f"  top {len(profile['self'])} by self time of {profile['total_seconds']} s:")
        for name, seconds in profile["self"]:
            log(f"    {seconds:8.3f} s  {name}")
        log("  self time by package (a C call counts for its caller's package):")
        for name, seconds in profile["self_by_package"]:
            log(f"    {seconds:8.3f} s  {name}")
        log("  helpdesk functions by inclusive time:")
        for name, seconds in profile["helpdesk_inclusive"]:
            log(f"    {seconds:8.3f} s  {name}")
        log(f"  written: {', '.join(profile['files'])}")

    total = time.perf_counter() - began
    print()
    print(table(rows))
    print(f"\ntotal wall time {total:.0f} s ({', '.join(f'{k} {v:g} s' for k, v in timings.items())})")
    result = {
        "when": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "machine": {"python": platform.python_version(), "platform": platform.platform(),
                    "cpus": os.cpu_count()},
        "quick": args.quick, "sizes": sizes, "benchmarks": chosen,
        "rows": rows, "seconds": timings, "total_seconds": round(total, 1),
        "failures": failures, "profile": profile,
    }
    path = out / "results.json"
    path.write_text(json.dumps(result, ensure_ascii=False, indent=2) + "\n", encoding="utf-8")
    print(f"results written to {path}")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
