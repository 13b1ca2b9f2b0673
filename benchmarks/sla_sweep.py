#!/usr/bin/env python3
"""Cost of the SLA sweep over 100,000 open appeals, against a bare indexed SELECT.

Seeds a fresh SQLite database (bulk inserts) with N open appeals and their
ladder steps as ``schedule_steps`` plans them, then times, in this process:

- baseline: the bare indexed SELECT of the due steps, the same query shape the
  sweep uses (``state = 'pending' AND due_at <= now``, joined to the appeal);
- the sweep when nothing is due (the cost of calling it every daemon cycle);
- the sweep when 1% of the appeals have a step due (letters rendered, queued,
  events written, one transaction), on a fresh copy of the seeded database.

    python benchmarks/sla_sweep.py [--appeals 100000] [--repeat 5]
"""
from __future__ import annotations

import argparse
import shutil
import statistics
import sys
import tempfile
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path
from zoneinfo import ZoneInfo

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from helpdesk import app  # noqa: E402
from helpdesk.config import load_config  # noqa: E402
from helpdesk.roster.reader import read_roster  # noqa: E402
from helpdesk.roster.store import save_roster  # noqa: E402
from helpdesk.sla.ladder import ladder_from_config, level_times  # noqa: E402
from helpdesk.sla.plan import MARK_KEY, SAFETY_MARGIN  # noqa: E402
from helpdesk.sla.sweep import due_query, sweep  # noqa: E402
from helpdesk.store.db import set_meta  # noqa: E402
from helpdesk.store.models import Outgoing, database, to_utc_naive  # noqa: E402

ROSTER = ROOT / "tests" / "data" / "letters-dev" / "roster"
MSK = ZoneInfo("Europe/Moscow")
CONFIG = """\
[school]
name = "Бенчмарк"
address = "school@bench.test"
timezone = "Europe/Moscow"
[imap]
host = "127.0.0.1"
security = "none"
[smtp]
host = "127.0.0.1"
security = "none"
[database]
url = "sqlite:///{db}"
[hours]
start = "08:00"
end = "17:00"
"""


def seed(config, count: int, start: datetime) -> datetime:
    """N open appeals received one a minute from ``start``, their steps planned.
    Returns the latest due time of any step."""
    calendar = app.work_calendar(config)
    ladder = ladder_from_config(config)
    roster = read_roster(ROSTER)
    save_roster(roster)
    students = [s for s in roster.students]
    teachers = [a.teacher_email for a in roster.assignments]
    plans: dict[datetime, list] = {}
    appeals, steps = [], []
    latest = start
    for i in range(count):
        # 400 distinct receipt times: the calendar is consulted per distinct time only.
        received = start + timedelta(minutes=(i % 400) * 7)
        if received not in plans:
            due = calendar.deadline(received).due
            plans[received] = [due, level_times(ladder, calendar, received, due, 1.0)]
        due, times = plans[received]
        student = students[i % len(students)]
        appeals.append({
            "number": i + 1, "status": "open", "sender": student.email, "sender_role": "student",
            "student": student.email, "class_name": student.class_name, "subject": "алгебра",
            "category": "subject_help", "assignee": teachers[i % len(teachers)],
            "title": f"вопрос {i}", "received_at": to_utc_naive(received),
            "due_at": to_utc_naive(due), "updated_at": to_utc_naive(received),
            "sender_name": "", "triage": 0, "confidence": 1.0, "reasons": "[]",
        })
        for level, lv, at in times:
            steps.append({"appeal_id": i + 1, "level": level, "kind": lv.kind, "state": "pending",
                          "planned_for": to_utc_naive(due), "due_at": to_utc_naive(at), "note": ""})
            latest = max(latest, at)
    def bulk(table: str, rows: list[dict]) -> None:
        columns = list(rows[0])
        sql = (f'INSERT INTO "{table}" ({", ".join(columns)}) '
               f'VALUES ({", ".join("?" for _ in columns)})')
        database.cursor().executemany(sql, ([str(r[c]) if isinstance(r[c], datetime) else r[c]
                                              for c in columns] for r in rows))

    with database.atomic():
        bulk("appeal", appeals)
        bulk("sla_step", steps)
        newest = max(a["updated_at"] for a in appeals)
        set_meta(MARK_KEY, newest.replace(tzinfo=timezone.utc).isoformat())
    return latest


def timed(fn, repeat: int) -> float:
    runs = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        runs.append(time.perf_counter() - t0)
    return statistics.median(runs)


def measure(appeals: int = 100_000, repeat: int = 5, log=print) -> list[dict]:
    """Seed, time, and return the two table rows (nothing due; 1% due)."""
    args = argparse.Namespace(appeals=appeals, repeat=repeat)
    with tempfile.TemporaryDirectory(prefix="sla-bench-") as tmp:
        base = Path(tmp)
        db = base / "seed.sqlite3"
        (base / "config.toml").write_text(CONFIG.format(db=db), encoding="utf-8")
        config = load_config(base / "config.toml")
        handle = app.open_db(config)
        start = datetime(2026, 12, 1, 8, 0, tzinfo=MSK)
        t0 = time.perf_counter()
        seed(config, args.appeals, start)
        seeded = time.perf_counter() - t0
        steps = handle.execute_sql("SELECT COUNT(*) FROM sla_step").fetchone()[0]
        log(f"seeded {args.appeals} open appeals, {steps} steps in {seeded:.1f} s (SQLite, {db.stat().st_size >> 20} MiB)")
        plan = handle.execute_sql(
            "EXPLAIN QUERY PLAN " + due_query(start).sql()[0], due_query(start).sql()[1]
        ).fetchall()
        log("query plan: " + "; ".join(row[-1] for row in plan))

        recent = handle.execute_sql(
            "SELECT COUNT(*) FROM appeal WHERE updated_at >= ?",
            (str(to_utc_naive(datetime.fromisoformat(
                handle.execute_sql("SELECT value FROM meta WHERE key = ?", (MARK_KEY,)).fetchone()[0]
            ) - SAFETY_MARGIN)),),
        ).fetchone()[0]
        log(f"every sweep re-checks the {recent} appeals changed in the last "
              f"{SAFETY_MARGIN.seconds // 60} minutes before the mark")
        quiet = start - timedelta(hours=1)  # before the first step: nothing due
        steps_by_due = [
            r[0] for r in handle.execute_sql("SELECT due_at FROM sla_step ORDER BY due_at").fetchall()
        ]
        busy_naive = steps_by_due[max(0, args.appeals // 100 - 1)]
        busy = datetime.fromisoformat(str(busy_naive)).replace(tzinfo=timezone.utc)
        database.close()

        def open_copy(name: str):
            path = base / name
            shutil.copy(db, path)
            for suffix in ("-wal", "-shm"):
                if Path(str(db) + suffix).exists():
                    shutil.copy(Path(str(db) + suffix), Path(str(path) + suffix))
            (base / f"{name}.toml").write_text(CONFIG.format(db=path), encoding="utf-8")
            cfg = load_config(base / f"{name}.toml")
            app.open_db(cfg)
            return cfg

        cfg = open_copy("quiet.sqlite3")

        def bare(now: datetime):
            sql, params = due_query(now).sql()
            return lambda: database.execute_sql(sql, params).fetchall()

        base_quiet = timed(bare(quiet), args.repeat * 4)
        sweep_quiet = timed(lambda: sweep(cfg, quiet), args.repeat * 4)
        base_busy = timed(bare(busy), args.repeat)
        due_rows = len(bare(busy)())
        database.close()

        busy_runs, fired, letters = [], 0, 0
        for i in range(args.repeat):
            cfg = open_copy(f"busy{i}.sqlite3")
            t0 = time.perf_counter()
            result = sweep(cfg, busy)
            busy_runs.append(time.perf_counter() - t0)
            fired, letters = len(result.fired), Outgoing.select().count()
            database.close()
        sweep_busy = statistics.median(busy_runs)

    ms = lambda s: f"{s * 1000:8.2f} ms"  # noqa: E731
    log(f"nothing due: baseline SELECT {ms(base_quiet)}, sweep {ms(sweep_quiet)}, "
        f"ratio {sweep_quiet / base_quiet:.1f}x")
    log(f"1% due ({due_rows} steps): baseline SELECT {ms(base_busy)}, sweep {ms(sweep_busy)} "
        f"({fired} steps fired, {letters} letters queued), ratio {sweep_busy / base_busy:.1f}x")
    return [
        {"benchmark": f"SLA sweep, {args.appeals} open appeals, nothing due", "unit": "ms",
         "helpdesk": round(sweep_quiet * 1000, 2), "baseline": round(base_quiet * 1000, 3),
         "ratio": round(sweep_quiet / base_quiet, 1), "target": "-", "met": None},
        {"benchmark": f"SLA sweep, {args.appeals} open appeals, 1% due ({fired} steps fired)",
         "unit": "ms", "helpdesk": round(sweep_busy * 1000, 1), "baseline": round(base_busy * 1000, 2),
         "ratio": round(sweep_busy / base_busy, 1), "target": "-", "met": None,
         "letters_queued": letters},
    ]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--appeals", type=int, default=100_000)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    measure(args.appeals, args.repeat)
    return 0


if __name__ == "__main__":
    sys.exit(main())
