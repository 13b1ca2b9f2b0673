"""Logging in to the mail servers: an (app) password or an OAuth2 access token (XOAUTH2).

helpdesk does not run OAuth flows itself. With ``auth = "xoauth2"`` the access
token is read, at every login, from ``token_file`` (kept fresh by something else,
e.g. a systemd credential or a cron job) or from the output of ``token_command``
(the operator's OAuth helper, run each time so that it can refresh the token).

The SASL XOAUTH2 initial response is the one Google and Microsoft document::

    base64("user=" USER "\\x01auth=Bearer " TOKEN "\\x01\\x01")

imapclient sends it with ``oauth2_login``, aiosmtplib (5.1 and later) with
``auth_xoauth2``; ``xoauth2_string`` is here to test and to document it.
"""
from __future__ import annotations

import base64
import shlex
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

PASSWORD = "password"
XOAUTH2 = "xoauth2"
TOKEN_COMMAND_TIMEOUT = 60.0


class AuthError(Exception):
    """No usable credentials; the message says why (never the secret itself)."""


@dataclass(frozen=True)
class TokenSource:
    """Where an OAuth2 access token comes from: a file or a command's output."""

    file: str | None = None
    command: str | None = None

    def read(self) -> str:
        if self.command:
            return run_token_command(self.command)
        if self.file:
            return read_token_file(Path(self.file))
        raise AuthError("auth is \"xoauth2\" but neither token_file nor token_command is set")


def read_token_file(path: Path) -> str:
    try:
        token = path.read_text(encoding="utf-8").strip()
    except (OSError, UnicodeDecodeError) as exc:
        raise AuthError(f"cannot read the access token from {path}: "
                        f"{exc.strerror if isinstance(exc, OSError) else exc}") from None
    if not token:
        raise AuthError(f"the access token file {path} is empty")
    return token


def _program(command: str) -> str:
    """The command's program name only: its arguments may hold a client secret."""
    try:
        words = shlex.split(command)
    except ValueError:
        words = command.split()
    return words[0] if words else ""


def run_token_command(command: str, timeout: float = TOKEN_COMMAND_TIMEOUT) -> str:
    """The first line the command prints; its stderr is shown on failure (it has no token).
    Messages name the program only, never its arguments (a client secret may be one)."""
    name = f"token_command {_program(command)!r}"
    try:
        done = subprocess.run(shlex.split(command), capture_output=True, text=True,
                              timeout=timeout, check=False)
    except ValueError as exc:
        raise AuthError(f"{name} cannot be run: {exc}") from None
    except OSError as exc:
        raise AuthError(f"{name} cannot be run: {exc.strerror or exc}") from None
    except subprocess.TimeoutExpired:
        raise AuthError(f"{name} gave no token within {timeout:g} s") from None
    if done.returncode != 0:
        detail = done.stderr.strip().splitlines()[-1] if done.stderr.strip() else "no message"
        raise AuthError(f"{name} failed (exit {done.returncode}): {detail}")
    lines = done.stdout.strip().splitlines()
    if not lines or not lines[0].strip():
        raise AuthError(f"{name} printed no token")
    return lines[0].strip()


def xoauth2_string(user: str, token: str) -> str:
    """The unencoded SASL XOAUTH2 initial response."""
    return f"user={user}\x01auth=Bearer {token}\x01\x01"


def xoauth2_base64(user: str, token: str) -> str:
    return base64.b64encode(xoauth2_string(user, token).encode("utf-8")).decode("ascii")


def token_source(settings: Any) -> TokenSource:
    return TokenSource(getattr(settings, "token_file", None), getattr(settings, "token_command", None))


def uses_xoauth2(settings: Any) -> bool:
    return getattr(settings, "auth", PASSWORD) == XOAUTH2


def imap_login(client: Any, settings: Any) -> None:
    """Log an ``IMAPClient`` in with the settings' password or XOAUTH2 token."""
    if uses_xoauth2(settings):
        client.oauth2_login(settings.username, token_source(settings).read())
    else:
        client.login(settings.username, settings.password or "")


async def smtp_login(client: Any, settings: Any) -> None:
    """Log a connected ``aiosmtplib.SMTP`` in (nothing to do for an open relay)."""
    if uses_xoauth2(settings):
        if not settings.username:
            raise AuthError("smtp.auth is \"xoauth2\" but smtp.username is empty")
        await client.auth_xoauth2(settings.username, token_source(settings).read())
        return
    if settings.username and settings.password:
        await client.login(settings.username, settings.password)


def server_options(server: Any) -> dict[str, Any]:
    """The TLS and login settings of a ``config.MailServerConfig`` for ImapSettings/SmtpSettings."""
    return dict(
        verify_tls=server.tls_verify,
        auth=server.auth,
        token_file=str(server.token_file) if server.token_file else None,
        token_command=server.token_command,
    )
