"""The outbox runner: queued letters -> SMTP, each sent once.

Letters are *claimed* in batches before the SMTP transaction: one short
statement marks up to ``CLAIM_BATCH`` due rows ``sending`` with this process as
owner (``claimed_by``: host/pid/start token) and a lease (``lease_until``). On
PostgreSQL the rows are picked with FOR UPDATE SKIP LOCKED, so several daemons
(or hosts) on one database never claim the same letter; SQLite has one writer at
a time. A letter is marked ``sent`` right after the server accepted it, so a
crash can repeat at most the one letter in flight, and that letter keeps its
Message-ID so mail clients fold the copy. A letter left ``sending`` goes back to
the queue only when its owner is gone: its lease ran out, or its process is
known dead on this host (``recover_in_flight``, at start and every drain) --
never while another daemon may still be sending it.

A refusal of one letter is retried with exponential backoff and jitter when
it is temporary (4xx, a dropped connection); a permanent refusal (5xx) or too
many attempts marks the row ``failed`` with the server's words, never silently.
A server that cannot be reached at all (refused, timed out, login failed) is
not the letters' fault: they go back to the queue with their attempts untouched,
and the result says ``unreachable`` so the daemon can back off as a whole.
"""
from __future__ import annotations

import asyncio
import logging
import os
import random
import secrets
import socket
import ssl
import threading
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Callable, Iterator

import aiosmtplib
import peewee

from ..auth import smtp_login
from ..tls import client_context

from ..store.db import commit_without_flush, on_postgres
from ..store.models import Event, Outgoing, database, utcnow

log = logging.getLogger("helpdesk.outbox")

CLAIM_BATCH = 50  # letters claimed (and then sent over one connection) per claim
LEASE_SECONDS = 300.0  # a claim not renewed for this long is considered abandoned


@dataclass(frozen=True)
class SmtpSettings:
    host: str
    port: int
    security: str  # none | starttls | ssl
    username: str | None = None
    password: str | None = None
    timeout: float = 30.0
    verify_tls: bool = True
    ca_file: str | None = None
    auth: str = "password"  # password | xoauth2 (see helpdesk.auth)
    token_file: str | None = None
    token_command: str | None = None


@dataclass
class SendResult:
    sent: int = 0
    retried: int = 0
    failed: int = 0
    errors: list[str] = field(default_factory=list)
    unreachable: str | None = None  # the server could not be used at all; nothing was tried
    stopped: bool = False  # a stop was requested before the queue was empty


@dataclass(frozen=True)
class RetryPolicy:
    max_attempts: int = 8
    base_seconds: float = 30.0
    cap_seconds: float = 3600.0

    def delay(self, attempts: int) -> float:
        raw = min(self.cap_seconds, self.base_seconds * 2 ** max(0, attempts - 1))
        return raw * random.uniform(0.8, 1.2)


# --- who is sending: claims and their owners --------------------------------------------

_owner: tuple[int, str] | None = None  # (pid, owner string) of this process
_owner_lock = threading.Lock()


def owner() -> str:
    """This process as a claim owner: "host/pid/start token" (a new token after a fork)."""
    global _owner
    pid = os.getpid()
    with _owner_lock:
        if _owner is None or _owner[0] != pid:
            _owner = (pid, f"{socket.gethostname()}/{pid}/{secrets.token_hex(4)}")
        return _owner[1]


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process
        return True
    return True


def abandoned(claimed_by: str | None, lease_until: datetime | None, now: datetime,
              me: str | None = None, pid_alive: Callable[[int], bool] = _pid_alive) -> bool:
    """Whether a letter left ``sending`` by ``claimed_by`` may be requeued now.

    Yes without an owner (a row from before claims existed), when the lease ran out
    (a sender renews it while it works through its batch), or when the owner is a
    process of this host that is gone (an earlier run with the same pid, or a pid
    that no longer exists). Never within the lease for this process's own claims
    or for a live owner."""
    me = me or owner()
    if not claimed_by:
        return True
    if lease_until is not None and lease_until <= now:
        return True
    if claimed_by == me:
        return False
    host, _, rest = claimed_by.partition("/")
    pid_text, _, _token = rest.partition("/")
    my_host, _, my_rest = me.partition("/")
    if host != my_host or not pid_text.isdigit():
        return False  # another host: only its lease tells
    pid = int(pid_text)
    if str(pid) == my_rest.partition("/")[0]:
        return True  # our pid, another start token: an earlier run of this process id
    return not pid_alive(pid)


def recover_in_flight(now: datetime | None = None) -> int:
    """Letters left ``sending`` by a process that is gone go back to the queue.

    A process sends its claimed letters in id order and marks each one before the
    next, so of the letters it left only the first may have been in flight: it may
    have reached the server before the crash and so may arrive twice. It keeps its
    Message-ID, and the event log says so; the others were never tried. Letters
    another live daemon is sending are left alone (see ``abandoned``).

    Returns how many of the requeued letters may have been in flight."""
    now = now or utcnow()
    rows = [row for row in Outgoing.select(Outgoing.id, Outgoing.appeal, Outgoing.kind,
                                           Outgoing.recipients, Outgoing.claimed_by,
                                           Outgoing.lease_until)
            .where(Outgoing.status == "sending").order_by(Outgoing.id)
            if abandoned(row.claimed_by, row.lease_until, now)]
    requeued = in_flight = 0
    first_of: set[str] = set()
    with database.atomic():
        for row in rows:
            if not (Outgoing.update(status="queued", claimed_by=None, lease_until=None)
                    .where((Outgoing.id == row.id) & (Outgoing.status == "sending")
                           & _same_owner(row.claimed_by))
                    .execute()):
                continue  # finished or taken over meanwhile
            requeued += 1
            if row.claimed_by and row.claimed_by in first_of:
                continue  # claimed with the one in flight, never tried
            first_of.add(row.claimed_by or "")
            in_flight += 1
            Event.create(
                kind="send_resumed",
                appeal=row.appeal_id,
                message=f"Отправка письма {row.kind} для {', '.join(row.recipient_list())} была "
                "прервана сбоем и повторена; адресат может получить его дважды (с тем же Message-ID).",
            )
            log.warning("outbox: letter %s left in flight by %s requeued (it may arrive twice)",
                        row.id, row.claimed_by or "an earlier run")
    if requeued > in_flight:
        log.info("outbox: %d letter(s) claimed by a stopped process and never tried requeued",
                 requeued - in_flight)
    return in_flight


def _same_owner(claimed_by: str | None):
    return Outgoing.claimed_by.is_null() if claimed_by is None else Outgoing.claimed_by == claimed_by


def claim(limit: int = CLAIM_BATCH, lease: float = LEASE_SECONDS) -> list[Outgoing]:
    """Claim up to ``limit`` due queued letters for this process, in id order.

    One statement: it marks them ``sending`` with this process as owner and a
    lease. On PostgreSQL the rows are chosen FOR UPDATE SKIP LOCKED, so two
    daemons claiming at once take different letters."""
    now = utcnow()
    due = (Outgoing.select(Outgoing.id)
           .where((Outgoing.status == "queued") & (Outgoing.next_attempt_at <= now))
           .order_by(Outgoing.id)
           .limit(limit))
    if on_postgres():
        due = due.for_update("FOR UPDATE SKIP LOCKED")  # the string form: peewee 3.17 and 4.x
    claimed = (Outgoing.update(status="sending", claimed_by=owner(),
                               lease_until=now + timedelta(seconds=lease))
               .where(Outgoing.id.in_(due))
               .returning(*_SENDING_COLUMNS)
               .execute())
    return sorted(claimed, key=lambda row: row.id)


# What sending a claimed letter reads (``_send_one``, ``_sent``, ``_fail``, ``renew``,
# ``release``): not the bookkeeping columns, so a claim builds small rows.
_SENDING_COLUMNS = (Outgoing.id, Outgoing.appeal, Outgoing.kind, Outgoing.mail_from,
                    Outgoing.recipients, Outgoing.raw, Outgoing.attempts)


def renew(rows: list[Outgoing], lease: float = LEASE_SECONDS) -> list[Outgoing]:
    """Extend the lease of the claimed ``rows``; returns those still ours. A letter
    whose lease ran out meanwhile (this process was stopped or starved for that
    long) may have been requeued and taken by another daemon: it is not sent here."""
    if not rows:
        return rows
    mine = {row.id for row in
            Outgoing.update(lease_until=utcnow() + timedelta(seconds=lease))
            .where(Outgoing.id.in_([row.id for row in rows]) & (Outgoing.status == "sending")
                   & (Outgoing.claimed_by == owner()))
            .returning(Outgoing.id).execute()}
    if len(mine) < len(rows):
        log.warning("outbox: %d claimed letter(s) were taken over after the lease ran out; "
                    "leaving them to the other sender", len(rows) - len(mine))
    return [row for row in rows if row.id in mine]


def release(rows: list[Outgoing]) -> None:
    """Give claimed letters that were not tried back to the queue, untouched."""
    ids = [row.id for row in rows]
    if ids:
        Outgoing.update(status="queued", claimed_by=None, lease_until=None).where(
            Outgoing.id.in_(ids) & (Outgoing.status == "sending")
            & (Outgoing.claimed_by == owner())).execute()


def _tls_context(settings: SmtpSettings) -> ssl.SSLContext:
    return client_context(settings.ca_file, settings.verify_tls)


def make_client(settings: SmtpSettings) -> aiosmtplib.SMTP:
    secure = settings.security != "none"
    return aiosmtplib.SMTP(
        hostname=settings.host,
        port=settings.port,
        use_tls=settings.security == "ssl",
        start_tls=True if settings.security == "starttls" else False,
        tls_context=_tls_context(settings) if secure else None,
        timeout=settings.timeout,
    )


async def _login(client: aiosmtplib.SMTP, settings: SmtpSettings) -> None:
    await client.connect()
    await smtp_login(client, settings)


def _fail(row: Outgoing, error: str, policy: RetryPolicy, result: SendResult, permanent: bool) -> None:
    attempts = row.attempts + 1
    with database.atomic():
        if permanent or attempts >= policy.max_attempts:
            Outgoing.update(status="failed", attempts=attempts, last_error=error,
                            claimed_by=None, lease_until=None).where(Outgoing.id == row.id).execute()
            Event.create(
                kind="send_failed",
                appeal=row.appeal_id,
                message=f"Письмо {row.kind} для {', '.join(row.recipient_list())} не отправлено: "
                f"{error}. Нужна проверка адреса или настроек почты.",
            )
            result.failed += 1
            log.warning("outbox: letter %s (%s) given up after %d attempt(s): %s",
                        row.id, row.kind, attempts, error)
        else:
            delay = policy.delay(attempts)
            Outgoing.update(
                status="queued",
                attempts=attempts,
                last_error=error,
                next_attempt_at=utcnow() + timedelta(seconds=delay),
                claimed_by=None,
                lease_until=None,
            ).where(Outgoing.id == row.id).execute()
            result.retried += 1
            log.debug("outbox: letter %s deferred (%s); next try in %.0f s", row.id, error, delay)
    result.errors.append(error)


def _permanent(exc: aiosmtplib.SMTPRecipientsRefused) -> bool:
    """All recipients refused for good (5xx), not just for now (4xx)."""
    return all(500 <= r.code < 600 for r in exc.recipients)


def _mark_sent_sql() -> str:
    """The statement marking a letter sent, run once per letter: written out, since
    building a peewee query per letter costs more than the UPDATE itself."""
    table, p = Outgoing._meta.table_name, database.param
    return (f'UPDATE "{table}" SET "status" = \'sent\', "sent_at" = {p}, "attempts" = {p}, '
            f'"lease_until" = NULL WHERE "id" = {p}')


def _sent(row: Outgoing, refused: dict, result: SendResult) -> None:
    """Mark one letter sent (the server has accepted it), with an event when some
    recipients were refused. The commit does not wait for the database's disk
    flush (see ``commit_without_flush`` and ``_lazy_flush``): a crash of this
    process loses nothing committed; only a crash of the database server itself
    could forget the last marks, and those letters would be sent again with their
    Message-IDs. ``claimed_by`` stays: which process sent the letter."""
    if not refused:  # the usual case: one autocommitted statement, one round trip
        database.execute_sql(_mark_sent_sql(), (Outgoing.sent_at.db_value(utcnow()),
                                                row.attempts + 1, row.id))
        log.info("outbox: letter %s (%s, appeal %s) sent", row.id, row.kind, row.appeal_id)
        result.sent += 1
        return
    with database.atomic():
        commit_without_flush()
        Outgoing.update(status="sent", sent_at=utcnow(), attempts=row.attempts + 1,
                        lease_until=None).where(Outgoing.id == row.id).execute()
        # some recipients refused, the others got it
        Event.create(
            kind="send_partial",
            appeal=row.appeal_id,
            message=f"Письмо {row.kind} не доставлено адресатам "
            f"{', '.join(sorted(refused))}: " + "; ".join(
                f"{code} {text}" for code, text in refused.values()),
        )
    log.info("outbox: letter %s (%s, appeal %s) sent", row.id, row.kind, row.appeal_id)
    result.sent += 1


class Unsendable(Exception):
    """This letter cannot be put on the wire at all (an address SMTP cannot carry)."""


def _wire_address(address: str, smtputf8: bool) -> str:
    """An envelope address as the server can take it: an internationalised domain
    as IDNA; a non-ASCII local part only where the server offers SMTPUTF8."""
    if address.isascii() or smtputf8:
        return address
    local, at, domain = address.rpartition("@")
    if at and local.isascii():
        try:
            return f"{local}@{domain.encode('idna').decode('ascii')}"
        except UnicodeError:
            pass
    raise Unsendable(f"адрес {address!r} не в ASCII, а сервер не поддерживает SMTPUTF8")


def _envelope(client: aiosmtplib.SMTP, row: Outgoing) -> tuple[str, list[str], list[str]]:
    smtputf8 = client.supports_extension("smtputf8")
    addresses = [row.mail_from, *row.recipient_list()]
    options = ["SMTPUTF8"] if smtputf8 and not all(a.isascii() for a in addresses) else []
    wire = [_wire_address(a, smtputf8) for a in addresses]
    return wire[0], wire[1:], options


async def _send_one(client: aiosmtplib.SMTP, row: Outgoing, policy: RetryPolicy,
                    result: SendResult) -> bool:
    """One claimed letter (already ``sending``, committed): sent, then marked ``sent``.
    Returns False when the connection should not be used again."""
    try:
        mail_from, recipients, options = _envelope(client, row)
        refused, _reply = await client.sendmail(mail_from, recipients, bytes(row.raw),
                                                mail_options=options)
    except Unsendable as exc:
        _fail(row, str(exc), policy, result, permanent=True)
    except aiosmtplib.SMTPRecipientsRefused as exc:
        _fail(row, f"адрес отклонён сервером: {exc}", policy, result, permanent=_permanent(exc))
    except aiosmtplib.SMTPResponseException as exc:
        _fail(row, f"{exc.code} {exc.message}", policy, result, permanent=500 <= exc.code < 600)
    except (aiosmtplib.SMTPException, OSError) as exc:
        _fail(row, f"соединение прервано: {exc}", policy, result, permanent=False)
        return False
    except Exception as exc:  # noqa: BLE001 - a bug must cost one letter, not the outbox
        log.exception("outbox: letter %s could not be sent", row.id)
        _fail(row, f"ошибка при отправке: {type(exc).__name__}: {exc}", policy, result, permanent=True)
        return False
    else:
        _sent(row, {address: (r.code, r.message) for address, r in (refused or {}).items()}, result)
    return client.is_connected


async def _connect(settings: SmtpSettings, result: SendResult) -> aiosmtplib.SMTP | None:
    client = make_client(settings)
    try:
        await _login(client, settings)
    except Exception as exc:  # noqa: BLE001 - refused, timed out, TLS, login: all "unreachable"
        result.unreachable = f"SMTP {settings.host}:{settings.port}: {type(exc).__name__}: {exc}"
        try:
            client.close()
        except Exception:  # noqa: BLE001 - nothing more to do with a broken client
            pass
        return None
    return client


async def _close(client: aiosmtplib.SMTP) -> None:
    """End a connection that may be in any state (a failed transaction, a reset)."""
    try:
        if client.is_connected:
            await client.quit()
    except Exception:  # noqa: BLE001 - closing it is all that is left
        client.close()


def _never() -> bool:
    return False


@contextmanager
def _lazy_flush() -> Iterator[None]:
    """On PostgreSQL, the drain's commits do not wait for the WAL flush
    (``synchronous_commit = off`` for this session while it lasts, then the
    previous value again), so a mark is one autocommitted statement instead of
    BEGIN, SET LOCAL, UPDATE, COMMIT. The same trade as ``commit_without_flush``:
    a crash of the daemon loses nothing committed; a crash of the database server
    may forget the last fraction of a second of commits, in order (claims, marks,
    requeues), so at worst letters accepted just before are sent again with their
    Message-IDs, or a failure is found again on the next try. SQLite in WAL mode
    with synchronous=NORMAL does not flush on commit anyway."""
    if not on_postgres():
        yield
        return
    previous = database.execute_sql("SHOW synchronous_commit").fetchone()[0]
    database.execute_sql("SET synchronous_commit TO OFF")
    try:
        yield
    finally:
        try:
            database.execute_sql("SELECT set_config('synchronous_commit', %s, false)", (previous,))
        except peewee.PeeweeException as exc:  # a broken connection: the session is gone anyway
            log.debug("outbox: could not restore synchronous_commit: %s", exc)


async def _drain(settings: SmtpSettings, policy: RetryPolicy, limit: int | None,
                 should_stop: Callable[[], bool] = _never,
                 lease: float = LEASE_SECONDS) -> SendResult:
    with _lazy_flush():
        return await _drain_claimed(settings, policy, limit, should_stop, lease)


async def _drain_claimed(settings: SmtpSettings, policy: RetryPolicy, limit: int | None,
                         should_stop: Callable[[], bool], lease: float) -> SendResult:
    result = SendResult()
    client: aiosmtplib.SMTP | None = None
    remaining = limit
    batch: list[Outgoing] = []
    recover_in_flight()  # letters left by a daemon that died meanwhile (see ``abandoned``)
    try:
        while remaining is None or remaining > 0:
            batch = claim(min(CLAIM_BATCH, remaining) if remaining else CLAIM_BATCH, lease)
            if not batch:
                break
            renewed = time.monotonic()
            while batch:
                if should_stop():
                    result.stopped = True
                    return result
                if time.monotonic() - renewed > lease / 3:
                    batch = renew(batch, lease)
                    renewed = time.monotonic()
                    if not batch:
                        break
                if client is None or not client.is_connected:
                    client = await _connect(settings, result)
                    if client is None:
                        return result  # the letters go back to the queue, attempts untouched
                row = batch.pop(0)
                if not await _send_one(client, row, policy, result):
                    await _close(client)
                    client = None
                if remaining is not None:
                    remaining -= 1
    finally:
        release(batch)  # claimed but not tried (a stop, an unreachable server, an error)
        if client is not None:
            await _close(client)
    return result


def drain(settings: SmtpSettings, policy: RetryPolicy = RetryPolicy(), limit: int | None = None,
          should_stop: Callable[[], bool] = _never, lease: float = LEASE_SECONDS) -> SendResult:
    """Send every queued letter that is due (until ``should_stop()``). Returns what happened.

    ``lease``: seconds a claim holds without renewal (renewed while sending)."""
    return asyncio.run(_drain(settings, policy, limit, should_stop, lease))


async def probe(settings: SmtpSettings) -> str:
    """Connect (and log in) without sending: used by ``helpdesk check``."""
    client = make_client(settings)
    await _login(client, settings)
    banner = f"{settings.host}:{settings.port} ({settings.security})"
    await client.quit()
    return banner
