"""The daemon's state in numbers: for ``helpdesk status`` and the Prometheus endpoint.

``snapshot()`` reads what the database knows (a handful of cheap, indexed
count/min/max queries); ``record_heartbeat()`` and ``record_sweep()`` are the
two facts the daemon writes for it (rows of the ``meta`` table). ``Metrics``
holds the counters and histograms the daemon updates after each cycle and, when
``[metrics] enabled``, serves them with the database gauges computed on scrape.
"""
from __future__ import annotations

import json
import logging
import os
import socket
from dataclasses import asdict, dataclass, field
from datetime import datetime

from peewee import fn
from prometheus_client import CollectorRegistry, Counter, Histogram, start_http_server
from prometheus_client.core import GaugeMetricFamily

from .store.models import Appeal, Letter, MailboxState, Meta, Outgoing, as_aware, utcnow

log = logging.getLogger("helpdesk.metrics")

HEARTBEAT_KEY = "daemon_heartbeat"
SWEEP_KEY = "daemon_last_sla_sweep"
APPEAL_STATES = ("open", "answered", "closed")


# --- facts the daemon records ----------------------------------------------------


def record_heartbeat(now: datetime | None = None) -> None:
    """The daemon finished a cycle (who and when: several daemons may share a database)."""
    _set(HEARTBEAT_KEY, json.dumps({"at": (now or utcnow()).isoformat(),
                                    "host": socket.gethostname(), "pid": os.getpid()}))


def record_sweep(now: datetime | None = None) -> None:
    """An SLA sweep completed."""
    _set(SWEEP_KEY, json.dumps({"at": (now or utcnow()).isoformat()}))


def _set(key: str, value: str) -> None:
    from .store.db import set_meta

    set_meta(key, value)


def _get(key: str) -> dict:
    row = Meta.get_or_none(Meta.key == key)
    if row is None:
        return {}
    try:
        data = json.loads(row.value)
    except ValueError:
        return {}
    return data if isinstance(data, dict) else {}


def _when(data: dict) -> datetime | None:
    try:
        return as_aware(datetime.fromisoformat(data["at"]))
    except (KeyError, TypeError, ValueError):
        return None


# --- what the database says ---------------------------------------------------------


@dataclass
class Snapshot:
    """Counts and times (aware UTC datetimes or None) read from the database."""

    appeals: dict[str, int] = field(default_factory=dict)  # state -> count
    overdue: int = 0  # open appeals past their deadline
    unprocessed: int = 0  # stored letters not yet processed
    oldest_unprocessed_at: datetime | None = None  # when the oldest of them was fetched
    quarantined: int = 0  # letters that could not be processed
    queued: int = 0  # outgoing letters not yet sent (queued or in flight)
    oldest_queued_at: datetime | None = None
    failed: int = 0  # outgoing letters given up as undeliverable
    last_uid: int | None = None  # the mailbox's high-water mark (None: never polled)
    last_poll_at: datetime | None = None
    last_send_at: datetime | None = None
    last_sweep_at: datetime | None = None
    heartbeat_at: datetime | None = None
    heartbeat_by: str | None = None  # "host pid"

    def as_dict(self) -> dict:
        return {k: v.isoformat() if isinstance(v, datetime) else v for k, v in asdict(self).items()}


def snapshot(mailbox_key: str | None, now: datetime | None = None) -> Snapshot:
    """Read the state (``mailbox_key``: the configured mailbox; None = any)."""
    now_naive = now.replace(tzinfo=None) if now is not None else utcnow()
    s = Snapshot()
    counts = dict(Appeal.select(Appeal.status, fn.COUNT(Appeal.number)).group_by(Appeal.status).tuples())
    s.appeals = {state: counts.pop(state, 0) for state in APPEAL_STATES} | counts
    s.overdue = (Appeal.select().where((Appeal.status == "open") & Appeal.due_at.is_null(False)
                                       & (Appeal.due_at < now_naive)).count())
    s.unprocessed, oldest = (Letter.select(fn.COUNT(Letter.id), fn.MIN(Letter.fetched_at))
                             .where(Letter.status == "new").tuples().get())
    s.oldest_unprocessed_at = as_aware(oldest)
    s.quarantined = Letter.select().where(Letter.status == "quarantined").count()
    s.queued, oldest = (Outgoing.select(fn.COUNT(Outgoing.id), fn.MIN(Outgoing.created_at))
                        .where(Outgoing.status.in_(("queued", "sending"))).tuples().get())
    s.oldest_queued_at = as_aware(oldest)
    s.failed = Outgoing.select().where(Outgoing.status == "failed").count()
    s.last_send_at = as_aware(Outgoing.select(fn.MAX(Outgoing.sent_at)).scalar())
    states = MailboxState.select()
    if mailbox_key is not None:
        states = states.where(MailboxState.mailbox == mailbox_key)
    rows = list(states)
    if rows:
        s.last_uid = max(r.last_uid for r in rows)
        polls = [as_aware(r.last_poll_at) for r in rows if r.last_poll_at is not None]
        s.last_poll_at = max(polls) if polls else None
    s.last_sweep_at = _when(_get(SWEEP_KEY))
    beat = _get(HEARTBEAT_KEY)
    s.heartbeat_at = _when(beat)
    if beat:
        s.heartbeat_by = f"{beat.get('host', '?')} pid {beat.get('pid', '?')}"
    return s


# --- Prometheus ---------------------------------------------------------------------------


class _DatabaseCollector:
    """Gauges read from the database at scrape time (so they are right even when
    another process did the work)."""

    def __init__(self, mailbox_key: str | None) -> None:
        self.mailbox_key = mailbox_key

    def describe(self):
        return []  # computed on scrape; nothing to check at registration

    def collect(self):
        up = GaugeMetricFamily("helpdesk_database_up", "1 if the database answered this scrape")
        try:
            s = snapshot(self.mailbox_key)
        except Exception as exc:  # noqa: BLE001 - a scrape must not fail because of the database
            log.debug("metrics: database not readable: %s", exc)
            up.add_metric([], 0)
            yield up
            return
        finally:
            _close_thread_connection()
        up.add_metric([], 1)
        yield up
        appeals = GaugeMetricFamily("helpdesk_appeals", "Appeals by state", labels=["state"])
        for state, count in sorted(s.appeals.items()):
            appeals.add_metric([state], count)
        yield appeals
        yield GaugeMetricFamily("helpdesk_appeals_overdue", "Open appeals past their deadline",
                                value=s.overdue)
        yield GaugeMetricFamily("helpdesk_outbox_queue_length",
                                "Outgoing letters not yet sent (queued or in flight)", value=s.queued)
        yield GaugeMetricFamily("helpdesk_outbox_failed",
                                "Outgoing letters given up as undeliverable", value=s.failed)
        yield GaugeMetricFamily("helpdesk_letters_unprocessed",
                                "Stored letters waiting to be processed", value=s.unprocessed)
        yield GaugeMetricFamily("helpdesk_letters_quarantined",
                                "Letters that could not be processed", value=s.quarantined)
        if s.last_poll_at is not None:
            yield GaugeMetricFamily("helpdesk_last_poll_timestamp_seconds",
                                    "Unix time of the last successful mailbox poll",
                                    value=s.last_poll_at.timestamp())


def _close_thread_connection() -> None:
    """The scrape runs in the HTTP server's thread: give its connection back."""
    from .store.models import database

    try:
        if not database.is_closed():
            database.close()
    except Exception:  # noqa: BLE001 - nothing to give back
        pass


class Metrics:
    """The daemon's counters; ``serve()`` exposes them over HTTP."""

    def __init__(self, mailbox_key: str | None = None) -> None:
        self.registry = CollectorRegistry(auto_describe=False)
        r = self.registry
        self.ingested = Counter("helpdesk_letters_ingested", "Letters fetched and stored", registry=r)
        self.processed = Counter("helpdesk_letters_processed", "Letters processed, by outcome",
                                 ["outcome"], registry=r)
        self.sent = Counter("helpdesk_letters_sent", "Outgoing letters accepted by the SMTP server",
                            registry=r)
        self.send_failures = Counter(
            "helpdesk_send_failures", "Failed send attempts (retry: tried again later; "
            "failed: given up)", ["kind"], registry=r)
        self.imap_reconnects = Counter("helpdesk_imap_reconnects",
                                       "IMAP connections opened after the first one", registry=r)
        self.sweep_seconds = Histogram("helpdesk_sla_sweep_seconds", "Duration of an SLA sweep",
                                       registry=r)
        self.cycle_seconds = Histogram("helpdesk_cycle_seconds", "Duration of a daemon cycle",
                                       registry=r)
        r.register(_DatabaseCollector(mailbox_key))
        self._server = None
        self._connections = 0

    def imap_connected(self) -> None:
        self._connections += 1
        if self._connections > 1:
            self.imap_reconnects.inc()

    def observe_cycle(self, result, seconds: float) -> None:
        """Count what a ``daemon.CycleResult`` did."""
        self.cycle_seconds.observe(seconds)
        self.ingested.inc(result.fetched)
        for outcome, n in result.processed.items():
            self.processed.labels(outcome).inc(n)
        self.sent.inc(result.sent)
        if result.retried:
            self.send_failures.labels("retry").inc(result.retried)
        if result.failed:
            self.send_failures.labels("failed").inc(result.failed)

    def serve(self, listen: str, port: int) -> None:
        """Start the HTTP endpoint (``/metrics``) in a thread of its own."""
        self._server, _thread = start_http_server(port, addr=listen, registry=self.registry)
        log.info("metrics served at http://%s:%d/metrics", listen, port)

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
