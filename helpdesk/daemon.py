"""The long-running worker: ingest -> process -> tidy -> outbox, then wait for mail.

Each stage is a runner over database rows, so the order of a cycle is also the
crash-recovery order: whatever a killed process left half-way is picked up by
the next cycle. SIGTERM/SIGINT mean "finish the item in hand, then exit 0":
every stage looks at the stop flag between two items.

The IMAP server, the SMTP server and the database can each go away. A failure
opens an *outage* of that service: one warning line, then quiet retries with
exponential backoff and jitter while the other stages go on where they can,
and one line when it works again, saying how long it was down.
"""
from __future__ import annotations

import itertools
import logging
import os
import random
import signal
import sys
import threading
import time
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Callable, Iterator

import peewee

from . import app
from .config import Config
from .ingest.imap import CONNECTION_ERRORS, Mailbox
from .ingest.runner import ingest
from .ingest.tidy import tidy
from .outbox.sender import drain, recover_in_flight
from .pipeline import pending_letter_ids
from .store.db import keep_session_lock, letter_claim, on_postgres, release_session_lock
from .digest.send import due_digest, send_digest
from .metrics import Metrics, record_heartbeat, record_sweep
from .notify import Notifier
from .sla.sweep import sweep
from .store.models import Letter, Outgoing, as_aware, database, utcnow

log = logging.getLogger("helpdesk.daemon")

STAGES = ("ingest", "process", "sla", "outbox")
DATABASE_ERRORS = (peewee.PeeweeException,)


class Outage:
    """The health of one service: backoff while it is down, one log line each way."""

    def __init__(self, name: str, base: float = 1.0, cap: float = 60.0) -> None:
        self.name = name
        self.base = base
        self.cap = cap
        self.failures = 0
        self.since: float | None = None  # time.monotonic() of the first failure
        self.retry_at = 0.0

    @property
    def down(self) -> bool:
        return self.failures > 0

    def due(self) -> bool:
        return time.monotonic() >= self.retry_at

    def delay(self) -> float:
        """Exponential backoff with jitter: about base, 2*base, 4*base, ... up to cap."""
        raw = min(self.cap, self.base * 2 ** min(self.failures - 1, 30))
        return raw * random.uniform(0.5, 1.0)

    def failed(self, error: str, exc: BaseException | None = None) -> None:
        """Record a failed attempt; ``exc`` (an unexpected error) is logged with its
        traceback once per outage."""
        now = time.monotonic()
        if not self.failures:
            self.since = now
            log.warning("%s unavailable: %s; retrying with backoff", self.name, error,
                        exc_info=exc)
        else:
            log.debug("%s still unavailable (attempt %d): %s", self.name, self.failures + 1, error)
        self.failures += 1
        self.retry_at = now + self.delay()

    def recovered(self) -> float | None:
        """Record a success; returns how long the outage lasted (None if there was none)."""
        if not self.failures:
            return None
        lasted = time.monotonic() - (self.since or time.monotonic())
        log.warning("%s available again after %.1f s (%d failed attempt(s))",
                    self.name, lasted, self.failures)
        self.failures, self.since, self.retry_at = 0, None, 0.0
        return lasted


class Watchdog:
    """Notices a letter whose processing does not end (a pathological letter in a
    slow parser or regular expression): after ``timeout`` seconds it calls
    ``on_hang(letter_id)``, from its own thread, once per letter."""

    def __init__(self, timeout: float, on_hang: Callable[[int], None]) -> None:
        self.timeout = timeout
        self.on_hang = on_hang
        self._current: tuple[int, float] | None = None
        self._stopped = threading.Event()
        self._thread = threading.Thread(target=self._watch, name="helpdesk-watchdog", daemon=True)

    def start(self) -> "Watchdog":
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stopped.set()

    def hanging(self) -> bool:
        """Whether the letter in hand has been in processing for longer than ``timeout``."""
        current = self._current
        return current is not None and time.monotonic() - current[1] > self.timeout

    @contextmanager
    def watching(self, letter_id: int) -> Iterator[None]:
        self._current = (letter_id, time.monotonic())
        try:
            yield
        finally:
            self._current = None

    def _watch(self) -> None:
        while not self._stopped.wait(min(1.0, self.timeout / 4)):
            current = self._current
            if current is not None and time.monotonic() - current[1] > self.timeout:
                self._current = None
                self.on_hang(current[0])


def restart_process(letter_id: int) -> None:
    """The watchdog's remedy in the real daemon: start afresh (same pid, same
    command line). The letter's attempt was counted before its processing began,
    so after a few such restarts the process stage quarantines it instead."""
    log.error("letter %s has been in processing for too long (a pathological letter?): "
              "helpdesk restarts itself to get past it", letter_id)
    for handler in logging.getLogger().handlers:
        handler.flush()
    os.execv(sys.executable, [sys.executable, *sys.orig_argv[1:]])


def _report_hang(letter_id: int) -> None:
    log.error("letter %s has been in processing for too long (a pathological letter?)", letter_id)


@dataclass
class CycleResult:
    fetched: int = 0
    duplicates: int = 0
    processed: dict[str, int] = field(default_factory=dict)
    moved: int = 0
    sla_letters: int = 0
    sent: int = 0
    retried: int = 0
    failed: int = 0
    errors: list[str] = field(default_factory=list)
    more: bool = False  # a stage used up its time slice with work left: no waiting

    def merge(self, other: "CycleResult") -> None:
        self.fetched += other.fetched
        self.duplicates += other.duplicates
        for kind, n in other.processed.items():
            self.processed[kind] = self.processed.get(kind, 0) + n
        self.moved += other.moved
        self.sla_letters += other.sla_letters
        self.sent += other.sent
        self.retried += other.retried
        self.failed += other.failed
        self.errors += other.errors
        self.more = other.more

    def summary(self) -> str:
        done = ", ".join(f"{k}: {v}" for k, v in sorted(self.processed.items())) or "nothing"
        moved = f"; moved {self.moved} letter(s) out of the inbox" if self.moved else ""
        moved += f"; {self.sla_letters} reminder/escalation/digest letter(s)" if self.sla_letters else ""
        return (
            f"fetched {self.fetched} new letter(s) ({self.duplicates} duplicate(s)); "
            f"processed {done}{moved}; sent {self.sent}, retry later {self.retried}, "
            f"failed {self.failed}"
        )

    @property
    def busy(self) -> bool:
        return bool(self.fetched or self.processed or self.moved or self.sla_letters
                    or self.sent or self.failed)


class Daemon:
    # Longest run of one stage before the others get their turn: with a backlog,
    # the first acknowledgements go out while later letters are still processed.
    slice_seconds = 2.0
    # One letter processed for longer than this means something hangs (see Watchdog).
    letter_timeout = 300.0
    # The daemon's heartbeat row (for ``helpdesk status``) is written at most this often.
    heartbeat_every = 10.0

    def __init__(self, config: Config, only: tuple[str, ...] = STAGES,
                 now: datetime | None = None) -> None:
        self.config = config
        self.now = now  # a fixed clock for the SLA stage (``run --once --now``); None = real time
        self.only = only
        self.stopping = False
        self.mailbox: Mailbox | None = None
        c = config
        self.imap = Outage(f"IMAP server {c.imap.host}:{c.imap.port}")
        self.smtp = Outage(f"SMTP server {c.smtp.host}:{c.smtp.port}")
        self.db = Outage("database")
        self.processing = Outage("letter processing")  # a bug escaping the pipeline
        self.letter_timeout = config.daemon.letter_timeout
        self.on_hang: Callable[[int], None] | None = None  # default: see run_forever
        self._watchdog: Watchdog | None = None
        self._processor = None
        self._roster = None
        self._ingesting: bool | None = None  # holds the mailbox's ingest lock (None: not asked yet)
        self._handed_over_until = 0.0  # monotonic time before which the lock is left to others
        self._handed_over_until_recovery = False  # said so in the log during this outage
        # systemd (sd_notify) and Prometheus; both do nothing unless asked for.
        self.notifier = Notifier()
        self.metrics = Metrics(app.imap_settings(config).mailbox_key)
        self._cycle_end = time.monotonic()  # when the last cycle completed
        self._last_ping = float("-inf")
        self._last_heartbeat = float("-inf")
        self._swept_at: datetime | None = None  # the last SLA sweep, not yet in the meta table
        self._status = ""
        self._activity = "none yet"

    def _outages(self) -> tuple[Outage, ...]:
        return (self.imap, self.smtp, self.db, self.processing)

    def _should_stop(self) -> bool:
        return self.stopping

    # --- one cycle ------------------------------------------------------------

    def cycle(self) -> CycleResult:
        result = CycleResult()
        if not self.db.due():  # waiting out a database outage is a healthy loop too
            self._cycle_end = time.monotonic()
            return result
        began = time.monotonic()
        try:
            if "ingest" in self.only:
                self._ingest(result)
            if "ingest" in self.only or "process" in self.only:
                # "ingest" is the operator's stage: fetch and take each letter as far
                # as its queued letters; "process" alone handles what is already fetched.
                self._process(result)
            if "ingest" in self.only:
                self._tidy(result)
            if "sla" in self.only:
                self._sla(result)
                self._digest(result)
            if "outbox" in self.only:
                self._send(result)
            if time.monotonic() - self._last_heartbeat >= self.heartbeat_every:
                self._record_state()
        except DATABASE_ERRORS as exc:
            result.errors.append(f"database: {exc}")
            self.db.failed(_describe(exc))
            _reconnect_database()
        else:
            self.db.recovered()
        self._cycle_end = time.monotonic()
        self.metrics.observe_cycle(result, self._cycle_end - began)
        return result

    def _record_state(self) -> None:
        """The heartbeat and the last SLA sweep, for ``helpdesk status`` (a write at
        most every ``heartbeat_every`` seconds, not one per cycle)."""
        record_heartbeat()
        if self._swept_at is not None:
            record_sweep(self._swept_at)
            self._swept_at = None
        self._last_heartbeat = time.monotonic()

    def _ingest(self, result: CycleResult) -> None:
        if self.stopping or not self.imap.due() or not self._ingest_turn():
            return
        try:
            mailbox = self._ensure_mailbox()
            mailbox.refresh()
            # A backlog is taken in slices, like the other stages: the cycle (and so the
            # systemd watchdog ping) comes round every few seconds however much mail waits.
            # At least one batch is taken whatever the slice: the mailbox always moves on.
            deadline = time.monotonic() + self.slice_seconds
            asked = itertools.count()
            got = ingest(mailbox, should_stop=lambda: self.stopping or (
                next(asked) > 0 and time.monotonic() > deadline))
        except DATABASE_ERRORS:
            raise
        except Exception as exc:  # noqa: BLE001 - every failure is an outage, not a crash
            self._imap_failed(exc, result)
            return
        self.imap.recovered()
        self._handed_over_until_recovery = False
        result.fetched, result.duplicates = got.stored, got.duplicates
        result.more = result.more or (got.stopped and not self.stopping)

    def _ingest_turn(self) -> bool:
        """Whether this process ingests the mailbox: one process at a time per mailbox
        (a PostgreSQL advisory lock held by this connection from the first cycle it
        is free; on SQLite always). The other daemons stand by for ingest only."""
        key = app.imap_settings(self.config).mailbox_key
        if time.monotonic() < self._handed_over_until:
            return False  # gave the mailbox up in an IMAP outage: another daemon's turn first
        mine = keep_session_lock(f"helpdesk/mailbox/{key}")
        if mine != self._ingesting:
            if not mine:
                log.info("mailbox %s is ingested by another process; this one stands by "
                         "(it still processes, sends and sweeps)", key)
                self._drop_mailbox()
            elif self._ingesting is not None:
                log.info("mailbox %s: this process ingests it now", key)
            self._ingesting = mine
        return mine

    def _tidy(self, result: CycleResult) -> None:
        if self.stopping or self.mailbox is None or self.imap.down:
            return
        try:
            moved = tidy(self.mailbox)
        except DATABASE_ERRORS:
            raise
        except Exception as exc:  # noqa: BLE001
            self._imap_failed(exc, result)
            return
        result.moved = moved.quarantined + moved.processed

    def _imap_failed(self, exc: BaseException, result: CycleResult) -> None:
        expected = isinstance(exc, CONNECTION_ERRORS)
        result.errors.append(f"ingest: {_describe(exc)}")
        self.imap.failed(_describe(exc), None if expected else exc)
        if self.mailbox is not None:
            self.mailbox.abandon()
            self.mailbox = None
        self._hand_over_mailbox()

    # After this many failed connections in a row, a daemon that holds the mailbox's
    # ingest lock lets it go, so that a daemon on another host (whose route to the mail
    # server may work) can ingest; it tries for the lock again after ``handover_pause``.
    handover_after = 3

    def _hand_over_mailbox(self) -> None:
        if not (self._ingesting and on_postgres() and self.imap.failures >= self.handover_after):
            return
        key = app.imap_settings(self.config).mailbox_key
        try:
            release_session_lock(f"helpdesk/mailbox/{key}")
        except DATABASE_ERRORS:
            return  # a broken connection has let go of the lock already
        self._ingesting = False
        self._handed_over_until = time.monotonic() + max(10.0, 3 * self.config.daemon.interval)
        (log.debug if self._handed_over_until_recovery else log.info)(
            "mailbox %s: the IMAP server cannot be used from here; the mailbox is left "
            "to another daemon for a while", key)
        self._handed_over_until_recovery = True

    def _process(self, result: CycleResult) -> None:
        if self.stopping or not self.processing.due():
            return
        processor = None
        deadline = time.monotonic() + self.slice_seconds
        for letter_id in pending_letter_ids():  # read in pages, never the whole backlog
            if self.stopping:
                return
            if time.monotonic() > deadline:
                result.more = True
                return
            # Several daemons on one PostgreSQL: each letter is claimed first (an advisory
            # lock on its sender, held while it is processed); one claimed elsewhere is skipped.
            with letter_claim(letter_id) as mine:
                if not mine:
                    continue
                processor = processor or self._current_processor()
                try:
                    with self._watching(letter_id):
                        outcome = processor.process_one(letter_id)
                except DATABASE_ERRORS:
                    raise
                except Exception as exc:  # noqa: BLE001 - a bug: traceback once, then back off
                    result.errors.append(f"process: {_describe(exc)}")
                    self.processing.failed(f"letter {letter_id}: {_describe(exc)}", exc)
                    return
            self.processing.recovered()
            result.processed[outcome] = result.processed.get(outcome, 0) + 1
            _log_processed(letter_id, outcome, *processor.last)

    def _sla(self, result: CycleResult) -> None:
        """Reminders and escalations that are due (cheap when nothing is: one indexed query)."""
        if self.stopping:
            return
        began = time.monotonic()
        try:
            swept = sweep(self.config, self.now)
        except DATABASE_ERRORS:
            raise
        except Exception as exc:  # noqa: BLE001 - a bug: traceback once, then back off
            result.errors.append(f"sla: {_describe(exc)}")
            self.processing.failed(f"SLA sweep: {_describe(exc)}", exc)
            return
        self.metrics.sweep_seconds.observe(time.monotonic() - began)
        self._swept_at = utcnow()
        if swept.letters:
            log.info(swept.summary())
            result.sla_letters += len(swept.letters)

    def _digest(self, result: CycleResult) -> None:
        """The administration's daily letter, once per working day (after its time)."""
        if self.stopping:
            return
        now = self.now or datetime.now(timezone.utc)
        try:
            if due_digest(self.config, now) is not None:
                sent = send_digest(self.config, now)
                log.info("daily digest for %s queued to %s", sent.day, ", ".join(sent.recipients))
                result.sla_letters += 1
        except DATABASE_ERRORS:
            raise
        except Exception as exc:  # noqa: BLE001 - a bug: traceback once, then back off
            result.errors.append(f"digest: {_describe(exc)}")
            self.processing.failed(f"digest: {_describe(exc)}", exc)

    def _watching(self, letter_id: int):
        return self._watchdog.watching(letter_id) if self._watchdog else nullcontext()

    def _current_processor(self):
        """The processor, rebuilt only when the roster changed (building one
        prepares the classifier for the roster, which takes a while)."""
        from .roster.store import load_roster

        roster = load_roster()
        if self._processor is None or roster != self._roster:
            self._processor = app.processor(self.config)
            self._roster = roster
        return self._processor

    def _prepare(self) -> None:
        """Build the processor and its classifier now, so the first letter after a
        start is acknowledged as fast as any other."""
        try:
            from .understand.classify import classifier_for

            classifier_for(self._current_processor().roster)
        except Exception as exc:  # noqa: BLE001 - only an optimisation; the cycle reports real trouble
            log.debug("could not prepare the processor in advance: %s", exc)

    def _send(self, result: CycleResult) -> None:
        if self.stopping or not self.smtp.due():
            return
        deadline = time.monotonic() + self.slice_seconds
        try:
            sent = drain(app.smtp_settings(self.config), app.retry_policy(self.config),
                         should_stop=lambda: self.stopping or time.monotonic() > deadline,
                         lease=self.config.daemon.claim_lease)
        except DATABASE_ERRORS:
            raise
        except Exception as exc:  # noqa: BLE001 - a bug: traceback once, then back off
            result.errors.append(f"outbox: {_describe(exc)}")
            self.smtp.failed(_describe(exc), exc)
            return
        result.sent, result.retried, result.failed = sent.sent, sent.retried, sent.failed
        result.errors += sent.errors
        result.more = result.more or (sent.stopped and not self.stopping)
        if sent.unreachable:
            result.errors.append(f"outbox: {sent.unreachable}")
            self.smtp.failed(sent.unreachable)
        elif sent.sent or sent.retried or sent.failed:
            self.smtp.recovered()

    # --- the mailbox connection -------------------------------------------------

    def _ensure_mailbox(self) -> Mailbox:
        if self.mailbox is None:
            mailbox = Mailbox(app.imap_settings(self.config))
            mailbox.connect()
            self.mailbox = mailbox
            self.metrics.imap_connected()
        return self.mailbox

    def _drop_mailbox(self) -> None:
        if self.mailbox is not None:
            self.mailbox.close()
            self.mailbox = None

    # --- modes ------------------------------------------------------------------

    def run_once(self) -> CycleResult:
        """Process everything pending now and return (``helpdesk run --once``)."""
        recover_in_flight()
        total = CycleResult()
        try:
            while True:
                total.merge(self.cycle())
                if not total.more or self.stopping:
                    if self._swept_at is not None:  # the last sweep, before the process ends
                        try:
                            self._record_state()
                        except DATABASE_ERRORS:
                            pass  # status shows the one before; the work itself is done
                    return total
        finally:
            self._drop_mailbox()

    def request_stop(self, *_args) -> None:
        if not self.stopping:
            log.info("stop requested: finishing the letter in hand")
            self.notifier.stopping()
        self.stopping = True

    def run_forever(self) -> None:
        if threading.current_thread() is threading.main_thread():
            signal.signal(signal.SIGTERM, self.request_stop)
            signal.signal(signal.SIGINT, self.request_stop)
        recovered = recover_in_flight()
        if recovered:
            log.warning("%d letter(s) left in flight by the last run requeued "
                        "(each may reach its recipient twice)", recovered)
        self._prepare()
        main = threading.current_thread() is threading.main_thread()
        on_hang = self.on_hang or (restart_process if main else _report_hang)
        watchdog_seconds = self.notifier.watchdog_seconds
        if watchdog_seconds and self.letter_timeout >= watchdog_seconds:
            # systemd would kill a hung process first, without saying which letter hung.
            self.letter_timeout = watchdog_seconds * 0.75
            log.info("systemd watchdog: %g s; a letter processed for longer than %g s "
                     "restarts helpdesk", watchdog_seconds, self.letter_timeout)
        self._watchdog = Watchdog(self.letter_timeout, on_hang).start()
        self._serve_metrics()
        log.info("helpdesk running for %s", self.config.school.address)
        ready = False
        try:
            while not self.stopping:
                result = self.cycle()
                if result.busy:
                    log.info(result.summary())
                self._report(result)
                if not ready:
                    self.notifier.ready(self._status)
                    ready = True
                if not self.stopping and not result.more:
                    self._wait_for_work()
        finally:
            self._watchdog.stop()
            self._drop_mailbox()
            self.metrics.stop()
            self.notifier.close()
        log.info("helpdesk stopped")

    # --- telling systemd and Prometheus -------------------------------------------

    def _serve_metrics(self) -> None:
        m = self.config.metrics
        if not m.enabled:
            return
        try:
            self.metrics.serve(m.listen, m.port)
        except OSError as exc:  # the mail matters more than the metrics: go on without them
            log.error("metrics endpoint %s:%d cannot be opened: %s; running without it",
                      m.listen, m.port, exc)

    def _report(self, result: CycleResult) -> None:
        """After a cycle: a watchdog ping if healthy, and STATUS= when it changed."""
        self._ping_watchdog()
        if not self.notifier.enabled:
            return
        if result.busy:
            self._activity = f"{datetime.now(timezone.utc):%H:%M:%S} UTC: {result.summary()}"
        down = [o.name for o in self._outages() if o.down]
        status = "; ".join(["working through a backlog" if result.more else "waiting for mail",
                            *(f"DOWN: {name}" for name in down), f"last activity {self._activity}"])
        if status != self._status:
            self._status = status
            self.notifier.status(status)

    def healthy(self) -> bool:
        """A cycle completed within half the watchdog interval and no letter hangs."""
        seconds = self.notifier.watchdog_seconds
        if seconds is None:
            return True
        hanging = self._watchdog is not None and self._watchdog.hanging()
        return not hanging and time.monotonic() - self._cycle_end <= seconds / 2

    def _ping_watchdog(self) -> None:
        """WATCHDOG=1, at most every quarter of the interval, only while healthy.
        Called from the main loop alone: a loop that is stuck stops the pings."""
        seconds = self.notifier.watchdog_seconds
        if seconds is None or time.monotonic() - self._last_ping < seconds / 4:
            return
        if self.healthy():
            self.notifier.watchdog()
            self._last_ping = time.monotonic()

    def _waiting(self) -> bool:
        """The stop check of a wait, which also keeps the watchdog fed."""
        self._ping_watchdog()
        return self.stopping

    # --- waiting ----------------------------------------------------------------

    def _idle_usable(self) -> bool:
        mailbox = self.mailbox
        return ("ingest" in self.only and self.config.imap.idle and mailbox is not None
                and not self.imap.down and mailbox.has(b"IDLE"))

    def _wait_seconds(self, idle: bool) -> float:
        """Until the next thing is due: new mail (poll), a retry, a queued letter."""
        limits = [self.config.imap.poll_interval if idle else self.config.daemon.interval]
        if self.notifier.watchdog_seconds:  # a cycle within half the watchdog interval
            limits.append(self.notifier.watchdog_seconds * 0.4)
        now = time.monotonic()
        limits += [o.retry_at - now for o in self._outages() if o.down]
        if "outbox" in self.only and not (self.smtp.down or self.db.down):
            limits.append(_next_letter_due())
        return max(0.0, min(limits))

    def _wait_for_work(self) -> None:
        try:
            idle = self._idle_usable()
            seconds = self._wait_seconds(idle)
            if idle and seconds > 0:
                assert self.mailbox is not None
                self.mailbox.wait(seconds, self._waiting)
                return
        except DATABASE_ERRORS:
            seconds = self.config.daemon.interval
            if self.notifier.watchdog_seconds:  # keep the watchdog fed through the outage
                seconds = min(seconds, self.notifier.watchdog_seconds * 0.4)
        except Exception as exc:  # noqa: BLE001 - the connection broke while waiting
            self._imap_failed(exc, CycleResult())
            return
        self._sleep(seconds)

    def _sleep(self, seconds: float) -> None:
        deadline = time.monotonic() + seconds
        while not self._waiting() and time.monotonic() < deadline:
            time.sleep(min(0.2, deadline - time.monotonic()))


def _next_letter_due() -> float:
    """Seconds until the earliest queued letter may be tried (a large number if none)."""
    row = (Outgoing.select(Outgoing.next_attempt_at).where(Outgoing.status == "queued")
           .order_by(Outgoing.next_attempt_at).first())
    if row is None:
        return 24 * 3600.0
    due = as_aware(row.next_attempt_at)
    return max(0.0, (due.replace(tzinfo=None) - utcnow()).total_seconds())


def _log_processed(letter_id: int, outcome: str, uid: int | None, appeal: int | None) -> None:
    """One line per processed letter: its id, UID and the appeal it went to (no contents)."""
    log.info("letter %s (UID %s): %s%s", letter_id, uid, outcome,
             f" (appeal {appeal})" if appeal is not None else "")


def _describe(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def _reconnect_database() -> None:
    """Drop a broken database connection; the next query opens a new one."""
    try:
        database.close()
    except Exception:  # noqa: BLE001 - it is broken already
        pass
