"""A consultation invitation as an iCalendar file (RFC 5545), built with ``icalendar``."""
from __future__ import annotations

from datetime import datetime, timedelta, timezone

from icalendar import Calendar, Event

from .domain import Attachment

CONSULTATION_MINUTES = 45  # a school lesson


def consultation_ics(
    *, number: int, start: datetime, place: str, subject: str | None, teacher: str,
    organizer: str, domain: str,
) -> Attachment:
    """``start`` is aware. The event is published (METHOD:PUBLISH): the student's calendar
    adds it; no RSVP is expected."""
    cal = Calendar()
    cal.add("prodid", "-//helpdesk//school appeals//RU")
    cal.add("version", "2.0")
    cal.add("method", "PUBLISH")
    event = Event()
    event.add("uid", f"consultation-{number}-{start.astimezone(timezone.utc):%Y%m%dT%H%M}@{domain}")
    event.add("dtstamp", datetime.now(timezone.utc))
    event.add("dtstart", start)
    event.add("dtend", start + timedelta(minutes=CONSULTATION_MINUTES))
    title = f"Консультация{': ' + subject if subject else ''} (обращение № {number})"
    event.add("summary", title)
    event.add("description", f"Консультацию проводит {teacher}.")
    if place:
        event.add("location", place)
    event.add("organizer", f"mailto:{organizer}")
    cal.add_component(event)
    payload = cal.to_ical()
    return Attachment("invite.ics", "text/calendar; charset=utf-8; method=PUBLISH", len(payload), payload)
