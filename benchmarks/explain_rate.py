#!/usr/bin/env python3
"""Letters per second of `helpdesk explain --json`, against parsing alone.

Both sides run in this process over the same letters (the development corpus repeated
to --letters files), read from disk each time:
- baseline: `parse_letter` on every file (decoding MIME, charsets, HTML): the work no
  explanation can skip;
- explain: one `helpdesk explain --json FILE...` call over all of them (SQLite roster,
  parse, machine-letter checks, thread lookup, classification, routing, JSON out).
Both are measured warm (pymorphy3's dictionaries loaded by a first small call, which is
timed and printed separately). Printed as letters per second and as the ratio.

    python benchmarks/explain_rate.py [--letters 1000] [--corpus tests/data/letters-dev]
"""
from __future__ import annotations

import argparse
import contextlib
import io
import json
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from helpdesk.cli import main as helpdesk  # noqa: E402
from helpdesk.understand.parse import parse_letter  # noqa: E402


class _Null(io.TextIOBase):
    def write(self, text: str) -> int:
        return len(text)


def _config(directory: Path, school: str) -> Path:
    path = directory / "config.toml"
    path.write_text(
        f'[school]\nname = "Школа"\naddress = "{school}"\ntimezone = "Europe/Moscow"\n\n'
        '[imap]\nhost = "127.0.0.1"\n\n[smtp]\nhost = "127.0.0.1"\n\n'
        '[database]\nurl = "sqlite:///bench.sqlite3"\n\n[hours]\nstart = "08:00"\nend = "17:00"\n',
        encoding="utf-8",
    )
    return path


def _timed(fn) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def measure(letters: int = 1000, corpus: str | Path = ROOT / "tests" / "data" / "letters-dev",
            school: str = "lyceum21@lyceum21-edu.test", log=print) -> list[dict]:
    """Time both sides over ``letters`` files and return the table row."""
    corpus = Path(corpus)
    cases = json.loads((corpus / "cases.json").read_text(encoding="utf-8"))
    paths = [str(corpus / "cases" / c["file"]) for c in cases]
    files = [paths[i % len(paths)] for i in range(letters)]

    with tempfile.TemporaryDirectory() as tmp:
        config = str(_config(Path(tmp), school))
        with contextlib.redirect_stdout(_Null()), contextlib.redirect_stderr(_Null()):
            assert helpdesk(["--config", config, "roster", "import", str(corpus / "roster")]) == 0
            cold = _timed(lambda: helpdesk(["--config", config, "explain", "--json", paths[0]]))

            def parse_all() -> None:
                for path in files:
                    parse_letter(Path(path).read_bytes())

            def explain_all() -> None:
                assert helpdesk(["--config", config, "explain", "--json", *files]) == 0

            parse_all()  # warm the file cache the same way for both sides
            base = _timed(parse_all)
            took = _timed(explain_all)

    n = len(files)
    base_rate, rate = n / base, n / took
    log(f"letters: {n} ({len(paths)} corpus letters repeated)")
    log(f"first explain call (loads pymorphy3, builds the roster indexes): {cold * 1000:.0f} ms")
    log(f"baseline  parse_letter only:     {base_rate:8.0f} letters/s  ({base:.2f} s)")
    log(f"helpdesk  explain --json:        {rate:8.0f} letters/s  ({took:.2f} s)")
    log(f"ratio explain / parse-only:      {rate / base_rate:8.2f}")
    return [{"benchmark": f"explain --json, {n} letters (vs parse_letter only)", "unit": "letters/s",
             "helpdesk": round(rate, 1), "baseline": round(base_rate, 1),
             "ratio": round(rate / base_rate, 3), "target": "-", "met": None,
             "first_call_ms": round(cold * 1000)}]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--letters", type=int, default=1000)
    ap.add_argument("--corpus", default=str(ROOT / "tests" / "data" / "letters-dev"))
    ap.add_argument("--school", default="lyceum21@lyceum21-edu.test")
    args = ap.parse_args()
    measure(args.letters, args.corpus, args.school)
    return 0


if __name__ == "__main__":
    sys.exit(main())
