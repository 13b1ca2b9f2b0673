"""TLS to the mail servers against the real Dovecot with a self-signed certificate (and an
aiosmtpd front with STARTTLS on the same certificate): verified by default, ``ca_file``
trusts the certificate, ``tls_verify = false`` is the loud opt-out."""
from __future__ import annotations

import asyncio
import logging
import ssl
from base64 import b64decode
from pathlib import Path

import pytest

from tests.conftest import SCHOOL, letter

pytestmark = pytest.mark.mailstack

STUDENT = "lev.kuzmin@lyceum21-edu.test"
TOKEN = "ya29.test-access-token"


@pytest.fixture(scope="module")
def tls_stack():
    import shutil

    if shutil.which("dovecot") is None and not Path("/usr/sbin/dovecot").exists():
        pytest.skip("dovecot not installed")
    if shutil.which("openssl") is None:
        pytest.skip("openssl not installed (make deps)")
    from helpdesk.testing.mailstack import MailStack

    stack = MailStack.start(users={SCHOOL: "secret", STUDENT: "secret"}, tls=True)
    logging.getLogger("mail.log").setLevel(logging.WARNING)
    yield stack
    stack.stop()


def imap(stack, **overrides):
    from helpdesk.ingest.imap import ImapSettings

    values = dict(host="127.0.0.1", port=stack.imaps_port, security="ssl", username=SCHOOL,
                  password="secret", timeout=10.0)
    return ImapSettings(**{**values, **overrides})


def uidvalidity(settings) -> int:
    from helpdesk.ingest.imap import Mailbox

    with Mailbox(settings) as mailbox:
        return mailbox.uidvalidity


def test_imap_refuses_a_self_signed_certificate_by_default(tls_stack):
    from helpdesk.ingest.imap import MailboxError

    for settings in (imap(tls_stack), imap(tls_stack, port=tls_stack.imap_port, security="starttls")):
        with pytest.raises(MailboxError, match="CERTIFICATE_VERIFY_FAILED"):
            uidvalidity(settings)


def test_imap_trusts_the_ca_file(tls_stack):
    assert uidvalidity(imap(tls_stack, ca_file=tls_stack.cert_file)) > 0
    assert uidvalidity(imap(tls_stack, port=tls_stack.imap_port, security="starttls",
                            ca_file=tls_stack.cert_file)) > 0


def test_imap_opt_out_works_and_warns(tls_stack, caplog):
    with caplog.at_level(logging.WARNING, logger="helpdesk.tls"):
        assert uidvalidity(imap(tls_stack, verify_tls=False)) > 0
    assert any("verification is OFF" in r.getMessage() for r in caplog.records)


def test_config_tls_verify_and_auth_keys(tmp_path):
    from dataclasses import replace

    from helpdesk.app import imap_settings, smtp_settings
    from helpdesk.auth import server_options
    from helpdesk.config import load_config

    path = tmp_path / "config.toml"
    token = tmp_path / "token"
    token.write_text(TOKEN + "\n")
    path.write_text(f'[school]\nname = "Школа"\naddress = "{SCHOOL}"\ntimezone = "Europe/Moscow"\n'
                    '[imap]\nhost = "mail.example.org"\ntls_verify = false\nauth = "xoauth2"\n'
                    f'token_file = "token"\n[smtp]\nhost = "mail.example.org"\nsecurity = "starttls"\n'
                    'auth = "xoauth2"\ntoken_command = "printf x"\nusername = "a@example.org"\n'
                    f'[database]\nurl = "sqlite:///db.sqlite3"\n'
                    '[hours]\nstart = "08:00"\nend = "17:00"\n', encoding="utf-8")
    config = load_config(path)
    assert (config.imap.tls_verify, config.imap.auth, config.imap.token_file) == (False, "xoauth2", token)
    assert (config.smtp.tls_verify, config.smtp.token_command) == (True, "printf x")
    problems = config.problems()
    assert any("imap.tls_verify is false" in w for w in config.warnings())
    assert not any("tls_verify" in p for p in problems)  # chosen on purpose: a warning, not a failure
    assert not any(".password" in p for p in problems)  # a token needs no password
    assert imap_settings(config) == replace(imap_settings(config), **server_options(config.imap))
    settings = imap_settings(config)
    assert (settings.verify_tls, settings.auth, settings.token_file) == (False, "xoauth2", str(token))
    settings = smtp_settings(config)
    assert (settings.verify_tls, settings.auth, settings.token_command) == (True, "xoauth2", "printf x")
    path.write_text(path.read_text().replace('token_file = "token"\n', ""), encoding="utf-8")
    assert any("imap.token_file or imap.token_command" in p for p in load_config(path).problems())


# --------------------------------------------------------------------------- SMTP


@pytest.fixture(scope="module")
def smtp_front(tls_stack):
    """An SMTP front with STARTTLS on the stack's certificate and AUTH XOAUTH2, delivering
    into the stack's Dovecot like the stack's own front."""
    from aiosmtpd.controller import Controller
    from aiosmtpd.smtp import AuthResult

    from helpdesk.testing.mailstack import LmtpRelayHandler, free_ports

    class OAuthHandler(LmtpRelayHandler):
        seen: list[str] = []

        async def auth_XOAUTH2(self, server, args):
            initial = b64decode(args[1]).decode() if len(args) > 1 else ""
            self.seen.append(initial)
            ok = initial == f"user={SCHOOL}\x01auth=Bearer {TOKEN}\x01\x01"
            return AuthResult(success=ok, handled=False)  # aiosmtpd answers 235 or 535

    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    cert = Path(tls_stack.cert_file)
    context.load_cert_chain(cert, cert.with_name("key.pem"))
    handler = OAuthHandler(Path(tls_stack.workdir) / "users", tls_stack.lmtp_port)
    [port] = free_ports(1)
    controller = Controller(handler, hostname="127.0.0.1", port=port, tls_context=context,
                            require_starttls=True, auth_require_tls=True)
    controller.start()
    yield port, handler
    controller.stop()


def smtp(port: int, **overrides):
    from helpdesk.outbox.sender import SmtpSettings

    values = dict(host="127.0.0.1", port=port, security="starttls", username=SCHOOL, timeout=10.0,
                  auth="xoauth2", token_command=f"printf '{TOKEN}\\n'")
    return SmtpSettings(**{**values, **overrides})


def test_smtp_refuses_a_self_signed_certificate_by_default(smtp_front):
    from helpdesk.outbox.sender import probe

    with pytest.raises(Exception, match="CERTIFICATE_VERIFY_FAILED"):
        asyncio.run(probe(smtp(smtp_front[0])))


def test_smtp_xoauth2_over_verified_starttls_delivers(smtp_front, tls_stack):
    """The real thing: STARTTLS checked against ca_file, AUTH XOAUTH2 with a token from a
    command, a letter delivered into Dovecot."""
    from helpdesk.outbox.sender import _login, make_client

    port, handler = smtp_front
    settings = smtp(port, ca_file=tls_stack.cert_file)

    async def send() -> None:
        client = make_client(settings)
        await _login(client, settings)
        msg = letter(SCHOOL, "проверка XOAUTH2", "письмо через STARTTLS и XOAUTH2")
        msg.replace_header("To", STUDENT)
        await client.send_message(msg)
        await client.quit()

    tls_stack.clear()
    asyncio.run(send())
    assert handler.seen[-1] == f"user={SCHOOL}\x01auth=Bearer {TOKEN}\x01\x01"
    assert b"XOAUTH2" in tls_stack.wait_for(STUDENT, 1)[0]


def test_smtp_wrong_token_and_opt_out(smtp_front, caplog):
    import aiosmtplib

    from helpdesk.outbox.sender import probe

    port, _ = smtp_front
    with pytest.raises(aiosmtplib.SMTPAuthenticationError):
        asyncio.run(probe(smtp(port, verify_tls=False, token_command="printf wrong")))
    with caplog.at_level(logging.WARNING, logger="helpdesk.tls"):
        assert "127.0.0.1" in asyncio.run(probe(smtp(port, verify_tls=False)))
    assert any("verification is OFF" in r.getMessage() for r in caplog.records)
