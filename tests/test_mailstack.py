"""Tests of the local mail stack itself (Dovecot IMAP/LMTP + aiosmtpd front)."""

from __future__ import annotations

import email
import email.policy
import json
import os
import shutil
import smtplib
import ssl
import subprocess
import tempfile
import time
from email.message import EmailMessage
from pathlib import Path

import pytest

from helpdesk.testing import mailstack as ms
from helpdesk.testing.mailstack import MailStack, MailStackError

DOVECOT = shutil.which("dovecot") or shutil.which("dovecot", path="/usr/sbin:/usr/local/sbin")

pytestmark = [
    pytest.mark.mailstack,
    pytest.mark.skipif(
        DOVECOT is None,
        reason="dovecot not installed (apt-get install dovecot-imapd dovecot-lmtpd)",
    ),
]

ROOT = Path(__file__).resolve().parent.parent
SCRIPT = ROOT / "scripts" / "mailstack"
ALICE, BOB, CAROL = "alice@school.test", "bob@school.test", "zavuch@school.test"
USERS = {ALICE: "alice-pw", BOB: "bob-pw", CAROL: "carol-pw"}
PARENT = "parent@home.test"


@pytest.fixture(scope="module")
def stack():
    with MailStack.start(users=USERS) as running:
        yield running


@pytest.fixture(autouse=True)
def empty_mailboxes(request):
    if "stack" in request.fixturenames:
        request.getfixturevalue("stack").clear()


def russian_letter(to: str, subject: str = "Справка о зачислении в 5 «Б» класс") -> EmailMessage:
    msg = EmailMessage()
    msg["From"] = f"Мария Иванова <{PARENT}>"
    msg["To"] = to
    msg["Subject"] = subject
    msg.set_content("Здравствуйте!\nПрошу выдать справку для сына, Иванова Пети.\nСпасибо.\n")
    return msg


def parse(raw: bytes) -> email.message.EmailMessage:
    return email.message_from_bytes(raw, policy=email.policy.default)


def test_russian_letter_via_smtp_lands_in_the_right_mailbox(stack):
    with smtplib.SMTP(stack.host, stack.smtp_port) as smtp:
        refused = smtp.send_message(russian_letter(BOB), PARENT, [BOB])
    assert refused == {}

    # Delivery is synchronous: no waiting once SMTP said 250.
    from imapclient import IMAPClient

    with IMAPClient(stack.host, port=stack.imap_port, ssl=False) as client:
        client.login(BOB, USERS[BOB])
        client.select_folder("INBOX", readonly=True)
        uids = client.search("ALL")
        assert len(uids) == 1
        raw = client.fetch(uids, ["BODY.PEEK[]"])[uids[0]][b"BODY[]"]
    letter = parse(raw)
    assert letter["Subject"] == "Справка о зачислении в 5 «Б» класс"
    assert "Иванова Пети" in letter.get_content()
    assert stack.messages(ALICE) == []
    assert stack.messages(CAROL) == []


def test_8bit_letter_with_dot_lines_survives_byte_for_byte(stack):
    body = "\r\n".join(["Строка.", ".", "..две точки", ". точка в начале"] * 20000)
    raw = ("Subject: Точки\r\nContent-Type: text/plain; charset=utf-8\r\n"
           "Content-Transfer-Encoding: 8bit\r\n\r\n" + body + "\r\n").encode()
    assert len(raw) > 1_000_000
    stack.send(raw, PARENT, [ALICE.upper()])
    [got] = stack.messages(ALICE)
    assert got.endswith(raw)


def test_one_letter_to_several_recipients(stack):
    stack.send(russian_letter(ALICE), PARENT, [ALICE, CAROL])
    assert len(stack.messages(ALICE)) == 1
    assert len(stack.messages(CAROL)) == 1
    assert stack.messages(BOB) == []


def test_unknown_recipient_is_rejected_with_550(stack):
    with smtplib.SMTP(stack.host, stack.smtp_port) as smtp:
        with pytest.raises(smtplib.SMTPRecipientsRefused) as caught:
            smtp.sendmail(PARENT, ["nobody@school.test"], b"Subject: x\r\n\r\nx\r\n")
        assert caught.value.recipients["nobody@school.test"][0] == 550
        refused = smtp.sendmail(PARENT, [BOB, "ghost@school.test"], b"Subject: y\r\n\r\ny\r\n")
    assert refused["ghost@school.test"][0] == 550
    assert len(stack.messages(BOB)) == 1
    with pytest.raises(smtplib.SMTPRecipientsRefused):
        stack.send(b"Subject: z\r\n\r\nz\r\n", PARENT, [ALICE, "ghost@school.test"])


@pytest.mark.parametrize("mechanism", ["PLAIN", "LOGIN"])
def test_smtp_auth_is_offered_and_checked(stack, mechanism):
    with smtplib.SMTP(stack.host, stack.smtp_port) as smtp:
        smtp.ehlo()
        assert "PLAIN" in smtp.esmtp_features["auth"]
        assert "LOGIN" in smtp.esmtp_features["auth"]
        assert "smtputf8" in smtp.esmtp_features and "8bitmime" in smtp.esmtp_features
        smtp.user, smtp.password = CAROL, "wrong"
        with pytest.raises(smtplib.SMTPAuthenticationError):
            smtp.auth(mechanism, getattr(smtp, f"auth_{mechanism.lower()}"))
        smtp.user, smtp.password = CAROL, USERS[CAROL]
        code, _ = smtp.auth(mechanism, getattr(smtp, f"auth_{mechanism.lower()}"))
        assert code == 235
        smtp.send_message(russian_letter(ALICE), CAROL, [ALICE])
    assert len(stack.messages(ALICE)) == 1


def test_idle_reports_a_new_letter_within_two_seconds(stack):
    client = stack.imap(ALICE)
    try:
        client.select_folder("INBOX")
        client.idle()
        sent_at = time.monotonic()
        stack.send(russian_letter(ALICE), PARENT, [ALICE])
        responses = client.idle_check(timeout=2.0)
        waited = time.monotonic() - sent_at
        client.idle_done()
    finally:
        client.logout()
    assert any(kind == b"EXISTS" for _, kind in responses), responses
    assert waited < 2.0


def test_special_use_folders_exist_and_are_subscribed(stack):
    client = stack.imap(BOB)
    try:
        folders = {name: flags for flags, _, name in client.list_folders()}
        subscribed = {name for _, _, name in client.list_sub_folders()}
    finally:
        client.logout()
    for name in ("Sent", "Drafts", "Trash", "Junk"):
        assert f"\\{name}".encode() in folders[name]
        assert name in subscribed
    assert "INBOX" in folders


def test_clear_empties_every_folder_of_every_user(stack):
    stack.send(russian_letter(ALICE), PARENT, [ALICE, BOB, CAROL])
    client = stack.imap(BOB)
    try:
        client.append("Sent", russian_letter(PARENT).as_bytes())
    finally:
        client.logout()
    assert len(stack.messages(BOB, "Sent")) == 1
    stack.clear()
    for user in USERS:
        assert stack.messages(user) == []
    assert stack.messages(BOB, "Sent") == []


def test_wait_for_returns_or_explains(stack):
    stack.send(russian_letter(CAROL, "Первое"), PARENT, [CAROL])
    assert len(stack.wait_for(CAROL, 1, timeout=1)) == 1
    with pytest.raises(TimeoutError, match="Первое"):
        stack.wait_for(CAROL, 2, timeout=0.2)


def test_add_user_takes_effect_immediately(stack):
    newcomer = "new.teacher@school.test"
    with pytest.raises(smtplib.SMTPRecipientsRefused):
        stack.send(b"Subject: early\r\n\r\nx\r\n", PARENT, [newcomer])
    stack.add_user(newcomer, "first")
    stack.send(russian_letter(newcomer), PARENT, [newcomer])
    assert len(stack.messages(newcomer)) == 1
    stack.add_user(newcomer, "second")  # a new password, at once too
    client = stack.imap(newcomer)
    client.logout()


def test_second_stack_has_its_own_ports_and_tls(stack):
    if shutil.which("openssl") is None:
        pytest.skip("openssl not installed")
    began = time.monotonic()
    with MailStack.start(users={ALICE: "other"}, tls=True) as other:
        started = time.monotonic() - began
        ours = {stack.imap_port, stack.smtp_port, stack.lmtp_port}
        theirs = {other.imap_port, other.smtp_port, other.lmtp_port, other.imaps_port}
        assert not ours & theirs and len(theirs) == 4
        assert other.workdir != stack.workdir
        other.send(russian_letter(ALICE), PARENT, [ALICE])
        assert stack.messages(ALICE) == []
        client = other.imap(ALICE, ssl=True)  # IMAPS, certificate verified
        assert client.select_folder("INBOX")[b"EXISTS"] == 1
        client.logout()
        from imapclient import IMAPClient

        with IMAPClient(other.host, port=other.imap_port, ssl=False) as plain:
            plain.starttls(ssl.create_default_context(cafile=other.cert_file))
            plain.login(ALICE, "other")
        workdir = other.workdir
        stop_began = time.monotonic()
    stopped = time.monotonic() - stop_began
    assert started < 3 and stopped < 3, (started, stopped)
    assert not os.path.exists(workdir)  # a workdir it made itself goes with it
    assert not ms.port_open(other.imap_port) and not ms.port_open(other.smtp_port)


def run_cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([str(SCRIPT), *args], capture_output=True, text=True, timeout=30,
                          stdin=subprocess.DEVNULL)


def test_cli_start_status_stop_round_trip():
    workdir = tempfile.mkdtemp(prefix="hd-cli-", dir="/tmp")
    try:
        started = run_cli("start", workdir, "--user", f"{ALICE}:secret", "--user", f"{BOB}:pw")
        assert started.returncode == 0, started.stderr
        printed = json.loads(started.stdout)
        state = json.loads(Path(workdir, "stack.json").read_text())
        assert printed["smtp_port"] == state["smtp_port"] and printed["imap_port"]
        assert printed["users"] == [ALICE, BOB]

        status = run_cli("status", workdir)
        assert status.returncode == 0, status.stdout + status.stderr
        assert json.loads(status.stdout)["running"] == {"dovecot": True, "smtp": True}

        with smtplib.SMTP("127.0.0.1", state["smtp_port"]) as smtp:
            smtp.login(BOB, "pw")
            smtp.send_message(russian_letter(ALICE), BOB, [ALICE])
        attached = MailStack.attach(workdir)
        assert parse(attached.messages(ALICE)[0])["Subject"].startswith("Справка")

        again = run_cli("start", workdir)
        assert again.returncode == 1 and "already running" in again.stderr

        stopped = run_cli("stop", workdir)
        assert stopped.returncode == 0, stopped.stderr
        assert not ms.pid_alive(state["smtp_pid"])
        assert not ms.pid_alive(state["dovecot_pid"])
        assert not ms.port_open(state["smtp_port"]) and not ms.port_open(state["imap_port"])
        assert run_cli("status", workdir).returncode == 3
        assert run_cli("stop", workdir).returncode == 0  # idempotent
    finally:
        run_cli("stop", workdir)
        shutil.rmtree(workdir, ignore_errors=True)


def test_missing_dovecot_gives_one_clear_message(monkeypatch, capsys):
    monkeypatch.setattr(ms.shutil, "which", lambda name, *a, **k: None)
    monkeypatch.setattr(ms, "_sbin", lambda name: None)
    with pytest.raises(MailStackError, match="apt-get install dovecot-imapd dovecot-lmtpd"):
        MailStack.start()
    assert ms.main(["start", "/tmp/hd-never"]) == 1
    err = capsys.readouterr().err
    assert err.strip() == f"mailstack: {ms.INSTALL_HINT}"
    assert not os.path.exists("/tmp/hd-never")


def test_work_dir_must_be_short():
    with pytest.raises(MailStackError, match="too long"):
        MailStack.start("/tmp/" + "x" * 80)
