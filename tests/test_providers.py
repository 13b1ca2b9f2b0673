"""Real providers: the presets in the shipped config, and login by XOAUTH2 token.

SMTP XOAUTH2 is tested for real in tests/test_tls.py (aiosmtpd with STARTTLS). Dovecot
would need an OAuth2 passdb (a token introspection service) for IMAP, so the IMAP side
is checked here on a tiny IMAP responder that records the exact SASL exchange.
"""
from __future__ import annotations

import base64
import re
import socket
import threading

import pytest

from helpdesk.auth import AuthError, TokenSource, imap_login, xoauth2_base64, xoauth2_string
from helpdesk.config import default_config_text, load_config

PRESETS = {  # name in the comment -> (imap host, smtp host, smtp port, auth)
    "Yandex 360": ("imap.yandex.ru", "smtp.yandex.ru", 465, "password"),
    "Mail.ru for business": ("imap.mail.ru", "smtp.mail.ru", 465, "password"),
    "Microsoft 365": ("outlook.office365.com", "smtp.office365.com", 587, "xoauth2"),
    "A self-hosted server": ("mail.example.org", "mail.example.org", 587, "password"),
}


def preset(section: str, name: str) -> dict[str, str]:
    """The commented ``key = value`` lines under ``#   NAME...`` in ``[section]``."""
    text = default_config_text()
    body = text.split(f"\n[{section}]\n", 1)[1].split("\n[", 1)[0]
    lines = body.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith(f"#   {name}"))
    found = {}
    for line in lines[start + 1:]:
        m = re.match(r"^#     (\w+) = (.+?)(\s+#.*)?$", line)
        if not m:
            break
        found[m.group(1)] = m.group(2)
    return found


@pytest.mark.parametrize("name", sorted(PRESETS))
def test_each_preset_is_a_working_config(tmp_path, name):
    imap_host, smtp_host, smtp_port, auth = PRESETS[name]
    imap, smtp = preset("imap", name), preset("smtp", name)
    (tmp_path / "ca.pem").write_text("")
    sections = {"imap": imap, "smtp": smtp}
    text = '[school]\nname = "Школа"\naddress = "school@example.org"\ntimezone = "Europe/Moscow"\n'
    for section, keys in sections.items():
        keys = {k: (f'"{tmp_path / "ca.pem"}"' if k == "ca_file" else v) for k, v in keys.items()}
        text += f"[{section}]\nusername = \"school@example.org\"\n" + "".join(f"{k} = {v}\n" for k, v in keys.items())
    text += '[database]\nurl = "sqlite:///db.sqlite3"\n[hours]\nstart = "08:00"\nend = "17:00"\n'
    path = tmp_path / "config.toml"
    path.write_text(text, encoding="utf-8")
    config = load_config(path)
    assert (config.imap.host, config.imap.port, config.imap.security) == (imap_host, 993, "ssl")
    assert (config.smtp.host, config.smtp.port) == (smtp_host, smtp_port)
    assert config.smtp.security == ("ssl" if smtp_port == 465 else "starttls")
    assert config.imap.auth == auth and config.imap.tls_verify
    problems = config.problems()
    if auth == "xoauth2":  # a token command is all it needs
        assert config.imap.token_command and config.smtp.token_command
        assert problems == []
    else:  # an app password still has to be given
        assert any("imap.password is not set" in p for p in problems)


def test_xoauth2_string_is_the_documented_one():
    # The example of Google's "XOAUTH2 protocol" page, byte for byte.
    user, token = "someuser@example.com", "ya29.vF9dft4qmTc2Nvb3RlckBhdHRhdmlzdGEuY29tCg"
    assert xoauth2_string(user, token) == f"user={user}\x01auth=Bearer {token}\x01\x01"
    assert xoauth2_base64(user, token) == (
        "dXNlcj1zb21ldXNlckBleGFtcGxlLmNvbQFhdXRoPUJlYXJlciB5YTI5LnZGOWRmdDRxbVRjMk52YjNSbGNr"
        "QmhkSFJoZG1semRHRXVZMjl0Q2cBAQ==")


def test_token_sources(tmp_path):
    token = tmp_path / "token"
    token.write_text("  abc.def  \n")
    assert TokenSource(file=str(token)).read() == "abc.def"
    # The command wins over the file: it is run at every login, so it can refresh.
    assert TokenSource(file=str(token), command="printf 'fresh\\nignored\\n'").read() == "fresh"
    token.write_text("\n")
    for source, message in [
        (TokenSource(file=str(token)), "is empty"),
        (TokenSource(file=str(tmp_path / "missing")), "cannot read"),
        (TokenSource(command="sh -c 'echo no such tenant >&2; exit 3'"), "exit 3): no such tenant"),
        (TokenSource(command="true"), "printed no token"),
        (TokenSource(command="/nonexistent/helper"), "cannot be run"),
        (TokenSource(), "neither token_file nor token_command"),
    ]:
        with pytest.raises(AuthError, match=re.escape(message)):
            source.read()


def test_token_command_errors_name_the_program_only():
    """A client secret given to the helper as an argument never reaches the journal."""
    from helpdesk.auth import run_token_command

    for command, program, message in [
        ("sh -c 'exit 3' --client-secret s3cr3t", "sh", "exit 3"),
        ("true --client-secret s3cr3t", "true", "printed no token"),
        ("/nonexistent/helper --client-secret s3cr3t", "/nonexistent/helper", "cannot be run"),
        ("helper --client-secret 's3cr3t", "helper", "cannot be run"),  # unbalanced quote
        ("sh -c 'sleep 5' --client-secret s3cr3t", "sh", "gave no token"),
    ]:
        with pytest.raises(AuthError) as raised:
            run_token_command(command, timeout=0.5)
        assert f"token_command {program!r}" in str(raised.value) and message in str(raised.value)
        assert "s3cr3t" not in str(raised.value)


class TinyImap:
    """Just enough IMAP for a login: CAPABILITY, AUTHENTICATE (recorded), LOGOUT."""

    def __init__(self) -> None:
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self.exchange: list[str] = []
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        conn, _ = self.sock.accept()
        with conn, conn.makefile("rb") as reader:
            conn.sendall(b"* OK [CAPABILITY IMAP4rev1 AUTH=XOAUTH2] tiny\r\n")
            for raw in reader:
                line = raw.decode().rstrip("\r\n")
                tag, _, rest = line.partition(" ")
                command = rest.split(" ")[0].upper()
                self.exchange.append(line)
                if command == "CAPABILITY":
                    conn.sendall(f"* CAPABILITY IMAP4rev1 AUTH=XOAUTH2\r\n{tag} OK done\r\n".encode())
                elif command == "AUTHENTICATE":
                    conn.sendall(b"+ \r\n")
                    response = reader.readline().decode().rstrip("\r\n")
                    self.exchange.append(response)
                    conn.sendall(f"{tag} OK authenticated\r\n".encode())
                elif command == "LOGOUT":
                    conn.sendall(f"* BYE\r\n{tag} OK bye\r\n".encode())
                    return
                else:
                    conn.sendall(f"{tag} BAD unknown\r\n".encode())


def test_imap_xoauth2_sends_the_exact_sasl_response(tmp_path):
    from imapclient import IMAPClient

    from helpdesk.ingest.imap import ImapSettings

    server = TinyImap()
    token = tmp_path / "token"
    token.write_text("ya29.token-from-file\n")
    settings = ImapSettings(host="127.0.0.1", port=server.port, security="none",
                            username="school@example.org", password=None,
                            auth="xoauth2", token_file=str(token))
    client = IMAPClient("127.0.0.1", port=server.port, ssl=False, timeout=5)
    imap_login(client, settings)
    client.logout()
    server.thread.join(5)
    auth = next(i for i, line in enumerate(server.exchange) if "AUTHENTICATE" in line)
    assert server.exchange[auth].split(" ", 1)[1] == "AUTHENTICATE XOAUTH2"
    sent = base64.b64decode(server.exchange[auth + 1]).decode()
    assert sent == "user=school@example.org\x01auth=Bearer ya29.token-from-file\x01\x01"


def test_imap_xoauth2_without_a_token_is_a_clear_error():
    from helpdesk.ingest.imap import ImapSettings, Mailbox, MailboxError

    server = TinyImap()
    settings = ImapSettings(host="127.0.0.1", port=server.port, security="none",
                            username="school@example.org", password=None, auth="xoauth2",
                            token_command="sh -c 'echo token expired, run m365-token login >&2; exit 1'")
    with pytest.raises(MailboxError, match="token expired, run m365-token login"):
        Mailbox(settings).connect()
