"""The outbox runner: queued letters -> SMTP, each sent once.

A row is marked ``sending`` (committed) before the SMTP transaction and
``sent`` right after it, so a crash can repeat at most the one letter in
flight, and that letter keeps its Message-ID so mail clients fold the copy.
Transient failures (4xx, a dropped connection) are retried with exponential
backoff and jitter; a permanent refusal (5xx) or too many attempts marks the
row ``failed`` with the server's words, never silently.
"""
from __future__ import annotations

import asyncio
import logging
import random
import ssl
from dataclasses import dataclass, field
from datetime import timedelta

import aiosmtplib

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


@dataclass(frozen=True)
class RetryPolicy:
    max_attempts: int = 8
    base_seconds: float = 30.0
    cap_seconds: float = 3600.0

    def delay(self, attempts: int) -> float:
        raw = min(self.cap_seconds, self.base_seconds * 2 ** max(0, attempts - 1))
        return raw * random.uniform(0.8, 1.2)


def recover_in_flight() -> int:
    """At start: letters left ``sending`` by a crash go back to the queue."""
    return Outgoing.update(status="queued").where(Outgoing.status == "sending").execute()


def _tls_context(settings: SmtpSettings) -> ssl.SSLContext:
    context = ssl.create_default_context(cafile=settings.ca_file)
    if not settings.verify_tls:
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    return context


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
        else:
            Outgoing.update(
                status="queued",
                attempts=attempts,
                last_error=error,
                next_attempt_at=utcnow() + timedelta(seconds=policy.delay(attempts)),
            ).where(Outgoing.id == row.id).execute()
            result.retried += 1
    result.errors.append(error)


async def _drain(settings: SmtpSettings, policy: RetryPolicy, limit: int | None) -> SendResult:
    result = SendResult()
    client: aiosmtplib.SMTP | None = None
    remaining = limit
    try:
        while remaining is None or remaining > 0:
            batch = _due_batch(min(BATCH, remaining) if remaining else BATCH)
            if not batch:
                break
            for row in batch:
                if client is None or not client.is_connected:
                    client = make_client(settings)
                    try:
                        await _login(client, settings)
                    except (aiosmtplib.SMTPException, OSError) as exc:
                        error = f"SMTP {settings.host}:{settings.port} недоступен: {exc}"
                        log.warning("outbox: %s", error)
                        for pending in batch[batch.index(row):]:
                            _fail(pending, error, policy, result, permanent=False)
                        client = None
                        return result
                Outgoing.update(status="sending").where(Outgoing.id == row.id).execute()
                try:
                    await client.sendmail(row.mail_from, row.recipient_list(), bytes(row.raw))
                except aiosmtplib.SMTPRecipientsRefused as exc:
                    _fail(row, f"адрес отклонён сервером: {exc}", policy, result, permanent=True)
                except aiosmtplib.SMTPResponseException as exc:
                    _fail(row, f"{exc.code} {exc.message}", policy, result,
                          permanent=500 <= exc.code < 600)
                except (aiosmtplib.SMTPException, OSError) as exc:
                    _fail(row, f"соединение прервано: {exc}", policy, result, permanent=False)
                    client = None
                else:
                    Outgoing.update(status="sent", sent_at=utcnow(), attempts=row.attempts + 1).where(
                        Outgoing.id == row.id
                    ).execute()
                    result.sent += 1
            if remaining is not None:
                remaining -= len(batch)
    finally:
        if client is not None and client.is_connected:
            try:
                await client.quit()
            except aiosmtplib.SMTPException:
                pass
    return result


def drain(settings: SmtpSettings, policy: RetryPolicy = RetryPolicy(), limit: int | None = None) -> SendResult:
    """Send every queued letter that is due. Returns what happened."""
    return asyncio.run(_drain(settings, policy, limit))


async def probe(settings: SmtpSettings) -> str:
    """Connect (and log in) without sending: used by ``helpdesk check``."""
    client = make_client(settings)
    await _login(client, settings)
    banner = f"{settings.host}:{settings.port} ({settings.security})"
    await client.quit()
    return banner
