"""Routing by hand: staff absences, reassigning an appeal, the list of corrections.

    helpdesk absence add EMAIL --from D --to D [--substitute EMAIL] [--note TEXT]
    helpdesk absence list [--json]
    helpdesk absence remove ID
    helpdesk appeals reassign N EMAIL [--note TEXT]
    helpdesk corrections list [--json]

Dates are ISO (2026-12-01) or Russian (01.12.2026); both days are included.
"""
from __future__ import annotations

import getpass
import re
from datetime import date


def parse_day(text: str) -> date:
    from ..cli import CliError

    value = text.strip()
    m = re.fullmatch(r"(\d{1,2})\.(\d{1,2})\.(\d{4})", value)
    try:
        if m:
            return date(int(m.group(3)), int(m.group(2)), int(m.group(1)))
        return date.fromisoformat(value)
    except ValueError:
        raise CliError(f"not a date: {text!r} (use 2026-12-01 or 01.12.2026)") from None


def _open(args):
    from .. import app
    from ..cli import _config

    config = _config(args)
    app.open_db(config)
    return config


def _operator() -> str:
    try:
        return getpass.getuser()
    except Exception:  # noqa: BLE001 - no user name in some containers
        return "operator"


# --------------------------------------------------------------------------- absence


def cmd_absence_add(args) -> int:
    from ..cli import CliError
    from ..roster.store import load_roster
    from ..routing.store import RoutingStoreError, absence_sentence, add_absence, as_absence
    from ..store.models import Appeal

    _open(args)
    roster = load_roster()
    start, end = parse_day(args.start), parse_day(args.end)
    try:
        row = add_absence(roster, args.email, start, end, substitute=args.substitute, note=args.note or "")
    except RoutingStoreError as exc:
        raise CliError(str(exc)) from None
    print(f"absence {row.id} added: {absence_sentence(roster, as_absence(row))}")
    open_count = (Appeal.select()
                  .where((Appeal.assignee == row.teacher) & (Appeal.status != "closed"))
                  .count())
    if open_count:
        print(f"note: {open_count} appeal(s) not closed are still assigned to {row.teacher}; "
              f"hand them over with 'helpdesk appeals reassign N EMAIL' if needed")
    return 0


def _absence_row(absence_id: int, a, today: date) -> dict:
    state = "past" if a.end < today else "upcoming" if a.start > today else "current"
    return {"id": absence_id, "teacher": a.teacher, "from": a.start.isoformat(), "to": a.end.isoformat(),
            "substitute": a.substitute, "note": a.note, "state": state}


def cmd_absence_list(args) -> int:
    from .. import app
    from ..cli import _emit
    from ..routing.store import as_absence, list_absences

    config = _open(args)
    today = app.school_today(config)
    rows = [_absence_row(row.id, as_absence(row), today) for row in list_absences()]
    _emit(args, rows, ["id", "state", "teacher", "from", "to", "substitute", "note"])
    return 0


def cmd_absence_remove(args) -> int:
    from ..cli import CliError
    from ..roster.store import load_roster
    from ..routing.store import RoutingStoreError, remove_absence

    _open(args)
    try:
        row = remove_absence(load_roster(), args.id)
    except RoutingStoreError as exc:
        raise CliError(str(exc)) from None
    print(f"absence {args.id} removed ({row.teacher})")
    return 0


# --------------------------------------------------------------------------- reassign / corrections


def cmd_appeals_reassign(args) -> int:
    from .. import app
    from ..cli import CliError
    from ..store.models import Appeal, database

    config = _open(args)
    email = args.email.strip().lower()
    processor = app.processor(config)
    roster = processor.roster
    appeal = Appeal.get_or_none(Appeal.number == args.number)
    if appeal is None:
        raise CliError(f"no appeal number {args.number}")
    if roster.staff_member(email) is None:
        raise CliError(f"{email}: not a staff member in the roster")
    if appeal.assignee == email:
        raise CliError(f"appeal {args.number} is already assigned to {email}")
    old = appeal.assignee
    who = _operator()
    with database.atomic():  # the correction is recorded by reassign itself
        processor.reassign(appeal, email, by=f"оператор {who}", source="cli", note=args.note or "")
    print(f"appeal {args.number}: {old} -> {email}; the appeal letter is queued to {email}")
    return 0


def cmd_corrections_list(args) -> int:
    from .. import app
    from ..cli import _emit, _iso
    from ..routing.store import list_corrections

    config = _open(args)
    tz = app.tz_name(config)
    rows = [
        {
            "id": c.id, "at": _iso(c.at, tz), "appeal": c.appeal_id, "old": c.old_assignee,
            "new": c.new_assignee, "source": c.source, "who": c.who, "note": c.note,
            "category": c.category, "class": c.class_name, "subject": c.subject,
            "triage": c.triage, "confidence": c.confidence,
        }
        for c in list_corrections()
    ]
    if args.json:
        _emit(args, rows, [])
        return 0
    table = [r | {"at": (r["at"] or "")[:16].replace("T", " ")} for r in rows]
    _emit(args, table, ["at", "appeal", "category", "class", "subject", "old", "new", "source", "note"])
    return 0


# --------------------------------------------------------------------------- registration


def register(sub, groups) -> None:
    p = sub.add_parser("absence", help="staff away: their new appeals go to a substitute")
    asub = p.add_subparsers(dest="absence_command", required=True, metavar="ACTION")
    q = asub.add_parser("add", help="mark a staff member away from --from to --to (both included)")
    q.add_argument("email")
    q.add_argument("--from", dest="start", required=True, metavar="DATE")
    q.add_argument("--to", dest="end", required=True, metavar="DATE")
    q.add_argument("--substitute", metavar="EMAIL", help="who answers instead (default: the class "
                   "teacher, or the deputy when the absent one is the class teacher)")
    q.add_argument("--note", help="e.g. больничный")
    q.set_defaults(func=cmd_absence_add)
    q = asub.add_parser("list", help="every absence: past, current and upcoming")
    q.add_argument("--json", action="store_true")
    q.set_defaults(func=cmd_absence_list)
    q = asub.add_parser("remove", help="delete an absence by its id")
    q.add_argument("id", type=int)
    q.set_defaults(func=cmd_absence_remove)

    q = groups["appeals"].add_parser("reassign", help="give an appeal to another staff member")
    q.add_argument("number", type=int)
    q.add_argument("email")
    q.add_argument("--note", help="why (kept with the correction)")
    q.set_defaults(func=cmd_appeals_reassign)

    p = sub.add_parser("corrections", help="appeals reassigned by hand: where the rules were wrong")
    csub = p.add_subparsers(dest="corrections_command", required=True, metavar="ACTION")
    q = csub.add_parser("list")
    q.add_argument("--json", action="store_true")
    q.set_defaults(func=cmd_corrections_list)
