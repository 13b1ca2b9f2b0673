"""Running as a service: the unit files, sd_notify (READY, WATCHDOG, STATUS,
STOPPING) against a real AF_UNIX datagram socket, secrets from systemd
credentials, and what the logs say (ids, never bodies or passwords)."""
from __future__ import annotations

import logging
import os
import shutil
import signal
import socket
import subprocess
import threading
from pathlib import Path

import pytest

from helpdesk.notify import Notifier
from tests.conftest import ROSTER, SCHOOL, letter, write_config
from tests.daemon_kit import ROOT, DaemonThread, kill, spawn_daemon, wait_until

UNITS = ROOT / "systemd"


# --- the unit files ---------------------------------------------------------------------------


def unit_settings(path: Path) -> dict[str, list[str]]:
    """``Key`` -> every value it is given in the unit (systemd allows repeated keys)."""
    found: dict[str, list[str]] = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        line = line.strip()
        if not line or line.startswith(("#", ";", "[")):
            continue
        key, _, value = line.partition("=")
        found.setdefault(key.strip(), []).append(value.strip())
    return found


@pytest.mark.parametrize("name, instance", [("helpdesk.service", "helpdesk.service"),
                                            ("helpdesk@.service", "helpdesk@school1.service")])
def test_unit_files_pass_systemd_analyze_verify(tmp_path, name, instance):
    tool = shutil.which("systemd-analyze")
    if tool is None:
        pytest.skip("systemd-analyze not installed (Debian: apt-get install systemd; `make deps` does it)")
    script = shutil.which("helpdesk")
    if script is None:
        pytest.skip("the helpdesk console script is not installed (pip install -e .)")
    # verify checks that ExecStart exists: point it at the installed script.
    text = (UNITS / name).read_text(encoding="utf-8")
    assert "ExecStart=/usr/local/bin/helpdesk run" in text
    (tmp_path / name).write_text(text.replace("/usr/local/bin/helpdesk", script), encoding="utf-8")
    done = subprocess.run([tool, "verify", "--man=no", str(tmp_path / instance)],
                          capture_output=True, text=True, timeout=120, cwd=tmp_path)
    # verify only warns (exit code 0) about unknown keys or bad values: no output at all.
    assert done.returncode == 0 and not (done.stdout + done.stderr).strip(), done.stdout + done.stderr


@pytest.mark.parametrize("name", ["helpdesk.service", "helpdesk@.service"])
def test_unit_files_are_notify_services_sandboxed_with_credentials(name):
    unit = unit_settings(UNITS / name)
    one = {key: values[-1] for key, values in unit.items()}
    assert one["Type"] == "notify" and one["NotifyAccess"] == "main"
    assert int(one["WatchdogSec"]) > 0 and one["Restart"] == "on-failure"
    assert one["User"] == one["Group"] == "helpdesk" and "DynamicUser" not in one
    assert one["ProtectSystem"] == "strict"
    for flag in ("PrivateTmp", "NoNewPrivileges", "ProtectHome", "PrivateDevices"):
        assert one[flag] == "yes", flag
    assert one["RestrictAddressFamilies"] == "AF_INET AF_INET6 AF_UNIX"
    assert "@system-service" in unit["SystemCallFilter"]
    assert one["CapabilityBoundingSet"] == ""
    credentials = dict(value.split(":", 1) for value in unit["LoadCredential"])
    assert set(credentials) == {"imap-password", "smtp-password"}
    assert not any("PASSWORD" in value for value in unit.get("Environment", []))
    if name == "helpdesk@.service":
        assert one["Environment"] == "HELPDESK_CONFIG=/etc/helpdesk/%i.toml"
        assert one["StateDirectory"] == "helpdesk/%i"
        assert all("/%i/" in source for source in credentials.values())
    else:
        assert one["StateDirectory"] == "helpdesk"


def test_password_file_may_name_the_systemd_credentials_directory(tmp_path, monkeypatch):
    from helpdesk.config import load_config
    from tests.conftest import offline_config_text

    credentials = tmp_path / "credentials"  # what LoadCredential= hands to the service
    credentials.mkdir()
    (credentials / "imap-password").write_text("app-password-1\n", encoding="utf-8")
    text = offline_config_text(f"sqlite:///{tmp_path / 'db.sqlite3'}").replace(
        '[smtp]', 'username = "u"\npassword_file = "$CREDENTIALS_DIRECTORY/imap-password"\n[smtp]')
    path = tmp_path / "config.toml"
    path.write_text(text, encoding="utf-8")
    monkeypatch.delenv("HELPDESK_IMAP_PASSWORD", raising=False)
    monkeypatch.setenv("CREDENTIALS_DIRECTORY", str(credentials))
    config = load_config(path)
    assert (config.imap.password, config.imap.password_source) == ("app-password-1", "file")
    monkeypatch.delenv("CREDENTIALS_DIRECTORY")  # run by hand, outside the service
    config = load_config(path)
    assert config.imap.password is None
    assert any("imap.password_file" in p for p in config.problems())


# --- sd_notify ----------------------------------------------------------------------------------


class NotifySocket:
    """The receiving end systemd would hold: an AF_UNIX datagram socket."""

    def __init__(self, path: Path | None = None) -> None:
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        if path is None:  # the abstract namespace, as systemd itself uses
            name = f"helpdesk-test-{os.getpid()}-{id(self)}"
            self.sock.bind("\0" + name)
            self.address = "@" + name
        else:
            self.sock.bind(str(path))
            self.address = str(path)
        self.messages: list[dict[str, str]] = []

    def receive(self, timeout: float) -> dict[str, str] | None:
        self.sock.settimeout(timeout)
        try:
            data = self.sock.recv(4096)
        except (socket.timeout, BlockingIOError):
            return None
        message = dict(line.split("=", 1) for line in data.decode().splitlines())
        self.messages.append(message)
        return message

    def pending(self) -> list[dict[str, str]]:
        """Everything already sent (without waiting)."""
        found = []
        while (message := self.receive(0.001)) is not None:
            found.append(message)
        return found

    def wait_for(self, key: str, value: str | None = None, timeout: float = 30.0,
                 containing: str = "") -> dict[str, str]:
        def arrived():
            message = self.receive(0.2)
            if not message or key not in message or containing not in message[key]:
                return None
            return message if value in (None, message[key]) else None

        return wait_until(arrived, timeout, interval=0, what=f"{key}={value or '...'}")

    def close(self) -> None:
        self.sock.close()


@pytest.fixture
def notify_socket(tmp_path):
    receiver = NotifySocket(tmp_path / "notify.sock")
    yield receiver
    receiver.close()


def test_notifier_speaks_to_an_abstract_socket_and_is_silent_without_one():
    receiver = NotifySocket()
    try:
        notifier = Notifier({"NOTIFY_SOCKET": receiver.address, "WATCHDOG_USEC": "4000000"})
        assert notifier.watchdog_seconds == 4.0
        assert notifier.ready("waiting for mail")
        assert receiver.receive(5) == {"READY": "1", "STATUS": "waiting for mail"}
        assert notifier.status("two\nlines")  # one line: a newline would start a new key
        assert receiver.receive(5) == {"STATUS": "two lines"}
        notifier.close()
    finally:
        receiver.close()
    silent = Notifier({})
    assert not silent.enabled and silent.watchdog_seconds is None
    assert not silent.ready("x") and not silent.watchdog()
    # The watchdog settings of another process (WATCHDOG_PID) are not ours.
    assert Notifier({"NOTIFY_SOCKET": "@x", "WATCHDOG_USEC": "1000000",
                     "WATCHDOG_PID": str(os.getpid() + 1)}).watchdog_seconds is None


@pytest.mark.mailstack
def test_helpdesk_run_is_ready_pings_while_idle_and_says_stopping(stack, tmp_path, notify_socket,
                                                                monkeypatch, corpus_roster):
    from helpdesk.cli import main

    config = write_config(tmp_path, stack, f"sqlite:///{tmp_path / 'helpdesk.sqlite3'}")
    assert main(["--config", str(config), "roster", "import", str(ROSTER)]) == 0
    monkeypatch.setenv("NOTIFY_SOCKET", notify_socket.address)
    monkeypatch.setenv("WATCHDOG_USEC", "2000000")  # 2 s: a ping at least every second
    log = tmp_path / "daemon.log"
    proc = spawn_daemon(config, log)
    try:
        ready = notify_socket.wait_for("READY", "1", timeout=60)
        assert "waiting for mail" in ready["STATUS"]
        for _ in range(3):  # nothing to do: the pings go on from the IDLE wait
            notify_socket.wait_for("WATCHDOG", "1", timeout=10)
        who = corpus_roster.students[15]
        stack.send(letter(who.email, "вопрос", "Не понимаю задачу 5 по алгебре."), who.email, [SCHOOL])
        status = notify_socket.wait_for("STATUS", timeout=30, containing="fetched 1 new letter")
        assert "waiting for mail" in status["STATUS"]
        proc.send_signal(signal.SIGTERM)
        notify_socket.wait_for("STOPPING", "1", timeout=30)
        assert proc.wait(30) == 0
    finally:
        kill(proc)
    text = log.read_text(errors="replace")
    assert "secret" not in text and "Traceback" not in text


@pytest.mark.mailstack
def test_watchdog_pings_stop_while_a_letter_hangs(stack, tmp_path, notify_socket, monkeypatch,
                                                corpus_roster):
    from helpdesk.cli import main
    from helpdesk.pipeline import Processor

    config = write_config(tmp_path, stack, f"sqlite:///{tmp_path / 'helpdesk.sqlite3'}")
    assert main(["--config", str(config), "roster", "import", str(ROSTER)]) == 0
    monkeypatch.setenv("NOTIFY_SOCKET", notify_socket.address)
    monkeypatch.setenv("WATCHDOG_USEC", "2000000")
    hanging, release = threading.Event(), threading.Event()
    real = Processor.process_one

    def hangs(self, letter_id):
        hanging.set()
        release.wait(30)  # stands for a regular expression that runs for hours
        return real(self, letter_id)

    monkeypatch.setattr(Processor, "process_one", hangs)
    during_hang: list[list[dict]] = []

    def on_hang(letter_id):
        during_hang.append(notify_socket.pending())  # what arrived while the letter hung
        release.set()

    running = DaemonThread(config)
    running.daemon.on_hang = on_hang
    with running:
        notify_socket.wait_for("READY", "1")
        notify_socket.wait_for("WATCHDOG", "1")
        who = corpus_roster.students[15]
        stack.send(letter(who.email, "вопрос", "Не понимаю задачу 6 по алгебре."), who.email, [SCHOOL])
        wait_until(hanging.is_set, 30, what="the letter to hang")
        notify_socket.pending()  # sent before the hang began
        wait_until(lambda: during_hang, 30, what="the letter watchdog")
        # systemd's watchdog is 2 s: helpdesk's own letter timeout went below it.
        assert running.daemon.letter_timeout < 2
        notify_socket.wait_for("WATCHDOG", "1")  # healthy again once the letter is done
        stack.wait_for(who.email, 1, timeout=30)  # and the letter was answered
    assert during_hang and not [m for m in during_hang[0] if m.get("WATCHDOG") == "1"]


# --- logs -----------------------------------------------------------------------------------------


@pytest.mark.mailstack
def test_logs_name_letters_and_appeals_never_bodies_or_passwords(stack, tmp_path, caplog,
                                                                corpus_roster):
    from helpdesk.cli import main
    from helpdesk.store.models import Letter

    config = write_config(tmp_path, stack, f"sqlite:///{tmp_path / 'helpdesk.sqlite3'}")
    assert main(["--config", str(config), "roster", "import", str(ROSTER)]) == 0
    bodies = ["Прошу пересмотреть оценку за контрольную по физике от 12 ноября",
              "Сын пропустил урок истории из-за соревнований по плаванию"]
    students = corpus_roster.students[15], corpus_roster.students[3]
    for who, body in zip(students, bodies):
        stack.send(letter(who.email, "вопрос", f"Здравствуйте! {body}.\n{who.full_name}"),
                   who.email, [SCHOOL])
    stack.wait_for(SCHOOL, 2)
    password = stack.password(SCHOOL)
    with caplog.at_level(logging.DEBUG):
        assert main(["--config", str(config), "run", "--once"]) == 0
    lines = [r.getMessage() + (f"\n{r.exc_text}" if r.exc_text else "") for r in caplog.records]
    rows = list(Letter.select(Letter.id, Letter.uid, Letter.appeal))
    assert len(rows) == 2 and all(row.appeal_id for row in rows)
    for row in rows:
        assert any(f"letter {row.id} (UID {row.uid})" in line and f"appeal {row.appeal_id}" in line
                   for line in lines), lines
    for line in lines:
        assert password not in line
        assert not any(body[:30] in line for body in bodies), line
        assert not any(who.full_name in line for who in students), line
