"""``helpdesk status [--json]``: is helpdesk keeping up? For the operator and for monitoring.

Reads the database (queues, appeals, the daemon's heartbeat, the last poll, send
and SLA sweep) and asks the IMAP server how many letters wait there above the
last UID taken in. Exit code 0 when all is well, 1 when something is wrong (the
IMAP server unreachable, no recent heartbeat or poll, letters stuck unprocessed),
so that a monitoring check can run it as it is. Without the IMAP server the
database part is still shown.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field, replace
from datetime import datetime, timezone

EXIT_OK, EXIT_PROBLEM = 0, 1


@dataclass
class MailboxLag:
    key: str
    reachable: bool
    checked: bool = True  # False with --no-imap
    waiting: int | None = None  # letters on the server not yet fetched
    oldest_waiting_at: datetime | None = None  # INTERNALDATE of the oldest of them
    error: str | None = None


@dataclass
class Report:
    now: datetime
    snapshot: object  # metrics.Snapshot
    mailbox: MailboxLag
    stale_after: float
    problems: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems

    def as_dict(self) -> dict:
        lag = self.mailbox
        return {
            "ok": self.ok,
            "problems": self.problems,
            "warnings": self.warnings,
            "now": self.now.isoformat(),
            "stale_after_seconds": self.stale_after,
            "mailbox": {
                "key": lag.key, "checked": lag.checked, "reachable": lag.reachable,
                "waiting": lag.waiting,
                "oldest_waiting_at": lag.oldest_waiting_at.isoformat() if lag.oldest_waiting_at else None,
                "error": lag.error,
            },
            **self.snapshot.as_dict(),
        }


def mailbox_lag(config, last_uid: int | None, uidvalidity: int | None) -> MailboxLag:
    """Letters in the IMAP folder above ``last_uid`` (all of them if UIDVALIDITY changed)."""
    from .. import app
    from ..ingest.imap import Mailbox

    # Read-only: no flag, no move; SELECT becomes EXAMINE.
    settings = replace(app.imap_settings(config), processed_flag="", processed_folder="",
                       quarantine_folder="")
    lag = MailboxLag(key=settings.mailbox_key, reachable=False)
    try:
        with Mailbox(settings) as mailbox:
            start = last_uid or 0
            if uidvalidity is not None and mailbox.uidvalidity != uidvalidity:
                start = 0  # the server renumbered the folder: the next poll looks at all of it
            uids = mailbox.uids_after(start)
            lag.reachable, lag.waiting = True, len(uids)
            if uids:
                info = mailbox.client.fetch([uids[0]], ["INTERNALDATE"]).get(uids[0], {})
                arrived = info.get(b"INTERNALDATE")
                if isinstance(arrived, datetime):
                    lag.oldest_waiting_at = (arrived if arrived.tzinfo else
                                             arrived.astimezone()).astimezone(timezone.utc)
    except Exception as exc:  # noqa: BLE001 - any failure means "unreachable", said in one line
        lag.error = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    return lag


def build_report(config, stale_after: float | None = None, now: datetime | None = None,
                 check_imap: bool = True) -> Report:
    from .. import app
    from ..metrics import snapshot
    from ..store.models import MailboxState

    now = now or datetime.now(timezone.utc)
    key = app.imap_settings(config).mailbox_key
    snap = snapshot(key, now)
    if stale_after is None:
        stale_after = 3 * max(config.daemon.interval, config.imap.poll_interval, 60.0)
    state = MailboxState.get_or_none(MailboxState.mailbox == key)
    if check_imap:
        lag = mailbox_lag(config, snap.last_uid, state.uidvalidity if state else None)
    else:
        lag = MailboxLag(key=key, reachable=False, checked=False)
    report = Report(now=now, snapshot=snap, mailbox=lag, stale_after=stale_after)
    _judge(report)
    return report


def _judge(r: Report) -> None:
    s, lag = r.snapshot, r.mailbox

    def old(when: datetime | None) -> bool:
        return when is None or (r.now - when).total_seconds() > r.stale_after

    if lag.checked and not lag.reachable:
        r.problems.append(f"IMAP server unreachable: {lag.error}")
    if s.heartbeat_at is None:
        r.problems.append("no daemon heartbeat recorded: is `helpdesk run` running?")
    elif old(s.heartbeat_at):
        r.problems.append(f"daemon heartbeat is {_ago(r.now, s.heartbeat_at)} old "
                          f"(more than {r.stale_after:g} s): the daemon is stopped or stuck")
    if s.last_poll_at is None:
        r.problems.append("the mailbox has never been polled")
    elif old(s.last_poll_at):
        r.problems.append(f"last successful poll {_ago(r.now, s.last_poll_at)} ago "
                          f"(more than {r.stale_after:g} s)")
    if s.unprocessed and old(s.oldest_unprocessed_at):
        r.problems.append(f"{s.unprocessed} stored letter(s) not processed, the oldest fetched "
                          f"{_ago(r.now, s.oldest_unprocessed_at)} ago")
    if lag.waiting and lag.oldest_waiting_at and old(lag.oldest_waiting_at):
        r.problems.append(f"{lag.waiting} letter(s) wait on the IMAP server, the oldest since "
                          f"{_ago(r.now, lag.oldest_waiting_at)}")
    if s.failed:
        r.warnings.append(f"{s.failed} outgoing letter(s) could not be delivered "
                          "(helpdesk letters list --status failed)")
    if s.quarantined:
        r.warnings.append(f"{s.quarantined} letter(s) in quarantine "
                          "(helpdesk letters list --status quarantined)")
    if s.overdue:
        r.warnings.append(f"{s.overdue} appeal(s) overdue (helpdesk appeals list --status overdue)")


def _ago(now: datetime, when: datetime | None) -> str:
    if when is None:
        return "never"
    seconds = max(0, int((now - when).total_seconds()))
    if seconds < 120:
        return f"{seconds} s"
    if seconds < 7200:
        return f"{seconds // 60} min"
    if seconds < 2 * 86400:
        return f"{seconds // 3600} h"
    return f"{seconds // 86400} days"


def render(r: Report, tz) -> str:
    s, lag = r.snapshot, r.mailbox

    def at(when: datetime | None) -> str:
        if when is None:
            return "never"
        return f"{when.astimezone(tz):%Y-%m-%d %H:%M:%S %Z} ({_ago(r.now, when)} ago)"

    if not lag.checked:
        waiting = "not checked (--no-imap)"
    elif lag.reachable:
        waiting = f"{lag.waiting} letter(s) not yet fetched"
        if lag.oldest_waiting_at:
            waiting += f", the oldest arrived {at(lag.oldest_waiting_at)}"
    else:
        waiting = f"UNREACHABLE ({lag.error})"
    appeals = ", ".join(f"{n} {state}" for state, n in s.appeals.items())
    lines = [
        f"mailbox     {lag.key}: {waiting}",
        f"            last UID taken in {s.last_uid if s.last_uid is not None else '-'}; "
        f"last successful poll {at(s.last_poll_at)}",
        f"letters     {s.unprocessed} stored, not yet processed"
        + (f" (oldest fetched {at(s.oldest_unprocessed_at)})" if s.unprocessed else "")
        + f"; {s.quarantined} quarantined",
        f"outbox      {s.queued} queued"
        + (f" (oldest {at(s.oldest_queued_at)})" if s.queued else "")
        + f", {s.failed} failed; last sent {at(s.last_send_at)}",
        f"appeals     {appeals}; {s.overdue} overdue",
        f"sla sweep   last {at(s.last_sweep_at)}",
        f"daemon      heartbeat {at(s.heartbeat_at)}"
        + (f" from {s.heartbeat_by}" if s.heartbeat_by else ""),
    ]
    lines += [f"problem:    {p}" for p in r.problems]
    lines += [f"warning:    {w}" for w in r.warnings]
    lines.append("status:     OK" if r.ok else f"status:     {len(r.problems)} PROBLEM(S)")
    return "\n".join(lines)


def cmd_status(args) -> int:
    from ..cli import CliError, _config
    import peewee

    from .. import app
    from ..store.db import DatabaseError

    config = _config(args)
    try:
        app.open_db(config, migrate=False)
        report = build_report(config, stale_after=args.stale, check_imap=not args.no_imap)
    except (DatabaseError, peewee.PeeweeException) as exc:
        raise CliError(f"database unreadable: {exc}") from exc
    if args.json:
        print(json.dumps(report.as_dict(), ensure_ascii=False))
    else:
        print(render(report, config.school.timezone))
    return EXIT_OK if report.ok else EXIT_PROBLEM


def register(sub, groups) -> None:
    p = sub.add_parser("status", help="is helpdesk keeping up? (mailbox lag, queues, heartbeat; "
                                      "exit code 1 when something is wrong)")
    p.add_argument("--json", action="store_true", help="one JSON object instead of text")
    p.add_argument("--stale", type=float, default=None, metavar="SECONDS",
                   help="heartbeat/poll older than this is a problem "
                        "(default: 3 x the longest wait between cycles, at least 180)")
    p.add_argument("--no-imap", action="store_true",
                   help="do not connect to the IMAP server (the database part only)")
    p.set_defaults(func=cmd_status)
