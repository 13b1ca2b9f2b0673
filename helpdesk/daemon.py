"""The long-running worker: ingest -> process -> outbox, then wait for mail.

Each stage is a runner over database rows, so the order of a cycle is also the
crash-recovery order: whatever a killed process left half-way is picked up by
the next cycle. SIGTERM/SIGINT mean "finish the item in hand, then exit 0".
"""
from __future__ import annotations

import logging
import random
import signal
import time
from dataclasses import dataclass, field

from . import app
from .config import Config
from .ingest.imap import Mailbox, MailboxError
from .ingest.runner import ingest
from .outbox.sender import drain, recover_in_flight

log = logging.getLogger("helpdesk.daemon")

STAGES = ("ingest", "process", "outbox")


@dataclass
class CycleResult:
    fetched: int = 0
    duplicates: int = 0
    processed: dict[str, int] = field(default_factory=dict)
    sent: int = 0
    retried: int = 0
    failed: int = 0
    errors: list[str] = field(default_factory=list)

    def summary(self) -> str:
        done = ", ".join(f"{k}: {v}" for k, v in sorted(self.processed.items())) or "nothing"
        return (
            f"fetched {self.fetched} new letter(s) ({self.duplicates} duplicate(s)); "
            f"processed {done}; sent {self.sent}, retry later {self.retried}, failed {self.failed}"
        )


class Daemon:
    def __init__(self, config: Config, only: tuple[str, ...] = STAGES) -> None:
        self.config = config
        self.only = only
        self.stopping = False
        self.mailbox: Mailbox | None = None

    # --- one cycle ------------------------------------------------------------

    def _ensure_mailbox(self) -> Mailbox:
        if self.mailbox is None:
            mailbox = Mailbox(app.imap_settings(self.config))
            mailbox.connect()
            self.mailbox = mailbox
        return self.mailbox

    def _drop_mailbox(self) -> None:
        if self.mailbox is not None:
            self.mailbox.close()
            self.mailbox = None

    def cycle(self) -> CycleResult:
        result = CycleResult()
        if "ingest" in self.only:
            try:
                mailbox = self._ensure_mailbox()
                mailbox.refresh()
                got = ingest(mailbox)
                result.fetched, result.duplicates = got.stored, got.duplicates
            except (MailboxError, OSError, Exception) as exc:  # noqa: BLE001 - logged, retried
                if not isinstance(exc, (MailboxError, OSError)):
                    log.exception("ingest failed")
                result.errors.append(f"ingest: {exc}")
                self._drop_mailbox()
        if "process" in self.only and not self.stopping:
            processed = app.processor(self.config).process_pending()
            result.processed = processed.counts
        if "outbox" in self.only and not self.stopping:
            sent = drain(app.smtp_settings(self.config), app.retry_policy(self.config))
            result.sent, result.retried, result.failed = sent.sent, sent.retried, sent.failed
            result.errors += sent.errors
        return result

    # --- modes ------------------------------------------------------------------

    def run_once(self) -> CycleResult:
        """Process everything pending now and return (``helpdesk run --once``)."""
        recover_in_flight()
        try:
            return self.cycle()
        finally:
            self._drop_mailbox()

    def request_stop(self, *_args) -> None:
        if not self.stopping:
            log.info("stop requested: finishing the letter in hand")
        self.stopping = True

    def run_forever(self) -> None:
        signal.signal(signal.SIGTERM, self.request_stop)
        signal.signal(signal.SIGINT, self.request_stop)
        recovered = recover_in_flight()
        if recovered:
            log.info("%d letter(s) left in flight by the last run requeued", recovered)
        failures = 0
        log.info("helpdesk running for %s", self.config.school.address)
        while not self.stopping:
            result = self.cycle()
            if result.fetched or result.processed or result.sent or result.failed:
                log.info(result.summary())
            failures = failures + 1 if any(e.startswith("ingest") for e in result.errors) else 0
            if failures:
                # One clear line per outage, exponential backoff with jitter.
                delay = min(300.0, 2.0 ** min(failures, 8)) * random.uniform(0.5, 1.0)
                if failures == 1:
                    log.warning("mailbox unavailable (%s); retrying with backoff", result.errors[0])
                self._sleep(delay)
                continue
            self._wait_for_work()
        self._drop_mailbox()
        log.info("helpdesk stopped")

    def _wait_for_work(self) -> None:
        interval = self.config.imap.poll_interval if self.config.imap.idle else self.config.daemon.interval
        if "ingest" in self.only and self.config.imap.idle and self.mailbox is not None:
            try:
                # IDLE must be re-issued before the server's 29-minute limit.
                self.mailbox.wait(min(interval, 25 * 60), lambda: self.stopping)
                return
            except Exception as exc:  # noqa: BLE001 - the connection broke; next cycle reconnects
                log.warning("IDLE interrupted: %s", exc)
                self._drop_mailbox()
                return
        self._sleep(interval)

    def _sleep(self, seconds: float) -> None:
        deadline = time.monotonic() + seconds
        while not self.stopping and time.monotonic() < deadline:
            time.sleep(min(0.5, deadline - time.monotonic()))
