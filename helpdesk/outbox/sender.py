"""The outbox runner: queued letters -> SMTP, each sent once.

A row is marked ``sending`` (committed) before the SMTP transaction and
``sent`` right after it, so a crash can repeat at most the one letter in
flight, and that letter keeps its Message-ID so mail clients fold the copy.
A refusal of one letter is retried with exponential backoff and jitter when
it is temporary (4xx, a dropped connection); a permanent refusal (5xx) or too
many attempts marks the row ``failed`` with the server's words, never silently.
A server that cannot be reached at all (refused, timed out, login failed) is
not the letters' fault: they stay queued with their attempts untouched, and
the result says ``unreachable`` so the daemon can back off as a whole.
"""
from __future__ import annotations

import asyncio
import logging
import random
import ssl
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Callable

import aiosmtplib

from ..tls import client_context

from ..store.models import Event, Outgoing, database, utcnow

log = logging.getLogger("helpdesk.outbox")

BATCH = 500


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


def recover_in_flight() -> int:
    """At start: letters left ``sending`` by a crash go back to the queue.

    Such a letter may have reached the server before the crash, so it may
    arrive twice; it keeps its Message-ID, and the event log says so."""
    rows = list(Outgoing.select(Outgoing.id, Outgoing.appeal, Outgoing.kind, Outgoing.recipients)
                .where(Outgoing.status == "sending"))
    with database.atomic():
        for row in rows:
            Outgoing.update(status="queued").where(Outgoing.id == row.id).execute()
            Event.create(
                kind="send_resumed",
                appeal=row.appeal_id,
                message=f"Отправка письма {row.kind} для {', '.join(row.recipient_list())} была "
                "прервана сбоем и повторена; адресат может получить его дважды (с тем же Message-ID).",
            )
    return len(rows)


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
    if settings.username and settings.password:
        await client.login(settings.username, settings.password)


def _due_batch(limit: int) -> list[Outgoing]:
    return list(
        Outgoing.select()
        .where((Outgoing.status == "queued") & (Outgoing.next_attempt_at <= utcnow()))
        .order_by(Outgoing.id)
        .limit(limit)
    )


def _fail(row: Outgoing, error: str, policy: RetryPolicy, result: SendResult, permanent: bool) -> None:
    attempts = row.attempts + 1
    with database.atomic():
        if permanent or attempts >= policy.max_attempts:
            Outgoing.update(status="failed", attempts=attempts, last_error=error).where(
                Outgoing.id == row.id
            ).execute()
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
            ).where(Outgoing.id == row.id).execute()
            result.retried += 1
            log.debug("outbox: letter %s deferred (%s); next try in %.0f s", row.id, error, delay)
    result.errors.append(error)


def _permanent(exc: aiosmtplib.SMTPRecipientsRefused) -> bool:
    """All recipients refused for good (5xx), not just for now (4xx)."""
    return all(500 <= r.code < 600 for r in exc.recipients)


def _sent(row: Outgoing, refused: dict, result: SendResult) -> None:
    with database.atomic():
        Outgoing.update(status="sent", sent_at=utcnow(), attempts=row.attempts + 1).where(
            Outgoing.id == row.id
        ).execute()
        if refused:  # some recipients refused, the others got it
            Event.create(
                kind="send_partial",
                appeal=row.appeal_id,
                message=f"Письмо {row.kind} не доставлено адресатам "
                f"{', '.join(sorted(refused))}: " + "; ".join(
                    f"{code} {text}" for code, text in refused.values()),
            )
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
    """One letter: marked ``sending`` (committed) first, then sent, then ``sent``.
    Returns False when the connection should not be used again."""
    Outgoing.update(status="sending").where(Outgoing.id == row.id).execute()
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


async def _drain(settings: SmtpSettings, policy: RetryPolicy, limit: int | None,
                 should_stop: Callable[[], bool] = _never) -> SendResult:
    result = SendResult()
    client: aiosmtplib.SMTP | None = None
    remaining = limit
    try:
        while remaining is None or remaining > 0:
            batch = _due_batch(min(BATCH, remaining) if remaining else BATCH)
            if not batch:
                break
            for row in batch:
                if should_stop():
                    result.stopped = True
                    return result
                if client is None or not client.is_connected:
                    client = await _connect(settings, result)
                    if client is None:
                        return result  # the letters stay queued, attempts untouched
                if not await _send_one(client, row, policy, result):
                    await _close(client)
                    client = None
            if remaining is not None:
                remaining -= len(batch)
    finally:
        if client is not None:
            await _close(client)
    return result


def drain(settings: SmtpSettings, policy: RetryPolicy = RetryPolicy(), limit: int | None = None,
          should_stop: Callable[[], bool] = _never) -> SendResult:
    """Send every queued letter that is due (until ``should_stop()``). Returns what happened."""
    return asyncio.run(_drain(settings, policy, limit, should_stop))


async def probe(settings: SmtpSettings) -> str:
    """Connect (and log in) without sending: used by ``helpdesk check``."""
    client = make_client(settings)
    await _login(client, settings)
    banner = f"{settings.host}:{settings.port} ({settings.security})"
    await client.quit()
    return banner
