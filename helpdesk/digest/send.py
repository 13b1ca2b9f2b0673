"""When the daily digest is due, what it says, and queueing it exactly once a day.

The daemon calls ``due_digest(config, now)`` every cycle (no query before the
send time, one indexed lookup after it) and ``send_digest(config, now)`` when it
returns a day. The digest of day D covers ``[start, end)``: ``end`` is D at the
configured time (school-local), ``start`` is the ``end`` of the last digest sent
before D, or, for the first one, the send time of the previous working day. So
Monday's digest covers the weekend, and a digest after holidays covers them all.

Exactly once: the ``digest_sent`` row (unique ``day``) and the ``Outgoing`` row
are written in one transaction; a second caller (another cycle, a restarted
daemon, a second process) finds the row or hits the unique key and queues
nothing. A daemon that was down at the send time sends on its first cycle of the
day after it, and the letter says it is late. Days off get no digest.

Config (read with defaults, so older configs keep working): ``[digest] time``
("08:00"), ``enabled`` (true), ``extra_addresses`` ([]).
"""
from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta, timezone

from peewee import IntegrityError

from .. import app
from ..compose import Composer, format_local
from ..roster.store import load_roster
from ..sla.calendar import MONTHS_GENITIVE, WEEKDAY_NAMES, WorkCalendar
from ..store.models import Event, Outgoing, as_aware, database, to_utc_naive, utcnow
from .figures import Figures, compute, hours_text
from .models import DigestSent

log = logging.getLogger("helpdesk.digest")

ADMIN_ROLES = ("deputy", "director")
LATE_GRACE = timedelta(minutes=15)  # queued later than this after the send time: "late"


@dataclass(frozen=True)
class Period:
    day: date
    start: datetime  # aware UTC
    end: datetime  # aware UTC: the scheduled send moment of ``day``


@dataclass(frozen=True)
class DigestResult:
    day: date
    outgoing_id: int | None
    recipients: tuple[str, ...]
    late: bool
    period: Period


def send_moment(calendar: WorkCalendar, day: date, at: time) -> datetime:
    return datetime.combine(day, at, tzinfo=calendar.hours.tz).astimezone(timezone.utc)


def previous_working_day(calendar: WorkCalendar, day: date) -> date:
    d = day
    for _ in range(3 * 366):
        d -= timedelta(days=1)
        if calendar.is_working_day(d):
            return d
    raise ValueError(f"no working day before {day}")


def period_for(config, day: date) -> Period:
    """The period the digest of ``day`` covers (the stored one if it was already sent)."""
    calendar = app.work_calendar(config)
    at = config.digest.time
    done = DigestSent.get_or_none(DigestSent.day == day)
    if done is not None:
        return Period(day, as_aware(done.period_start), as_aware(done.period_end))
    end = send_moment(calendar, day, at)
    last = (DigestSent.select().where(DigestSent.day < day)
            .order_by(DigestSent.day.desc()).first())
    if last is not None:
        start = as_aware(last.period_end)
    else:
        start = send_moment(calendar, previous_working_day(calendar, day), at)
    return Period(day, min(start, end), end)


def due_digest(config, now: datetime) -> date | None:
    """The school day whose digest should be queued now, or None."""
    opts = config.digest
    if not opts.enabled:
        return None
    calendar = app.work_calendar(config)
    local = now.astimezone(calendar.hours.tz)
    day = local.date()
    if local.time() < opts.time or not calendar.is_working_day(day):
        return None
    if DigestSent.select().where(DigestSent.day == day).exists():
        return None
    return day


def recipients(config, roster=None) -> tuple[str, ...]:
    roster = roster or load_roster()
    found: dict[str, None] = {}
    for role in ADMIN_ROLES:
        for member in roster.with_role(role):
            found.setdefault(member.email.lower(), None)
    for address in config.digest.extra_addresses:
        found.setdefault(address, None)
    return tuple(found)


# --- the letter ---------------------------------------------------------------------


def _day_text(d: date) -> str:
    return f"{WEEKDAY_NAMES[d.weekday()]}, {d.day} {MONTHS_GENITIVE[d.month - 1]} {d.year}"


def _short(moment: datetime, tz) -> str:
    local = moment.astimezone(tz)
    return f"{local.day} {MONTHS_GENITIVE[local.month - 1]}, {local:%H:%M}"


def subject_line(fig: Figures, day: date) -> str:
    parts = [f"новых {fig.received}", f"отвечено {fig.answered}"]
    if fig.overdue_now:
        parts.append(f"просрочено {fig.overdue_now}")
    return f"Сводка обращений на {day.day} {MONTHS_GENITIVE[day.month - 1]}: " + ", ".join(parts)


def context(config, fig: Figures, period: Period, *, late_at: datetime | None = None) -> dict:
    tz = app.work_calendar(config).hours.tz
    pct = fig.in_time_pct
    return {
        "fig": fig,
        "day_text": _day_text(period.day),
        "period_text": f"с {_short(period.start, tz)} по {_short(period.end, tz)}",
        "in_time_text": "—" if pct is None else f"{pct}%",
        "median_text": hours_text(fig.median_hours),
        "late_text": (
            f"Сводка отправлена с опозданием ({format_local(late_at, app.tz_name(config))}): "
            f"в {_short(period.end, tz)[-5:]} служба не работала. Цифры — на {_short(period.end, tz)}."
            if late_at is not None else ""
        ),
        "chart_max": max((d.received for d in fig.days), default=0),
    }


def render_text(config, day: date, now: datetime | None = None) -> tuple[str, str, Figures]:
    """(plain text, HTML, figures) of the digest of ``day``, without side effects."""
    period = period_for(config, day)
    fig = compute(app.work_calendar(config), load_roster(), period.start, period.end)
    composer = Composer(config.paths.templates, app.school_identity(config))
    late_at = now if now is not None and now - period.end > LATE_GRACE else None
    text, html = composer.render("digest", {"subject": subject_line(fig, day),
                                            **context(config, fig, period, late_at=late_at)})
    return text, html, fig


def send_digest(config, now: datetime | None = None, *, day: date | None = None,
                manual: bool = False) -> DigestResult | None:
    """Queue the digest of ``day`` (default: the one due at ``now``).

    Without ``manual`` it queues nothing when that day's digest is already marked
    (returns None). With ``manual`` (``helpdesk digest --send``) it queues it anyway
    and moves the day's mark to the new letter."""
    now = now or datetime.now(timezone.utc)
    if now.tzinfo is None:
        raise ValueError("send_digest: `now` must be an aware datetime")
    if day is None:
        day = due_digest(config, now)
        if day is None:
            return None
    roster = load_roster()
    to = recipients(config, roster)
    calendar = app.work_calendar(config)
    try:
        with database.atomic():
            existing = DigestSent.get_or_none(DigestSent.day == day)
            if existing is not None and not manual:
                return None
            period = period_for(config, day)
            late = not manual and now - period.end > LATE_GRACE
            fig = compute(calendar, roster, period.start, period.end)
            outgoing_id = None
            if to:
                composer = Composer(config.paths.templates, app.school_identity(config))
                subject = subject_line(fig, day)
                rendered = composer.build(
                    "digest", context(config, fig, period, late_at=now if late else None),
                    to=list(to), subject=subject, number=None, now=now,
                )
                outgoing_id = Outgoing.create(
                    appeal=None, letter=None, kind="digest", mail_from=composer.school.address,
                    recipients=json.dumps(list(rendered.recipients)), message_id=rendered.message_id,
                    raw=rendered.raw,  # due at once, even when "now" is a fixed clock
                ).id
            else:
                log.warning("digest for %s: no staff with role deputy or director and no extra addresses", day)
            mark = dict(sent_at=to_utc_naive(now), period_start=to_utc_naive(period.start),
                        period_end=to_utc_naive(period.end), outgoing=outgoing_id, late=late,
                        manual=manual, note="" if to else "некому отправить")
            if existing is None:
                DigestSent.create(day=day, **mark)
            else:
                DigestSent.update(**mark).where(DigestSent.id == existing.id).execute()
            Event.create(
                at=utcnow(), kind="digest",
                message=(f"Сводка для администрации на {_day_text(day)} "
                         + (f"поставлена в очередь: {', '.join(to)}" if to else "не отправлена: некому")
                         + (" (с опозданием)" if late else "") + ("" if not manual else " (вручную)") + "."),
                data=json.dumps({"day": day.isoformat(), "outgoing": outgoing_id, "to": list(to),
                                 "late": late, "manual": manual}, ensure_ascii=False),
            )
    except IntegrityError:
        return None  # another process marked the day first
    if outgoing_id:
        log.info("digest for %s queued for %s%s", day, ", ".join(to), " (late)" if late else "")
    return DigestResult(day, outgoing_id, to, late, period)
