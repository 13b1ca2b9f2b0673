"""The operator's command line: ``helpdesk COMMAND``.

Every command prints plain English for the operator (letters and reasons are in
Russian, as the school reads them) and exits non-zero with one clear line when
something is wrong, never with a traceback for an expected problem.
"""
from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import sys
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

from . import __version__, app
from .config import Config, ConfigError, load_config, write_default_config
from .store.db import DatabaseError, redact

EXIT_USAGE = 2
EXIT_FAILURE = 1


class CliError(Exception):
    """An expected problem: printed as one line, exit code 1."""


def _config(args) -> Config:
    return load_config(args.config)


def _db(config: Config):
    return app.open_db(config)


def _iso(value, tz: str) -> str | None:
    from .store.models import as_aware

    value = as_aware(value)
    return value.astimezone(ZoneInfo(tz)).isoformat() if value else None


def _emit(args, rows: list[dict], columns: list[str]) -> None:
    if args.json:
        for row in rows:
            print(json.dumps(row, ensure_ascii=False))
        return
    if not rows:
        print("(nothing)")
        return
    def cell(row: dict, column: str) -> str:
        value = row.get(column)
        return "-" if value is None or value == "" else str(value)

    widths = {c: max(len(c), *(len(cell(r, c)) for r in rows)) for c in columns}
    print("  ".join(c.ljust(widths[c]) for c in columns))
    for r in rows:
        print("  ".join(cell(r, c).ljust(widths[c]) for c in columns))


# --- init / roster / check ---------------------------------------------------------


def cmd_init(args) -> int:
    path = Path(args.config or os.environ.get("HELPDESK_CONFIG") or "config.toml")
    if path.exists():
        print(f"{path}: exists, kept as it is")
    else:
        overrides = {k: v for k, v in (("name", args.name), ("address", args.address),
                                        ("database_url", args.database)) if v}
        write_default_config(path, **overrides)
        print(f"{path}: written; edit the [imap] and [smtp] sections, then run 'helpdesk check'")
    config = load_config(path)
    from .store.db import schema_version

    db = _db(config)
    print(f"database {redact(config.database.url)}: schema version {schema_version(db)}")
    return 0


def cmd_roster_import(args) -> int:
    from .roster.reader import RosterError, read_roster
    from .roster.store import save_roster

    config = _config(args)
    try:
        roster = read_roster(args.directory)
    except RosterError as exc:
        for error in exc.errors:
            print(error, file=sys.stderr)
        print(f"roster not imported: {len(exc.errors)} problem(s); nothing was changed", file=sys.stderr)
        return EXIT_FAILURE
    _db(config)
    summary = save_roster(roster)
    print(f"roster imported: {summary}")
    if not roster.with_role("deputy"):
        print("warning: no staff member has the role 'deputy'; undecidable letters need one", file=sys.stderr)
    return 0


def cmd_check(args) -> int:
    from .ingest.imap import Mailbox, MailboxError
    from .outbox.sender import probe
    from .roster.store import load_roster

    config = _config(args)
    ok = True

    def report(name: str, good: bool, detail: str) -> None:
        nonlocal ok
        ok = ok and good
        print(f"{'ok  ' if good else 'FAIL'} {name}: {detail}")

    for problem in config.problems():
        report("config", False, problem)
    for warning in config.warnings():
        print(f"warn config: {warning}")
    try:
        db = _db(config)
        roster = load_roster()
        report("database", True, f"{redact(config.database.url)} ({len(roster.students)} students, "
               f"{len(roster.staff)} staff)")
        if not roster.staff:
            report("roster", False, "empty: run 'helpdesk roster import DIR'")
        elif not roster.with_role("deputy"):
            report("roster", False, "nobody has the role 'deputy' (the last fallback for routing)")
        db.close()
    except (DatabaseError, Exception) as exc:  # noqa: BLE001 - reported, not raised
        report("database", False, str(exc))
    try:
        with Mailbox(app.imap_settings(config)) as mailbox:
            report("imap", True, f"{config.imap.host}:{config.imap.port}, folder {config.imap.folder!r}, "
                   f"UIDVALIDITY {mailbox.uidvalidity}, IDLE "
                   f"{'yes' if b'IDLE' in mailbox.capabilities else 'no (polling)'}")
    except MailboxError as exc:
        report("imap", False, str(exc))
    try:
        report("smtp", True, asyncio.run(probe(app.smtp_settings(config))))
    except Exception as exc:  # noqa: BLE001
        report("smtp", False, f"{config.smtp.host}:{config.smtp.port}: {exc}")
    print("all good" if ok else "problems found")
    return 0 if ok else EXIT_FAILURE


# --- run ---------------------------------------------------------------------------------


def _school_time(text: str, tz: str) -> datetime:
    """An ISO date-time; without an offset it is the school's local time."""
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise CliError(f"not a date and time: {text!r} (use e.g. 2026-12-01T15:00 or "
                       "'2026-12-01 15:00+03:00')") from None
    return moment if moment.tzinfo else moment.replace(tzinfo=ZoneInfo(tz))


def cmd_run(args) -> int:
    from .daemon import STAGES, Daemon

    config = _config(args)
    only = tuple(s.strip() for s in args.only.split(",")) if args.only else STAGES
    unknown = [s for s in only if s not in STAGES]
    if unknown:
        raise CliError(f"--only: unknown stage(s) {', '.join(unknown)}; choose from {', '.join(STAGES)}")
    _db(config)
    now = None
    if args.now:
        if not args.once:
            raise CliError("--now goes with --once (a fixed clock for checking reminders by hand)")
        now = _school_time(args.now, app.tz_name(config))
    daemon = Daemon(config, only, now=now)
    if args.once:
        result = daemon.run_once()
        print(result.summary())
        for error in result.errors:
            print(f"warning: {error}", file=sys.stderr)
        return 0
    daemon.run_forever()
    return 0


# --- explain ------------------------------------------------------------------------------


def _explain_one(path: str, roster, school_address: str, find_thread, absences=(), today=None) -> dict:
    from .decide import decide
    from .store.threads import find_service_letter
    from .understand.parse import UnparseableLetter, parse_letter

    raw = Path(path).read_bytes()
    try:
        letter = parse_letter(raw)
    except UnparseableLetter as exc:
        return {"file": path, "kind": None, "sender_role": None, "category": None, "class": None,
                "subject": None, "assignee": None,
                "reasons": [f"Письмо не удалось разобрать: {exc.reason}; оно будет отложено в карантин."]}
    v = decide(letter, roster, find_thread, school_address=school_address, absences=absences,
               today=today, find_service=find_service_letter)
    c, d = v.classification, v.decision
    return {
        "file": path,
        "kind": v.kind,
        "sender_role": v.sender_role,
        "category": c.category if c else None,
        "class": c.class_name if c else None,
        "subject": d.subject if d else None,
        "assignee": v.assignee,
        "reasons": list(v.reasons),
    }


def cmd_explain(args) -> int:
    from .roster.store import load_roster
    from .routing.store import load_absences
    from .store.threads import find_thread

    config = _config(args)
    _db(config)
    roster = load_roster()
    today = app.school_today(config)
    absences = load_absences(today)
    status = 0
    for path in args.files:
        if not Path(path).is_file():
            print(f"{path}: no such file", file=sys.stderr)
            status = EXIT_FAILURE
            continue
        row = _explain_one(path, roster, config.school.address, find_thread, absences, today)
        if args.json:
            print(json.dumps(row, ensure_ascii=False))
            continue
        print(f"{path}:")
        for key in ("kind", "sender_role", "category", "class", "subject", "assignee"):
            print(f"  {key:12} {row[key] if row[key] is not None else '-'}")
        print("  why:")
        for reason in row["reasons"]:
            print(f"    - {reason}")
    return status


# --- appeals / letters ---------------------------------------------------------------------


def _appeal_row(appeal, tz: str, now) -> dict:
    from .store.models import as_aware

    status = appeal.status
    due = as_aware(appeal.due_at)
    overdue = status == "open" and due is not None and due < now
    return {
        "number": appeal.number,
        "status": status,
        "overdue": overdue,
        "sender": appeal.sender,
        "sender_role": appeal.sender_role,
        "student": appeal.student,
        "class": appeal.class_name,
        "subject": appeal.subject,
        "category": appeal.category,
        "assignee": appeal.assignee,
        "triage": appeal.triage,
        "title": appeal.title,
        "received_at": _iso(appeal.received_at, tz),
        "due_at": _iso(appeal.due_at, tz),
        "answered_at": _iso(appeal.answered_at, tz),
        "closed_at": _iso(appeal.closed_at, tz),
    }


def cmd_appeals_list(args) -> int:
    from datetime import timezone

    from .store.models import Appeal, utcnow

    config = _config(args)
    _db(config)
    tz = app.tz_name(config)
    now = datetime.now(timezone.utc)
    query = Appeal.select().order_by(Appeal.number)
    if args.status == "overdue":
        query = query.where((Appeal.status == "open") & (Appeal.due_at < utcnow()))
    elif args.status:
        query = query.where(Appeal.status == args.status)
    rows = [_appeal_row(a, tz, now) for a in query]
    if args.json:
        _emit(args, rows, [])
        return 0
    table = [
        r | {"status": r["status"] + ("*" if r["overdue"] else ""),
             "due": (r["due_at"] or "")[:16].replace("T", " ")}
        for r in rows
    ]
    _emit(args, table, ["number", "status", "class", "subject", "category", "assignee", "due", "sender"])
    if any(r["overdue"] for r in rows):
        print("* overdue")
    return 0


def cmd_appeals_show(args) -> int:
    from datetime import timezone

    from .store.models import Appeal, Event, Letter, Outgoing

    config = _config(args)
    _db(config)
    tz = app.tz_name(config)
    appeal = Appeal.get_or_none(Appeal.number == args.number)
    if appeal is None:
        raise CliError(f"no appeal number {args.number}")
    row = _appeal_row(appeal, tz, datetime.now(timezone.utc))
    row["reasons"] = appeal.reason_list()
    row["letters"] = [
        {"id": l.id, "kind": l.kind, "received_at": _iso(l.received_at, tz), "message_id": l.message_id}
        for l in Letter.select().where(Letter.appeal == appeal.number).order_by(Letter.id)
    ]
    row["outgoing"] = [
        {"id": o.id, "kind": o.kind, "to": o.recipient_list(), "status": o.status,
         "sent_at": _iso(o.sent_at, tz)}
        for o in Outgoing.select().where(Outgoing.appeal == appeal.number).order_by(Outgoing.id)
    ]
    row["events"] = [
        {"at": _iso(e.at, tz), "kind": e.kind, "message": e.message}
        for e in Event.select().where(Event.appeal == appeal.number).order_by(Event.id)
    ]
    if args.json:
        print(json.dumps(row, ensure_ascii=False))
        return 0
    print(f"Appeal № {appeal.number}: {row['status']}{' (OVERDUE)' if row['overdue'] else ''}")
    for key in ("title", "sender", "sender_role", "student", "class", "subject", "category",
                "assignee", "triage", "received_at", "due_at", "answered_at", "closed_at"):
        print(f"  {key:12} {row[key] if row[key] not in (None, '') else '-'}")
    print("  why:")
    for reason in row["reasons"]:
        print(f"    - {reason}")
    print("  letters in:")
    for l in row["letters"]:
        print(f"    #{l['id']} {l['kind']} {l['received_at']}")
    print("  letters out:")
    for o in row["outgoing"]:
        print(f"    #{o['id']} {o['kind']} -> {', '.join(o['to'])}: {o['status']} {o['sent_at'] or ''}")
    print("  events:")
    for e in row["events"]:
        print(f"    {e['at'][:19]} {e['kind']}: {e['message']}")
    return 0


def cmd_letters_list(args) -> int:
    from .store.models import Letter

    config = _config(args)
    _db(config)
    tz = app.tz_name(config)
    query = Letter.select(
        Letter.id, Letter.message_id, Letter.uid, Letter.kind, Letter.appeal, Letter.status,
        Letter.reason, Letter.received_at, Letter.sender,
    ).order_by(Letter.id)
    if args.status:
        query = query.where(Letter.status == args.status)
    rows = [
        {
            "id": l.id, "message_id": l.message_id, "uid": l.uid, "kind": l.kind,
            "appeal": l.appeal_id, "status": l.status, "reason": l.reason,
            "received_at": _iso(l.received_at, tz), "sender": l.sender,
        }
        for l in query
    ]
    _emit(args, rows, ["id", "uid", "status", "kind", "appeal", "sender"])
    return 0


# --- calendar --------------------------------------------------------------------------------


def _calendar(args):
    try:
        config = _config(args)
        return app.work_calendar(config)
    except ConfigError:
        if args.config or os.environ.get("HELPDESK_CONFIG") or Path("config.toml").exists():
            raise
        from .sla.calendar import WorkCalendar

        return WorkCalendar()  # no config: Moscow time, 08:00-17:00, five-day week


def cmd_calendar(args) -> int:
    report = _calendar(args).production_calendar(args.year)
    if args.json:
        print(json.dumps(report, ensure_ascii=False))
        return 0
    print(f"Production calendar {report['year']} (five-day 40-hour week)")
    print("month  days  hours  shortened")
    for m in report["months"]:
        print(f"{m['month']:5}  {m['working_days']:4}  {m['working_hours']:5}  {', '.join(m['shortened']) or '-'}")
    print(f"year   {report['working_days']:4}  {report['working_hours']:5}")
    return 0


def cmd_deadline(args) -> int:
    calendar = _calendar(args)
    tz = calendar.hours.timezone
    received = _school_time(args.datetime, tz)
    deadline = calendar.deadline(received)
    row = {
        "received": received.isoformat(),
        "due": deadline.due.astimezone(ZoneInfo(tz)).isoformat(),
        "reasons": list(deadline.reasons),
    }
    if args.json:
        print(json.dumps(row, ensure_ascii=False))
        return 0
    print(f"received {row['received']}\ndue      {row['due']}")
    for reason in row["reasons"]:
        print(f"  - {reason}")
    return 0


# --- parser --------------------------------------------------------------------------------


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="helpdesk", description="A school's mailbox as a helpdesk.")
    parser.add_argument("--config", help="config file (default: $HELPDESK_CONFIG or ./config.toml)")
    parser.add_argument("--version", action="version", version=f"helpdesk {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser("init", help="write a commented config.toml (if missing) and create the database")
    p.add_argument("--name", help="school name")
    p.add_argument("--address", help="the school's helpdesk mail address")
    p.add_argument("--database", help="database URL (default sqlite:///helpdesk.sqlite3)")
    p.set_defaults(func=cmd_init)

    p = sub.add_parser("roster", help="the school's people, classes and assignments")
    rsub = p.add_subparsers(dest="roster_command", required=True, metavar="ACTION")
    q = rsub.add_parser("import", help="import students.csv, staff.csv, classes.csv, assignments.csv")
    q.add_argument("directory")
    q.set_defaults(func=cmd_roster_import)

    p = sub.add_parser("check", help="check the config, database, IMAP and SMTP")
    p.set_defaults(func=cmd_check)

    p = sub.add_parser("run", help="run the daemon until SIGTERM")
    p.add_argument("--once", action="store_true", help="process everything pending, then exit")
    p.add_argument("--only", help="comma-separated stages: ingest (fetch, understand, route, store, queue), process (only letters already fetched), sla (reminders, escalations, digest), outbox (sending)")
    p.add_argument("--now", help="with --once: the time the SLA stage takes as now (ISO; school time "
                   "without an offset)")
    p.set_defaults(func=cmd_run)

    p = sub.add_parser("explain", help="say what the daemon would do with letters (no side effects)")
    p.add_argument("files", nargs="+", metavar="FILE.eml")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_explain)

    p = sub.add_parser("appeals", help="list and show appeals")
    asub = p.add_subparsers(dest="appeals_command", required=True, metavar="ACTION")
    q = asub.add_parser("list")
    q.add_argument("--status", choices=["open", "waiting", "answered", "closed", "overdue"])
    q.add_argument("--json", action="store_true")
    q.set_defaults(func=cmd_appeals_list)
    q = asub.add_parser("show")
    q.add_argument("number", type=int)
    q.add_argument("--json", action="store_true")
    q.set_defaults(func=cmd_appeals_show)

    p = sub.add_parser("letters", help="incoming letters as stored")
    lsub = p.add_subparsers(dest="letters_command", required=True, metavar="ACTION")
    q = lsub.add_parser("list")
    q.add_argument("--status", choices=["new", "processed", "ignored", "quarantined"])
    q.add_argument("--json", action="store_true")
    q.set_defaults(func=cmd_letters_list)

    from .commands import register_all

    register_all(sub, {"appeals": asub, "letters": lsub, "roster": rsub})

    p = sub.add_parser("calendar", help="working days and hours of a year (production calendar)")
    p.add_argument("year", type=int)
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_calendar)

    p = sub.add_parser("deadline", help="when a letter received at DATETIME is due, and why")
    p.add_argument("datetime", help="e.g. 2026-12-01T15:00 (school time) or 2026-12-01T15:00+03:00")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_deadline)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        # Under systemd the journal stamps each line itself (JOURNAL_STREAM is set).
        format=("%(levelname)s %(name)s: %(message)s" if os.environ.get("JOURNAL_STREAM")
                else "%(asctime)s %(levelname)s %(name)s: %(message)s"),
        stream=sys.stderr,
    )
    logging.getLogger("pymorphy3").setLevel(logging.WARNING)  # its dictionary-loading chatter
    try:
        return args.func(args)
    except (ConfigError, DatabaseError, CliError) as exc:
        print(f"helpdesk: {exc}", file=sys.stderr)
        return EXIT_FAILURE
    except BrokenPipeError:  # `helpdesk appeals list | head`: the reader is gone, not an error
        sys.stderr.close()
        return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
