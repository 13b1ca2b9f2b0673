"""The mailbox edge: an IMAP connection that lists and fetches letters by UID.

Only this module speaks IMAP. Letters are fetched with BODY.PEEK[] so that
polling never marks them read; their identity is (UIDVALIDITY, UID).
"""
from __future__ import annotations

import logging
import socket
import ssl
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Callable, Iterator

from imapclient import IMAPClient
from imapclient.exceptions import IMAPClientError

log = logging.getLogger("helpdesk.imap")

FETCH_BATCH = 200


class MailboxError(Exception):
    """The mailbox cannot be reached or used; the message says why in plain words."""


@dataclass(frozen=True)
class ImapSettings:
    host: str
    port: int
    security: str  # none | starttls | ssl
    username: str
    password: str | None
    folder: str = "INBOX"
    processed_flag: str = ""  # set once a letter is stored ("" = leave flags alone)
    timeout: float = 30.0
    verify_tls: bool = True
    ca_file: str | None = None

    @property
    def mailbox_key(self) -> str:
        return f"{self.username}@{self.host}:{self.port}/{self.folder}"


@dataclass(frozen=True)
class FetchedLetter:
    uid: int
    internaldate: datetime  # aware UTC
    raw: bytes


def _tls_context(settings: ImapSettings) -> ssl.SSLContext:
    context = ssl.create_default_context(cafile=settings.ca_file)
    if not settings.verify_tls:
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    return context


class Mailbox:
    """A connected, selected IMAP folder."""

    def __init__(self, settings: ImapSettings) -> None:
        self.settings = settings
        self.client: IMAPClient | None = None
        self.uidvalidity: int | None = None

    def __enter__(self) -> "Mailbox":
        self.connect()
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def connect(self) -> None:
        s = self.settings
        try:
            client = IMAPClient(
                s.host, port=s.port, ssl=s.security == "ssl",
                ssl_context=_tls_context(s) if s.security != "none" else None,
                timeout=s.timeout,
            )
            if s.security == "starttls":
                client.starttls(_tls_context(s))
        except (OSError, socket.timeout, IMAPClientError, ssl.SSLError) as exc:
            raise MailboxError(f"cannot connect to IMAP {s.host}:{s.port} ({s.security}): {exc}") from exc
        try:
            client.login(s.username, s.password or "")
        except IMAPClientError as exc:
            client.shutdown()
            raise MailboxError(f"IMAP login as {s.username!r} failed: {exc}") from exc
        try:
            info = client.select_folder(s.folder, readonly=not s.processed_flag)
        except IMAPClientError as exc:
            client.logout()
            raise MailboxError(f"IMAP folder {s.folder!r} cannot be opened: {exc}") from exc
        self.client = client
        self.uidvalidity = int(info[b"UIDVALIDITY"])

    def close(self) -> None:
        if self.client is not None:
            try:
                self.client.logout()
            except Exception:  # the connection may already be gone
                pass
            self.client = None

    def refresh(self) -> None:
        """Re-select the folder so that letters delivered since are visible."""
        assert self.client is not None
        info = self.client.select_folder(self.settings.folder, readonly=not self.settings.processed_flag)
        self.uidvalidity = int(info[b"UIDVALIDITY"])

    def mark_processed(self, uids: list[int]) -> None:
        """Flag stored letters so a person looking at the mailbox sees what was taken in."""
        if uids and self.settings.processed_flag and self.client is not None:
            self.client.add_flags(uids, [self.settings.processed_flag], silent=True)

    @property
    def capabilities(self) -> tuple[bytes, ...]:
        assert self.client is not None
        return tuple(self.client.capabilities())

    def uids_after(self, last_uid: int) -> list[int]:
        assert self.client is not None
        # "N:*" always returns the highest UID even when it is <= N; filter it out.
        uids = self.client.search(["UID", f"{last_uid + 1}:*"])
        return sorted(u for u in uids if u > last_uid)

    def fetch(self, uids: list[int], batch: int = FETCH_BATCH) -> Iterator[FetchedLetter]:
        assert self.client is not None
        for start in range(0, len(uids), batch):
            chunk = uids[start : start + batch]
            data = self.client.fetch(chunk, ["BODY.PEEK[]", "INTERNALDATE"])
            for uid in chunk:
                item = data.get(uid)
                if not item or b"BODY[]" not in item:
                    log.warning("UID %s vanished before it could be fetched", uid)
                    continue
                internal = item.get(b"INTERNALDATE") or datetime.now(timezone.utc)
                if internal.tzinfo is None:  # imapclient gives local naive time by default
                    internal = internal.astimezone()
                yield FetchedLetter(uid, internal.astimezone(timezone.utc), item[b"BODY[]"])

    def wait(self, seconds: float, should_stop: Callable[[], bool]) -> bool:
        """Wait for new mail with IDLE (or plain sleep without it). True if something arrived."""
        assert self.client is not None
        deadline = time.monotonic() + seconds
        if b"IDLE" not in self.capabilities:
            while time.monotonic() < deadline and not should_stop():
                time.sleep(min(1.0, deadline - time.monotonic()))
            return False
        self.client.idle()
        try:
            while time.monotonic() < deadline and not should_stop():
                responses = self.client.idle_check(timeout=min(1.0, deadline - time.monotonic()))
                if any(r[1] in (b"EXISTS", b"RECENT") for r in responses if len(r) > 1):
                    return True
            return False
        finally:
            self.client.idle_done()
