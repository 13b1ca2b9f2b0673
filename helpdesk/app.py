"""Wiring: turns a ``Config`` into the objects the stages need.

The only place that knows both the config's shape and the stages' constructors.
"""
from __future__ import annotations

from datetime import date, datetime
from functools import partial

from .auth import server_options
from .compose import Composer, SchoolIdentity
from .config import Config
from .domain import Absence
from .ingest.imap import ImapSettings
from .outbox.sender import RetryPolicy, SmtpSettings
from .pipeline import Processor
from .roster.store import load_roster
from .routing.store import load_absences
from .sla.calendar import SchoolHours, WorkCalendar
from .sla.ladder import ladder_from_config
from .store.db import open_database


def tz_name(config: Config) -> str:
    return getattr(config.school.timezone, "key", str(config.school.timezone))


def open_db(config: Config, *, migrate: bool = True):
    return open_database(config.database.url, migrate=migrate)


def imap_settings(config: Config) -> ImapSettings:
    c = config.imap
    return ImapSettings(
        host=c.host, port=c.port, security=c.security,
        username=c.username or config.school.address, password=c.password,
        folder=c.folder, processed_flag=c.processed_flag, timeout=c.timeout,
        processed_folder=c.processed_folder, quarantine_folder=c.quarantine_folder,
        ca_file=str(c.ca_file) if c.ca_file else None,
        **server_options(c),
    )


def smtp_settings(config: Config) -> SmtpSettings:
    c = config.smtp
    return SmtpSettings(
        host=c.host, port=c.port, security=c.security,
        username=c.username, password=c.password, timeout=c.timeout,
        ca_file=str(c.ca_file) if c.ca_file else None,
        **server_options(c),
    )


def retry_policy(config: Config) -> RetryPolicy:
    return RetryPolicy(max_attempts=config.outbox.max_attempts, base_seconds=config.outbox.retry_base)


def school_identity(config: Config) -> SchoolIdentity:
    return SchoolIdentity(
        name=config.school.from_name or config.school.name,
        address=config.school.address,
        domain=config.school.domain,
        timezone=tz_name(config),
        show_teacher_address=config.school.show_teacher_address,
        attachment_limit_mb=config.school.attachment_limit_mb,
    )


def work_calendar(config: Config) -> WorkCalendar:
    return WorkCalendar(
        SchoolHours(
            timezone=tz_name(config),
            start=config.hours.start,
            end=config.hours.end,
            six_day_week=config.hours.six_day_week,
        )
    )


def school_today(config: Config) -> date:
    """Today's date in the school's time zone."""
    return datetime.now(config.school.timezone).date()


def absences_now(config: Config) -> tuple[tuple[Absence, ...], date]:
    """The staff absences that cover today, and today (the school's date)."""
    today = school_today(config)
    return load_absences(today), today


def processor(config: Config) -> Processor:
    """A processor over the roster as it is now in the database (call after open_db).
    Staff absences are read for every letter it processes, so a processor that lives
    long (the daemon keeps one while the roster is unchanged) never uses stale ones."""
    return Processor(
        load_roster(),
        Composer(config.paths.templates, school_identity(config)),
        work_calendar(config),
        window_days=config.sla.window_days,
        absences_now=partial(absences_now, config),
        ladder=ladder_from_config(config),
        ack_limit=config.outbox.ack_limit_per_hour,
    )
