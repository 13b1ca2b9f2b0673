"""``helpdesk sla sweep`` and ``helpdesk sla pending``: the reminder and escalation ladder."""
from __future__ import annotations

import json
from datetime import datetime, timezone
from zoneinfo import ZoneInfo


def register(sub, groups) -> None:
    p = sub.add_parser("sla", help="reminders and escalation of overdue appeals")
    ssub = p.add_subparsers(dest="sla_command", required=True, metavar="ACTION")

    q = ssub.add_parser("sweep", help="send the reminders and escalation letters due now")
    q.add_argument("--now", help="pretend it is this time (school time unless an offset is given)")
    q.add_argument("--dry-run", action="store_true", help="show what would be sent, store nothing")
    q.add_argument("--full", action="store_true",
                   help="look at every appeal, not only those changed since the last sweep")
    q.add_argument("--json", action="store_true")
    q.set_defaults(func=cmd_sweep)

    q = ssub.add_parser("pending", help="the reminders and escalation steps still to come")
    q.add_argument("--json", action="store_true")
    q.set_defaults(func=cmd_pending)


def _moment(value: str | None, tz: str) -> datetime:
    from ..cli import _school_time

    return _school_time(value, tz) if value else datetime.now(timezone.utc)


def cmd_sweep(args) -> int:
    from .. import app
    from ..cli import _config
    from ..sla.sweep import sweep

    config = _config(args)
    app.open_db(config)
    now = _moment(args.now, app.tz_name(config))
    result = sweep(config, now, dry_run=args.dry_run, full=args.full)
    if args.json:
        print(json.dumps(result.as_dict(), ensure_ascii=False))
        return 0
    for number, level, kind in result.fired:
        print(f"appeal {number}: level {level} ({kind}) fired")
    for letter in result.letters:
        numbers = ", ".join(str(n) for n in letter.numbers)
        print(f"{letter.kind} -> {letter.to}: appeal(s) {numbers}")
    print(result.summary())
    return 0


def cmd_pending(args) -> int:
    from .. import app
    from ..cli import _config, _emit
    from ..sla.pending import pending_steps

    config = _config(args)
    app.open_db(config)
    rows = pending_steps(config)
    tz = ZoneInfo(app.tz_name(config))
    for row in rows:
        row["due_at"] = row["due_at"].astimezone(tz).isoformat()
        row["deadline"] = row["deadline"].astimezone(tz).isoformat()
    if args.json:
        _emit(args, rows, [])
        return 0
    table = [r | {"due": r["due_at"][:16].replace("T", " "), "to": ", ".join(r["to"])} for r in rows]
    _emit(args, table, ["appeal", "level", "kind", "due", "assignee", "to"])
    return 0
