"""The mailbox edge: an IMAP connection that lists, fetches and files letters by UID.

Only this module speaks IMAP. Letters are fetched with BODY.PEEK[] so that
polling never marks them read; their identity is (UIDVALIDITY, UID). Every
way the connection can break (refused, reset, timed out, closed by a server
restart, a protocol error) surfaces as one of ``CONNECTION_ERRORS``, so the
daemon can treat them all as one outage and reconnect.
"""
from __future__ import annotations

import logging
import ssl
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Callable, Iterable, Iterator

from imapclient import IMAPClient
from imapclient.exceptions import IMAPClientError

from ..auth import AuthError, imap_login
from ..tls import client_context

log = logging.getLogger("helpdesk.imap")

FETCH_BATCH = 200  # at most this many letters per FETCH
FETCH_BYTES = 64 * 1024 * 1024  # ... and at most about this many bytes (one big letter alone)
IDLE_RENEW = 25 * 60  # RFC 2177: a server may end an IDLE after 29 minutes; renew before
IDLE_TICK = 0.5  # how often a wait looks at the stop flag
EOF_POLLS = 3  # "readable but nothing to read" this many times in a row = connection closed


class MailboxError(Exception):
    """The mailbox cannot be reached or used; the message says why in plain words."""


# Everything that means "the connection is not usable now": MailboxError (ours),
# imaplib's error/abort (as IMAPClientError), and OSError, which covers refused
# and reset connections, socket timeouts and TLS errors.
CONNECTION_ERRORS: tuple[type[BaseException], ...] = (MailboxError, IMAPClientError, OSError)


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
    processed_folder: str = ""  # dealt-with letters are moved here ("" = they stay)
    quarantine_folder: str = ""  # quarantined letters are moved here ("" = they stay)
    auth: str = "password"  # password | xoauth2 (see helpdesk.auth)
    token_file: str | None = None
    token_command: str | None = None

    @property
    def mailbox_key(self) -> str:
        return f"{self.username}@{self.host}:{self.port}/{self.folder}"

    @property
    def writable(self) -> bool:
        """Whether the folder must be opened read-write (flags or moves)."""
        return bool(self.processed_flag or self.processed_folder or self.quarantine_folder)


@dataclass(frozen=True)
class FetchedLetter:
    uid: int
    internaldate: datetime  # aware UTC
    raw: bytes


def _tls_context(settings: ImapSettings) -> ssl.SSLContext:
    return client_context(settings.ca_file, settings.verify_tls)


def uid_set(uids: Iterable[int]) -> str:
    """A compact IMAP sequence set: [1, 2, 3, 7, 9, 10] -> "1:3,7,9:10"."""
    ordered = sorted(set(uids))
    parts: list[str] = []
    start = prev = None
    for uid in ordered:
        if prev is not None and uid == prev + 1:
            prev = uid
            continue
        if start is not None:
            parts.append(f"{start}:{prev}" if prev != start else str(start))
        start = prev = uid
    if start is not None:
        parts.append(f"{start}:{prev}" if prev != start else str(start))
    return ",".join(parts)


def _size_batches(uids: list[int], sizes: dict[int, int], batch: int, max_bytes: int) -> Iterator[list[int]]:
    """Split ``uids`` into FETCH batches of at most ``batch`` letters and about
    ``max_bytes`` bytes (a letter larger than that goes alone)."""
    chunk: list[int] = []
    total = 0
    for uid in uids:
        size = sizes.get(uid, 0)
        if chunk and (len(chunk) >= batch or total + size > max_bytes):
            yield chunk
            chunk, total = [], 0
        chunk.append(uid)
        total += size
    if chunk:
        yield chunk


def _new_mail(responses: list) -> bool:
    return any(len(r) > 1 and r[1] in (b"EXISTS", b"RECENT") for r in responses)


def _goodbye(responses: list) -> bytes | None:
    """The server's BYE text, when it ended the session (a shutdown or restart)."""
    for r in responses:
        if r and r[0] == b"BYE":
            return b" ".join(p for p in r[1:] if isinstance(p, bytes)) or b"BYE"
    return None


class Mailbox:
    """A connected, selected IMAP folder."""

    def __init__(self, settings: ImapSettings) -> None:
        self.settings = settings
        self.client: IMAPClient | None = None
        self.uidvalidity: int | None = None
        self._folders: set[str] = set()  # destination folders known to exist

    def __enter__(self) -> "Mailbox":
        self.connect()
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # --- connection ------------------------------------------------------------

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
        except (OSError, IMAPClientError) as exc:
            raise MailboxError(f"cannot connect to IMAP {s.host}:{s.port} ({s.security}): {exc}") from exc
        self.client = client
        try:
            imap_login(client, s)
        except (OSError, IMAPClientError, AuthError) as exc:
            self.abandon()
            raise MailboxError(f"IMAP login as {s.username!r} failed: {exc}") from exc
        try:
            self.refresh()
        except (OSError, IMAPClientError) as exc:
            self.close()
            raise MailboxError(f"IMAP folder {s.folder!r} cannot be opened: {exc}") from exc

    def close(self) -> None:
        """Log out politely (a stop, the end of ``run --once``)."""
        if self.client is not None:
            try:
                self.client.logout()
            except Exception:  # the connection may already be gone
                pass
            self.abandon()

    def abandon(self) -> None:
        """Drop the connection without a word: after a failure, a LOGOUT could
        only wait for the timeout of a connection that is gone."""
        if self.client is not None:
            try:
                self.client.shutdown()
            except Exception:  # already closed
                pass
            self.client = None

    def refresh(self) -> None:
        """Re-select the folder so that letters delivered since are visible."""
        info = self._client.select_folder(self.settings.folder, readonly=not self.settings.writable)
        self.uidvalidity = int(info[b"UIDVALIDITY"])

    @property
    def _client(self) -> IMAPClient:
        if self.client is None:
            raise MailboxError("not connected to the IMAP server")
        return self.client

    @property
    def capabilities(self) -> tuple[bytes, ...]:
        return tuple(self._client.capabilities())

    def has(self, capability: bytes) -> bool:
        return capability in self.capabilities

    # --- reading -----------------------------------------------------------------

    def uids_after(self, last_uid: int) -> list[int]:
        # "N:*" always returns the highest UID even when it is <= N; filter it out.
        uids = self._client.search(["UID", f"{last_uid + 1}:*"])
        return sorted(u for u in uids if u > last_uid)

    def uids_up_to(self, last_uid: int) -> list[int]:
        """UIDs still in the folder at or below ``last_uid`` (letters already taken in)."""
        if last_uid < 1:
            return []
        return sorted(u for u in self._client.search(["UID", f"1:{last_uid}"]) if u <= last_uid)

    def existing(self, uids: Iterable[int]) -> list[int]:
        """Those of ``uids`` that are still in the folder."""
        wanted = set(uids)
        if not wanted:
            return []
        return sorted(u for u in self._client.search(["UID", uid_set(wanted)]) if u in wanted)

    def batches(self, uids: list[int], batch: int = FETCH_BATCH,
                max_bytes: int = FETCH_BYTES) -> Iterator[list[int]]:
        """``uids`` in FETCH-sized groups, by count and by RFC822.SIZE."""
        sizes: dict[int, int] = {}
        for start in range(0, len(uids), 1000):
            part = uids[start : start + 1000]
            for uid, item in self._client.fetch(part, ["RFC822.SIZE"]).items():
                sizes[uid] = int(item.get(b"RFC822.SIZE") or 0)
        yield from _size_batches(uids, sizes, batch, max_bytes)

    def fetch(self, uids: list[int], batch: int = FETCH_BATCH) -> Iterator[FetchedLetter]:
        for start in range(0, len(uids), batch):
            chunk = uids[start : start + batch]
            data = self._client.fetch(chunk, ["BODY.PEEK[]", "INTERNALDATE"])
            for uid in chunk:
                item = data.get(uid)
                if not item or b"BODY[]" not in item:
                    log.warning("UID %s vanished before it could be fetched", uid)
                    continue
                internal = item.get(b"INTERNALDATE") or datetime.now(timezone.utc)
                if internal.tzinfo is None:  # imapclient gives local naive time by default
                    internal = internal.astimezone()
                yield FetchedLetter(uid, internal.astimezone(timezone.utc), item[b"BODY[]"])

    # --- flags and folders ---------------------------------------------------------

    def mark_processed(self, uids: list[int]) -> None:
        """Flag taken-in letters so a person looking at the mailbox sees what was taken in."""
        if uids and self.settings.processed_flag and self.client is not None:
            self.client.add_flags(uids, [self.settings.processed_flag], silent=True)

    def can_move(self) -> bool:
        return self.has(b"MOVE") or self.has(b"UIDPLUS")

    def ensure_folder(self, folder: str) -> None:
        """Create (and subscribe) ``folder`` unless it exists."""
        if folder in self._folders:
            return
        client = self._client
        if not client.folder_exists(folder):
            client.create_folder(folder)
            try:
                client.subscribe_folder(folder)
            except IMAPClientError:
                pass  # subscribing is a courtesy to mail clients, not needed
            log.info("created IMAP folder %r", folder)
        self._folders.add(folder)

    def move(self, uids: list[int], folder: str) -> None:
        """Move letters out of the selected folder; nothing is ever deleted.

        MOVE (RFC 6851) when offered, else COPY + UID EXPUNGE of exactly these
        UIDs (UIDPLUS). Without either the letters stay where they are.
        """
        if not uids:
            return
        self.ensure_folder(folder)
        client = self._client
        if self.has(b"MOVE"):
            client.move(uids, folder)
        elif self.has(b"UIDPLUS"):
            client.copy(uids, folder)
            client.delete_messages(uids, silent=True)
            client.uid_expunge(uids)
        else:
            raise MailboxError("the server offers neither MOVE nor UIDPLUS: letters cannot be moved safely")

    # --- waiting -------------------------------------------------------------------

    def wait(self, seconds: float, should_stop: Callable[[], bool],
             renew: float | None = None) -> bool:
        """Wait for new mail with IDLE (a plain sleep without it). True if something arrived.

        IDLE is ended and re-issued every ``renew`` seconds (default
        ``IDLE_RENEW``: servers drop an IDLE after 29 minutes); a BYE or a
        closed connection raises MailboxError.
        """
        renew = IDLE_RENEW if renew is None else renew
        deadline = time.monotonic() + seconds
        if not self.has(b"IDLE"):
            _sleep_until(deadline, should_stop)
            return False
        # A letter delivered between the last SEARCH and the IDLE command would be
        # announced before IDLE starts, where it cannot be seen: ask first (NOOP).
        _text, responses = self._client.noop()
        if _new_mail(responses):
            return True
        while time.monotonic() < deadline and not should_stop():
            if self._idle_once(min(deadline, time.monotonic() + renew), should_stop):
                return True
        return False

    def _idle_once(self, until: float, should_stop: Callable[[], bool]) -> bool:
        """One IDLE command, ended at ``until`` at the latest. True if mail arrived."""
        client = self._client
        client.idle()
        try:
            arrived = self._idle_watch(until, should_stop)
        except BaseException:
            try:
                client.idle_done()
            except Exception:  # the connection is likely gone already
                pass
            raise
        _text, responses = client.idle_done()
        return arrived or _new_mail(responses)

    def _idle_watch(self, until: float, should_stop: Callable[[], bool]) -> bool:
        client = self._client
        empty_polls = 0
        while time.monotonic() < until and not should_stop():
            tick = max(0.01, min(IDLE_TICK, until - time.monotonic()))
            began = time.monotonic()
            responses = client.idle_check(timeout=tick)
            bye = _goodbye(responses)
            if bye is not None:
                raise MailboxError(f"the IMAP server ended the session: {bye.decode(errors='replace')}")
            if _new_mail(responses):
                return True
            # imapclient returns [] at once when the socket is at EOF (a server
            # killed without a BYE): a few of those in a row mean the link is gone.
            quick = not responses and time.monotonic() - began < tick / 2
            empty_polls = empty_polls + 1 if quick else 0
            if empty_polls >= EOF_POLLS:
                raise MailboxError("the IMAP server closed the connection")
        return False


def _sleep_until(deadline: float, should_stop: Callable[[], bool]) -> None:
    while not should_stop():
        left = deadline - time.monotonic()
        if left <= 0:
            return
        time.sleep(min(IDLE_TICK, left))
