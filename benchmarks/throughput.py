"""Ingest and outbox throughput of the real CLI against bare baselines, per database.

For each database (SQLite; PostgreSQL when reachable) on a mail stack of its own:

1. APPEND the realistic letters (benchmarks/letters.py) to the school's INBOX;
2. baseline: ``bare.py fetch`` (imapclient BODY.PEEK[] in batches + mail-parser);
3. ``helpdesk run --once --only ingest`` (fetch, parse, classify, route, store the
   appeal and queue its letters; no sending);
4. baseline: ``bare.py send``, the letters helpdesk queued (same bytes, same
   recipients, so the same sizes) over one aiosmtplib connection to the same front;
5. ``helpdesk run --once --only outbox`` sending the queued letters.

Every side runs as its own process and is timed from spawn to exit.
"""
from __future__ import annotations

import pickle
import re
import sys
import tempfile
from pathlib import Path

from benchmarks import common
from benchmarks.letters import SCHOOL, build, senders

INGEST_TARGET = 0.5
OUTBOX_TARGET = 0.8
BARE = str(Path(__file__).with_name("bare.py"))


def _queued(config: Path) -> list[tuple[str, list[str], bytes]]:
    """The letters helpdesk queued, as (mail_from, recipients, raw)."""
    from helpdesk import app
    from helpdesk.config import load_config
    from helpdesk.store.models import Outgoing, database

    app.open_db(load_config(config), migrate=False)
    try:
        return [(o.mail_from, o.recipient_list(), bytes(o.raw))
                for o in Outgoing.select().where(Outgoing.status == "queued").order_by(Outgoing.id)]
    finally:
        database.close()


def _fetched(summary: str) -> int:
    found = re.search(r"fetched (\d+) new letter", summary)
    return int(found.group(1)) if found else 0


def _sent(summary: str) -> int:
    found = re.search(r"sent (\d+),", summary)
    return int(found.group(1)) if found else 0


def one_database(label: str, db_url: str, letters, work: Path, log=print) -> list[dict]:
    rows = []
    n = len(letters)
    with common.mail_stack(senders(letters)) as stack:
        took = common.append_letters(stack, letters)
        log(f"  [{label}] appended {n} letters in {took:.1f} s")
        base = common.run_process([sys.executable, BARE, "fetch", stack.host, str(stack.imap_port),
                                   SCHOOL, common.PASSWORD])
        assert int(base.stdout.split()[-1]) == n, base.stdout
        config = common.write_config(work, stack, db_url)
        ours = common.run_process(common.helpdesk_argv(config, "run", "--once", "--only", "ingest"))
        fetched = _fetched(ours.stdout)
        log(f"  [{label}] ingest: {ours.stdout.strip()}")
        if fetched != n:
            raise RuntimeError(f"helpdesk fetched {fetched} of {n} letters: {ours.stdout}{ours.stderr[-2000:]}")
        rows.append(row(f"ingest, {n} letters, {label}", "letters/s", n / ours.seconds,
                        n / base.seconds, INGEST_TARGET,
                        helpdesk_seconds=ours.seconds, baseline_seconds=base.seconds,
                        helpdesk_max_rss_mb=round(ours.max_rss_mb, 1)))

        queued = _queued(config)
        batch = work / "queued.pickle"
        batch.write_bytes(pickle.dumps(queued))
        size = sum(len(q[2]) for q in queued) / max(1, len(queued))
        base = common.run_process([sys.executable, BARE, "send", stack.host, str(stack.smtp_port),
                                   str(batch)])
        ours = common.run_process(common.helpdesk_argv(config, "run", "--once", "--only", "outbox"))
        sent = _sent(ours.stdout)
        log(f"  [{label}] outbox: {ours.stdout.strip()}")
        if sent != len(queued):
            raise RuntimeError(f"helpdesk sent {sent} of {len(queued)} queued letters: "
                               f"{ours.stdout}{ours.stderr[-2000:]}")
        rows.append(row(f"outbox, {sent} letters (~{size / 1024:.1f} KiB), {label}", "letters/s",
                        sent / ours.seconds, len(queued) / base.seconds, OUTBOX_TARGET,
                        helpdesk_seconds=ours.seconds, baseline_seconds=base.seconds))
    return rows


def row(name: str, unit: str, ours: float, base: float, target: float, **details) -> dict:
    """A table row where higher is better and the target is a minimum ratio."""
    ratio = ours / base if base else 0.0
    return {"benchmark": name, "unit": unit, "helpdesk": round(ours, 1), "baseline": round(base, 1),
            "ratio": round(ratio, 3), "target": f"ratio >= {target}", "met": ratio >= target,
            **{k: round(v, 3) if isinstance(v, float) else v for k, v in details.items()}}


def run(count: int, *, postgres: bool = True, log=print) -> list[dict]:
    letters = build(count)
    rows = []
    with tempfile.TemporaryDirectory(prefix="hd-bench-") as tmp:
        work = Path(tmp) / "sqlite"
        work.mkdir()
        rows += one_database("SQLite", f"sqlite:///{work / 'helpdesk.sqlite3'}", letters, work, log)
        if not postgres:
            return rows
        why = common.postgres_reachable()
        if why:
            log(f"  skipping PostgreSQL: {why}")
            rows.append({"benchmark": f"ingest/outbox, {count} letters, PostgreSQL",
                         "skipped": why, "met": None})
            return rows
        work = Path(tmp) / "postgres"
        work.mkdir()
        with common.postgres_database() as url:
            rows += one_database("PostgreSQL", url, letters, work, log)
    return rows
