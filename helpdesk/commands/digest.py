"""``helpdesk digest`` (preview or send the administration's digest) and
``helpdesk report`` (every appeal of a period as CSV or XLSX)."""
from __future__ import annotations

from datetime import date, datetime, timezone
from pathlib import Path


def register(sub, groups) -> None:
    p = sub.add_parser("digest", help="the administration's daily digest: preview or send")
    p.add_argument("--date", help="the school day of the digest (YYYY-MM-DD; default: today)")
    mode = p.add_mutually_exclusive_group()
    mode.add_argument("--print", dest="mode", action="store_const", const="print",
                      help="print the plain-text digest, store and send nothing (the default)")
    mode.add_argument("--send", dest="mode", action="store_const", const="send",
                      help="queue the digest now for the deputy and the director, marked as that day's")
    p.add_argument("--html", metavar="FILE", help="with --print: also write the HTML version to FILE")
    p.set_defaults(func=cmd_digest, mode="print")

    p = sub.add_parser("report", help="every appeal of a period as a table (CSV or XLSX)")
    p.add_argument("--from", dest="first", required=True, help="first day (YYYY-MM-DD), included")
    p.add_argument("--to", dest="last", required=True, help="last day (YYYY-MM-DD), included")
    p.add_argument("--format", choices=["csv", "xlsx"], help="default: from the file name, else csv")
    p.add_argument("--output", "-o", required=True, help="the file to write")
    p.add_argument("--now", help="judge open appeals at this time (school time unless an offset is given)")
    p.set_defaults(func=cmd_report)


def _day(text: str | None, config) -> date:
    from .. import app
    from ..cli import CliError

    if not text:
        return app.school_today(config)
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise CliError(f"not a date: {text!r} (use YYYY-MM-DD)") from None


def cmd_digest(args) -> int:
    from .. import app
    from ..cli import _config
    from ..digest.send import render_text, send_digest

    config = _config(args)
    app.open_db(config)
    day = _day(args.date, config)
    if args.mode == "send":
        result = send_digest(config, datetime.now(timezone.utc), day=day, manual=True)
        if result is None or result.outgoing_id is None:
            print(f"digest for {day}: nobody to send it to (no staff with role deputy or director)")
            return 1
        print(f"digest for {day} queued as outgoing {result.outgoing_id} to {', '.join(result.recipients)}")
        return 0
    text, html, _fig = render_text(config, day)
    print(text, end="" if text.endswith("\n") else "\n")
    if args.html:
        Path(args.html).write_text(html, encoding="utf-8")
    return 0


def cmd_report(args) -> int:
    from .. import app
    from ..cli import CliError, _config
    from ..digest import report
    from ..roster.store import load_roster

    config = _config(args)
    app.open_db(config)
    first, last = _day(args.first, config), _day(args.last, config)
    if last < first:
        raise CliError(f"--to {last} is before --from {first}")
    output = Path(args.output)
    fmt = args.format or ("xlsx" if output.suffix.lower() == ".xlsx" else "csv")
    from ..cli import _school_time

    now = _school_time(args.now, app.tz_name(config)) if args.now else datetime.now(timezone.utc)
    table = report.rows(app.work_calendar(config), load_roster(), first, last, now)
    if fmt == "xlsx":
        try:
            report.write_xlsx(output, table, title=f"Обращения {first:%d.%m.%Y}-{last:%d.%m.%Y}")
        except ImportError:
            raise CliError("XLSX needs openpyxl: pip install openpyxl") from None
    else:
        report.write_csv(output, table)
    print(f"{len(table)} appeal(s) from {first} to {last} written to {output} ({fmt})")
    return 0
