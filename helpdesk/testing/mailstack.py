"""A real local mail stack for tests and the demo: Dovecot + a small SMTP front.

Layout of a stack's work directory (keep its path short: Dovecot's unix
sockets live under it and a socket path must stay under 108 bytes)::

    WORKDIR/dovecot.conf    generated Dovecot configuration
    WORKDIR/users           passwd-file (``addr:{PLAIN}password::::::``)
    WORKDIR/run/            Dovecot base_dir (sockets, master.pid)
    WORKDIR/state/          Dovecot state_dir
    WORKDIR/mail/           mail homes (owned by the mail user)
    WORKDIR/dovecot.log     Dovecot log
    WORKDIR/tls/            self-signed certificate (only with ``tls=True``)
    WORKDIR/smtp-front.pid  pid of the detached SMTP front (CLI mode)
    WORKDIR/smtp-front.log  its log
    WORKDIR/stack.json      ports and pids of the running stack

Dovecot serves IMAP (with IDLE) and LMTP on free 127.0.0.1 ports chosen per
run.  The SMTP front (aiosmtpd) accepts letters and hands each one to
Dovecot's LMTP *before* it answers 250, so a letter is in the mailbox as soon
as the SMTP transaction is over.

Python use (pytest fixtures, the demo)::

    with MailStack.start(users={"alice@school.test": "pw"}) as stack:
        stack.send(msg, "parent@home.test", ["alice@school.test"])
        [raw] = stack.wait_for("alice@school.test", 1)

Command line: ``scripts/mailstack start|stop|status DIR``, or
``python -m helpdesk.testing.mailstack ...`` (same arguments).

Things worth knowing:

* Folder separator is ``/``; Sent, Drafts, Trash and Junk exist with their
  SPECIAL-USE flags and are subscribed.  Up to 100 IMAP connections per user.
* ``add_user`` reloads Dovecot (SIGHUP) because passwd-file is re-read at
  most once a second; open IMAP sessions (IDLE too) are not disturbed.
* Dovecot 2.3's LMTP has no SMTPUTF8: an envelope sender with a non-ASCII
  *local part* is saved as ``Return-Path: <>`` (headers are untouched; IDN
  domains are passed as punycode).
* One SMTP reply covers all recipients after DATA: if LMTP fails for one
  recipient the whole transaction fails (fine for tests, not for production).
* Start takes ~0.05 s in process (~0.2 s for ``scripts/mailstack start``),
  stop ~0.12 s.
"""

from __future__ import annotations

import argparse
import asyncio
import atexit
import email
import email.message
import email.policy
import grp
import json
import os
import pwd
import shutil
import signal
import smtplib
import socket
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path

HOST = "127.0.0.1"
INSTALL_HINT = "dovecot not found: apt-get install dovecot-imapd dovecot-lmtpd"
MAX_MESSAGE_SIZE = 40 * 1024 * 1024  # a 30 MB letter, with room for encoding
MAX_WORKDIR_LEN = 70  # unix socket paths must stay under 108 bytes
SPECIAL_FOLDERS = {"Sent": "\\Sent", "Drafts": "\\Drafts", "Trash": "\\Trash", "Junk": "\\Junk"}
FOLDER_SEPARATOR = "/"
START_TIMEOUT = 10.0
STOP_TIMEOUT = 10.0


class MailStackError(RuntimeError):
    """The mail stack could not be started, reached or stopped."""


# --------------------------------------------------------------------------
# Small process and port helpers
# --------------------------------------------------------------------------


def free_ports(count: int) -> list[int]:
    """Ask the kernel for ``count`` distinct free TCP ports on 127.0.0.1."""
    sockets = []
    try:
        for _ in range(count):
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            s.bind((HOST, 0))
            sockets.append(s)
        return [s.getsockname()[1] for s in sockets]
    finally:
        for s in sockets:
            s.close()


def port_open(port: int, host: str = HOST) -> bool:
    """True when something accepts TCP connections on host:port."""
    try:
        with socket.create_connection((host, port), timeout=0.5):
            return True
    except OSError:
        return False


def pid_alive(pid: int | None) -> bool:
    """True when the process exists and is not a zombie."""
    if not pid:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return True  # no /proc: trust kill(0)
    state = stat.rsplit(")", 1)[1].split()[0]
    return state not in ("Z", "X")


def reap(pid: int) -> None:
    """Collect an exited child so it does not linger as a zombie."""
    try:
        os.waitpid(pid, os.WNOHANG)
    except ChildProcessError:
        pass


def wait_gone(pid: int, timeout: float) -> bool:
    """Wait until ``pid`` has exited; True if it did within ``timeout``."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        reap(pid)
        if not pid_alive(pid):
            return True
        time.sleep(0.02)
    return False


def terminate(pid: int | None, timeout: float = STOP_TIMEOUT) -> None:
    """SIGTERM ``pid`` and wait for it; SIGKILL it if it will not go."""
    if not pid_alive(pid):
        return
    try:
        os.kill(pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    if not wait_gone(pid, timeout):
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            return
        wait_gone(pid, 2.0)


def children(pid: int) -> dict[int, str]:
    """Live child processes of ``pid``: pid -> process title."""
    found = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            title = (entry / "cmdline").read_bytes().split(b"\0")[0].decode(errors="replace")
        except OSError:
            continue
        fields = stat.rsplit(")", 1)[1].split()
        if int(fields[1]) == pid and fields[0] not in ("Z", "X"):
            found[int(entry.name)] = title
    return found


def instance_processes(workdir: Path) -> list[int]:
    """Live Dovecot processes of the stack in ``workdir`` (titled
    ``dovecot-helpdesk-NAME/service`` after its ``instance_name``)."""
    marker = f"dovecot-helpdesk-{workdir.name}/".encode()
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes()
        except OSError:
            continue
        if cmdline.startswith(marker) and pid_alive(int(entry.name)):
            found.append(int(entry.name))
    return found


def read_pid(path: Path) -> int | None:
    try:
        return int(path.read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return None


def tail(path: Path, lines: int = 15) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return ""


# --------------------------------------------------------------------------
# Users file (shared by Dovecot's passdb/userdb and the SMTP front)
# --------------------------------------------------------------------------


def check_user(address: str, password: str) -> None:
    bad = (":", "\n", "\r")
    if not address or "@" not in address or any(c in address for c in bad + (" ",)):
        raise ValueError(f"bad mail address for the stack: {address!r}")
    if any(c in password for c in bad):
        raise ValueError("a stack password must not contain ':' or line breaks")


def read_users(path: Path) -> dict[str, str]:
    """Address (lower case) -> plain password, from a passwd-file."""
    users: dict[str, str] = {}
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return users
    for line in text.splitlines():
        fields = line.split(":")
        if len(fields) >= 2 and fields[0] and not line.startswith("#"):
            users[fields[0].lower()] = fields[1].removeprefix("{PLAIN}")
    return users


def write_users(path: Path, users: dict[str, str]) -> None:
    """Replace the passwd-file atomically (Dovecot may read it at any time)."""
    lines = [f"{addr.lower()}:{{PLAIN}}{pw}::::::\n" for addr, pw in sorted(users.items())]
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text("".join(lines), encoding="utf-8")
    tmp.chmod(0o644)
    os.replace(tmp, path)


# --------------------------------------------------------------------------
# Dovecot
# --------------------------------------------------------------------------


def find_dovecot() -> tuple[str, str]:
    """Paths of the dovecot and doveadm binaries, or a clear error."""
    dovecot = shutil.which("dovecot") or _sbin("dovecot")
    doveadm = shutil.which("doveadm") or _sbin("doveadm")
    if not dovecot or not doveadm:
        raise MailStackError(INSTALL_HINT)
    for libexec in ("/usr/lib/dovecot", "/usr/libexec/dovecot"):
        if Path(libexec, "imap").exists() or Path(libexec, "lmtp").exists():
            missing = [p for p in ("imap", "lmtp") if not Path(libexec, p).exists()]
            if missing:
                raise MailStackError(f"dovecot {' and '.join(missing)} missing: {INSTALL_HINT}")
    return dovecot, doveadm


def _sbin(name: str) -> str | None:
    for d in ("/usr/sbin", "/usr/local/sbin", "/sbin"):
        if os.access(os.path.join(d, name), os.X_OK):
            return os.path.join(d, name)
    return None


def mail_owner() -> tuple[int, int]:
    """uid/gid that owns the mail: Dovecot refuses uid 0, so root uses nobody."""
    if os.geteuid() != 0:
        return os.getuid(), os.getgid()
    try:
        uid = pwd.getpwnam("nobody").pw_uid
    except KeyError:
        uid = 65534
    for group in ("nogroup", "nobody"):
        try:
            return uid, grp.getgrnam(group).gr_gid
        except KeyError:
            continue
    return uid, 65534


@dataclass
class DovecotPorts:
    imap: int
    lmtp: int
    imaps: int | None = None


def dovecot_config(workdir: Path, ports: DovecotPorts, tls: bool) -> str:
    """Text of a self-contained dovecot.conf for one stack."""
    uid, gid = mail_owner()
    users = workdir / "users"
    lines = [
        f"instance_name = helpdesk-{workdir.name}",
        f"base_dir = {workdir}/run",
        f"state_dir = {workdir}/state",
        f"log_path = {workdir}/dovecot.log",
        "protocols = imap lmtp",
        f"listen = {HOST}",
        "shutdown_clients = yes",
        "# loopback tests only: plain passwords, no delays, no caches",
        "disable_plaintext_auth = no",
        "auth_mechanisms = plain login",
        "auth_username_format = %Lu",
        "auth_cache_size = 0",
        "auth_failure_delay = 0 secs",
        "auth_verbose = yes",
        "mail_location = maildir:~/Maildir",
        "mail_fsync = never",
        "first_valid_uid = 1",
        "first_valid_gid = 1",
        "passdb {",
        "  driver = passwd-file",
        f"  args = scheme=PLAIN username_format=%Lu {users}",
        "}",
        "userdb {",
        "  driver = passwd-file",
        f"  args = username_format=%Lu {users}",
        f"  default_fields = uid={uid} gid={gid} home={workdir}/mail/%Ld/%Ln",
        "}",
    ]
    if os.geteuid() != 0:  # everything runs as the caller
        me = pwd.getpwuid(os.getuid()).pw_name
        group = grp.getgrgid(os.getgid()).gr_name
        lines += [f"default_internal_user = {me}", f"default_login_user = {me}",
                  f"default_internal_group = {group}"]
        lines += [f"service {name} {{\n  chroot =\n}}"  # chroot needs root
                  for name in ("anvil", "imap-login", "imap-urlauth-login")]
    lines += _namespace_config()
    lines += _tls_config(workdir, tls)
    lines += [
        "service imap-login {",
        f"  inet_listener imap {{\n    address = {HOST}\n    port = {ports.imap}\n  }}",
        f"  inet_listener imaps {{\n    address = {HOST}\n    port = {ports.imaps or 0}\n  }}",
        "}",
        "service lmtp {",
        f"  inet_listener lmtp {{\n    address = {HOST}\n    port = {ports.lmtp}\n  }}",
        "}",
        "protocol imap {",
        "  mail_max_userip_connections = 100",
        "}",
        "protocol lmtp {",
        "  postmaster_address = postmaster@localhost",
        "}",
    ]
    return "\n".join(lines) + "\n"


def _namespace_config() -> list[str]:
    lines = [
        "namespace inbox {",
        "  inbox = yes",
        f"  separator = {FOLDER_SEPARATOR}",
    ]
    for name, use in SPECIAL_FOLDERS.items():
        lines += [f"  mailbox {name} {{", f"    special_use = {use}", "    auto = subscribe", "  }"]
    return lines + ["}"]


def _tls_config(workdir: Path, tls: bool) -> list[str]:
    if not tls:
        return ["ssl = no"]
    return [
        "ssl = yes",
        f"ssl_cert = <{workdir}/tls/cert.pem",
        f"ssl_key = <{workdir}/tls/key.pem",
    ]


def make_certificate(workdir: Path) -> Path:
    """Self-signed certificate for localhost/127.0.0.1 (EC key: quick to make)."""
    openssl = shutil.which("openssl")
    if not openssl:
        raise MailStackError("openssl not found (needed for tls=True): apt-get install openssl")
    tls_dir = workdir / "tls"
    tls_dir.mkdir(exist_ok=True)
    cert, key = tls_dir / "cert.pem", tls_dir / "key.pem"
    if cert.exists() and key.exists():
        return cert
    cmd = [
        openssl, "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
        "-nodes", "-days", "30", "-subj", "/CN=localhost",
        "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1",
        "-keyout", str(key), "-out", str(cert),
    ]
    done = subprocess.run(cmd, capture_output=True, text=True)
    if done.returncode != 0:
        raise MailStackError(f"openssl could not make a certificate:\n{done.stderr}")
    return cert


def start_dovecot(dovecot: str, conf: Path, workdir: Path) -> int:
    """Run ``dovecot -c conf`` (it daemonises once bound) and return the master pid."""
    pid_file = workdir / "run" / "master.pid"
    pid_file.unlink(missing_ok=True)
    # Not a pipe: the daemonised master keeps its stdout/stderr open, so reading
    # a pipe to EOF would hang until Dovecot stops.
    early_log = workdir / "dovecot.stderr"
    with open(early_log, "wb") as err:
        code = subprocess.call([dovecot, "-c", str(conf)], stdin=subprocess.DEVNULL,
                               stdout=err, stderr=err)
    if code != 0:
        detail = (tail(early_log) + "\n" + tail(workdir / "dovecot.log")).strip()
        raise MailStackError(f"dovecot did not start:\n{detail}")
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        pid = read_pid(pid_file)
        if pid and pid_alive(pid):
            return pid
        time.sleep(0.01)
    raise MailStackError(f"dovecot wrote no master.pid:\n{tail(workdir / 'dovecot.log')}")


def stop_dovecot(pid: int | None, pid_file: Path | None = None,
                 timeout: float = STOP_TIMEOUT) -> None:
    """Stop a Dovecot master and wait for it (~0.1-0.2 s instead of ~1.2 s).

    On SIGTERM the master stops every service the normal way; all children but
    the log process are gone within ~10 ms.  Then, if any child is still alive
    (the log process always is), the master sleeps a fixed, uninterruptible
    second before exiting (services_monitor_wait_and_kill in Dovecot 2.3).  So:
    once only the log process is left, it is ended; if the master has not
    exited 150 ms later it is in that sleep with nothing left to do but unlink
    its pid file, and it gets SIGKILL (the pid file is removed here).
    """
    if not pid_alive(pid):
        return
    os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while pid_alive(pid) and time.monotonic() < deadline:
        left = children(pid)
        if left and all(title.endswith("/log") for title in left.values()):
            for child in left:
                terminate(child, timeout=0.05)
            if not wait_gone(pid, 0.15):
                os.kill(pid, signal.SIGKILL)
                if pid_file is not None:
                    pid_file.unlink(missing_ok=True)
            break
        time.sleep(0.005)
    terminate(pid, max(0.5, deadline - time.monotonic()))


# --------------------------------------------------------------------------
# LMTP client (smtplib.LMTP reads only one reply after DATA, so it is not usable
# with several recipients)
# --------------------------------------------------------------------------


class LmtpReply(Exception):
    def __init__(self, code: int, text: str):
        super().__init__(f"{code} {text}")
        self.code = code
        self.text = text


async def _read_reply(reader: asyncio.StreamReader) -> tuple[int, str]:
    lines = []
    while True:
        raw = await reader.readline()
        if not raw:
            raise ConnectionError("LMTP server closed the connection")
        line = raw.decode("utf-8", "replace").rstrip("\r\n")
        lines.append(line[4:])
        if len(line) < 4 or line[3] != "-":
            return int(line[:3]), "\n".join(lines)


async def _command(reader, writer, line: str) -> tuple[int, str]:
    writer.write(line.encode("utf-8") + b"\r\n")
    await writer.drain()
    return await _read_reply(reader)


def dot_stuff(data: bytes) -> bytes:
    """CRLF line ends, leading dots doubled, terminated by CRLF.CRLF."""
    data = data.replace(b"\r\n", b"\n").replace(b"\r", b"\n").replace(b"\n", b"\r\n")
    if not data.endswith(b"\r\n"):
        data += b"\r\n"
    if data.startswith(b"."):
        data = b"." + data
    return data.replace(b"\r\n.", b"\r\n..") + b".\r\n"


def lmtp_path(address: str) -> str:
    """An envelope address as Dovecot 2.3 LMTP takes it.

    Its LMTP has no SMTPUTF8 and records a non-ASCII path as ``<>``, so an
    internationalised domain is sent as IDNA (``дом.рф`` -> ``xn--d1acufc.xn--p1ai``);
    a non-ASCII local part cannot be saved.  ``""`` and ``"<>"`` are the null path.
    """
    address = address.strip().removeprefix("<").removesuffix(">")
    local, at, domain = address.rpartition("@")
    if at and not domain.isascii():
        try:
            domain = domain.encode("idna").decode("ascii")
        except UnicodeError:
            pass
        return f"{local}@{domain}"
    return address


async def lmtp_deliver(
    port: int, mail_from: str, rcpts: list[str], data: bytes, *, smtputf8: bool = False
) -> dict[str, tuple[int, str]]:
    """Deliver one letter through Dovecot LMTP; return each recipient's reply."""
    reader, writer = await asyncio.open_connection(HOST, port)
    results: dict[str, tuple[int, str]] = {}
    try:
        code, text = await _read_reply(reader)
        if code != 220:
            raise LmtpReply(code, text)
        code, text = await _command(reader, writer, "LHLO helpdesk-smtp-front")
        if code != 250:
            raise LmtpReply(code, text)
        params = " BODY=8BITMIME" + (" SMTPUTF8" if smtputf8 and "SMTPUTF8" in text else "")
        code, text = await _command(reader, writer, f"MAIL FROM:<{lmtp_path(mail_from)}>{params}")
        if code != 250:
            raise LmtpReply(code, text)
        accepted = []
        for rcpt in rcpts:
            results[rcpt] = await _command(reader, writer, f"RCPT TO:<{lmtp_path(rcpt)}>")
            if results[rcpt][0] == 250:
                accepted.append(rcpt)
        if not accepted:
            return results
        code, text = await _command(reader, writer, "DATA")
        if code != 354:
            raise LmtpReply(code, text)
        writer.write(dot_stuff(data))
        await writer.drain()
        for rcpt in accepted:  # LMTP: one reply per accepted recipient
            results[rcpt] = await _read_reply(reader)
        await _command(reader, writer, "QUIT")
    finally:
        writer.close()
    return results


# --------------------------------------------------------------------------
# SMTP front (aiosmtpd)
# --------------------------------------------------------------------------


class LmtpRelayHandler:
    """aiosmtpd handler: known recipients only, delivery to LMTP before 250.

    Tests can make it refuse the next few RCPT or DATA commands (``refuse_next``)
    to play a server that answers 4xx for a while and then accepts.
    """

    def __init__(self, users_file: Path, lmtp_port: int):
        self.users_file = users_file
        self.lmtp_port = lmtp_port
        self._refusals: dict[str, list[str]] = {"rcpt": [], "data": []}
        self._lock = threading.Lock()
        self.refused = 0  # how many commands were refused on purpose so far

    def known(self, address: str) -> bool:
        local, _, domain = address.lower().partition("@")
        users = read_users(self.users_file)
        return f"{local}@{domain}" in users or f"{local.split('+', 1)[0]}@{domain}" in users

    def refuse_next(self, count: int, reply: str, stage: str) -> None:
        with self._lock:
            self._refusals[stage] = [reply] * count

    def _refusal(self, stage: str) -> str | None:
        with self._lock:
            if not self._refusals[stage]:
                return None
            self.refused += 1
            return self._refusals[stage].pop()

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        refusal = self._refusal("rcpt")
        if refusal:
            return refusal
        if not self.known(address):
            return f"550 5.1.1 <{address}>: no such user here"
        envelope.rcpt_tos.append(address)
        return "250 2.1.5 OK"

    async def handle_DATA(self, server, session, envelope):
        refusal = self._refusal("data")
        if refusal:
            return refusal
        data = envelope.original_content or envelope.content
        try:
            results = await lmtp_deliver(
                self.lmtp_port, envelope.mail_from, list(envelope.rcpt_tos), data,
                smtputf8=envelope.smtp_utf8,
            )
        except (OSError, LmtpReply) as exc:
            return f"451 4.3.0 local delivery failed: {exc}"
        failures = [(r, c, t) for r, (c, t) in results.items() if c != 250]
        if not failures:
            return "250 2.0.0 delivered"
        rcpt, code, text = failures[0]
        return f"{code} delivery to <{rcpt}> failed: {text.splitlines()[0]}"


class UsersAuthenticator:
    """SMTP AUTH PLAIN/LOGIN against the stack's users file."""

    def __init__(self, users_file: Path):
        self.users_file = users_file

    def __call__(self, server, session, envelope, mechanism, auth_data):
        from aiosmtpd.smtp import AuthResult, LoginPassword

        if not isinstance(auth_data, LoginPassword):
            return AuthResult(success=False, handled=False)
        login = auth_data.login.decode("utf-8", "replace").lower()
        password = auth_data.password.decode("utf-8", "replace")
        ok = read_users(self.users_file).get(login) == password
        return AuthResult(success=ok, handled=False)


def _controller_class():
    """aiosmtpd Controller whose sessions skip a deprecation warning.

    aiosmtpd 1.4 itself sets the deprecated ``Session.login_data`` after every
    successful AUTH, which would warn once per login in every test run.
    """
    from aiosmtpd.controller import Controller
    from aiosmtpd.smtp import SMTP, Session

    class QuietSession(Session):
        login_data = property(lambda self: self._login_data,
                              lambda self, value: setattr(self, "_login_data", value))

    class FrontSMTP(SMTP):
        def _create_session(self):
            return QuietSession(self.loop)

    class FrontController(Controller):
        def factory(self):
            return FrontSMTP(self.handler, **self.SMTP_kwargs)

    return FrontController


def smtp_controller(workdir: Path, port: int, lmtp_port: int):
    """An aiosmtpd Controller (not yet started) for this stack."""
    users_file = workdir / "users"
    return _controller_class()(
        LmtpRelayHandler(users_file, lmtp_port),
        hostname=HOST,
        port=port,
        server_hostname="helpdesk-mailstack",
        ready_timeout=START_TIMEOUT,
        authenticator=UsersAuthenticator(users_file),
        auth_required=False,
        auth_require_tls=False,
        enable_SMTPUTF8=True,
        data_size_limit=MAX_MESSAGE_SIZE,
        decode_data=False,
    )


def run_smtp_front(workdir: Path, port: int, lmtp_port: int) -> None:
    """Body of the detached SMTP front process: serve until SIGTERM."""
    controller = smtp_controller(workdir, port, lmtp_port)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    controller.start()
    print(f"smtp front on {HOST}:{port} -> lmtp {lmtp_port}", flush=True)
    try:
        stop.wait()
    finally:
        controller.stop()


def spawn_smtp_front(workdir: Path, port: int, lmtp_port: int) -> subprocess.Popen:
    """Start the SMTP front as a detached process (own session, survives us)."""
    root = Path(__file__).resolve().parents[2]
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(root), env.get("PYTHONPATH")]))
    cmd = [
        sys.executable, "-m", "helpdesk.testing.mailstack", "smtp-front",
        str(workdir), "--port", str(port), "--lmtp-port", str(lmtp_port),
    ]
    with open(workdir / "smtp-front.log", "ab") as log:
        proc = subprocess.Popen(
            cmd, stdin=subprocess.DEVNULL, stdout=log, stderr=log,
            start_new_session=True, close_fds=True, env=env, cwd=str(workdir),
        )
    (workdir / "smtp-front.pid").write_text(f"{proc.pid}\n")
    return proc


def wait_smtp_front(proc: subprocess.Popen, port: int, workdir: Path) -> None:
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise MailStackError(f"SMTP front exited:\n{tail(workdir / 'smtp-front.log')}")
        if port_open(port):
            return
        time.sleep(0.02)
    raise MailStackError(f"SMTP front not ready:\n{tail(workdir / 'smtp-front.log')}")


# --------------------------------------------------------------------------
# The stack
# --------------------------------------------------------------------------


def prepare_workdir(workdir: str | None) -> tuple[Path, bool]:
    """Create or check the work directory; True when we created it ourselves."""
    created = workdir is None
    path = Path(tempfile.mkdtemp(prefix="hd-", dir="/tmp") if workdir is None else workdir)
    path = path.absolute()
    if len(str(path)) > MAX_WORKDIR_LEN:
        raise MailStackError(
            f"work dir path too long ({len(str(path))} > {MAX_WORKDIR_LEN} chars; "
            f"Dovecot's socket paths must stay under 108 bytes): {path}"
        )
    path.mkdir(parents=True, exist_ok=True)
    path.chmod(0o755)
    _check_parents_searchable(path)
    for sub in ("run", "state"):
        (path / sub).mkdir(exist_ok=True)
    mail = path / "mail"
    mail.mkdir(exist_ok=True)
    if os.geteuid() == 0:
        os.chown(mail, *mail_owner())
    mail.chmod(0o755)
    return path, created


def _check_parents_searchable(path: Path) -> None:
    if os.geteuid() != 0:
        return
    for parent in path.parents:
        if not os.stat(parent).st_mode & 0o001:
            raise MailStackError(
                f"{parent} is not searchable by others, so the mail user cannot reach "
                f"{path}; use a directory under /tmp (tempfile.mkdtemp(dir='/tmp'))"
            )


class MailStack:
    """Dovecot (IMAP + LMTP) and an SMTP front on free 127.0.0.1 ports."""

    host: str = HOST

    def __init__(self, workdir: str, imap_port: int, smtp_port: int, lmtp_port: int,
                 imaps_port: int | None = None):
        self.workdir = workdir
        self.imap_port = imap_port
        self.smtp_port = smtp_port
        self.lmtp_port = lmtp_port
        self.imaps_port = imaps_port
        self.cert_file: str | None = None
        self.dovecot_pid: int | None = None
        self.smtp_pid: int | None = None
        self._controller = None
        self._front: subprocess.Popen | None = None
        self._smtp_stopped = False  # stop_smtp() was called (tests)
        self._remove_workdir = False
        self._doveadm = "doveadm"

    # ---- life cycle -------------------------------------------------------

    @classmethod
    def start(cls, workdir: str | None = None, users: dict[str, str] | None = None, *,
              in_process_smtp: bool = True, tls: bool = False) -> "MailStack":
        """Start Dovecot and the SMTP front; return once both accept connections.

        ``workdir``: short directory for config, sockets, logs and mail (a new
        ``/tmp/hd-*`` one, removed again by ``stop()``, when None).  Users
        already in ``WORKDIR/users`` are kept.  ``tls=True`` adds IMAPS and
        STARTTLS with a self-signed certificate (``stack.cert_file``).
        """
        dovecot, doveadm = find_dovecot()
        path, created = prepare_workdir(workdir)
        if _running_stack(path):
            raise MailStackError(f"a mail stack is already running in {path}")
        if (path / "stack.json").exists():
            cls.attach(str(path)).stop()  # leftovers of a crashed run
        try:
            existing = read_users(path / "users")
            for address, password in (users or {}).items():
                check_user(address, password)
                existing[address.lower()] = password
            write_users(path / "users", existing)
            cert = make_certificate(path) if tls else None
            stack = cls._launch(path, dovecot, in_process_smtp, tls)
        except BaseException:
            if created:
                shutil.rmtree(path, ignore_errors=True)
            raise
        stack._doveadm = doveadm
        stack._remove_workdir = created
        stack.cert_file = str(cert) if cert else None
        stack._write_state()
        if in_process_smtp:
            _LIVE_STACKS.add(stack)
        return stack

    @classmethod
    def _launch(cls, path: Path, dovecot: str, in_process_smtp: bool, tls: bool) -> "MailStack":
        """Pick ports and start both servers; retry if a port was taken meanwhile."""
        last_error: Exception | None = None
        for _ in range(3):
            ports = free_ports(4 if tls else 3)
            stack = cls(str(path), imap_port=ports[0], smtp_port=ports[2], lmtp_port=ports[1],
                        imaps_port=ports[3] if tls else None)
            conf = path / "dovecot.conf"
            conf.write_text(dovecot_config(
                path, DovecotPorts(stack.imap_port, stack.lmtp_port, stack.imaps_port), tls))
            try:
                stack._start_servers(dovecot, conf, in_process_smtp)
                return stack
            except MailStackError as exc:
                stack.stop()
                last_error = exc
                if "in use" not in str(exc).lower():
                    raise
        raise last_error  # type: ignore[misc]

    def _start_servers(self, dovecot: str, conf: Path, in_process_smtp: bool) -> None:
        path = Path(self.workdir)
        if in_process_smtp:
            self.dovecot_pid = start_dovecot(dovecot, conf, path)
            self._controller = smtp_controller(path, self.smtp_port, self.lmtp_port)
            try:
                self._controller.start()
            except Exception as exc:
                self._controller = None
                raise MailStackError(f"SMTP front did not start: {exc}") from exc
            self.smtp_pid = None  # a thread of this process: nothing to kill
        else:
            # Start the front first: its Python start-up overlaps Dovecot's.
            self._front = spawn_smtp_front(path, self.smtp_port, self.lmtp_port)
            self.smtp_pid = self._front.pid
            self.dovecot_pid = start_dovecot(dovecot, conf, path)
            wait_smtp_front(self._front, self.smtp_port, path)

    @classmethod
    def attach(cls, workdir: str) -> "MailStack":
        """A handle on a stack that another process started in ``workdir``."""
        path = Path(workdir).absolute()
        try:
            state = json.loads((path / "stack.json").read_text())
        except (OSError, ValueError) as exc:
            raise MailStackError(f"no mail stack state in {path}: {exc}") from exc
        stack = cls(str(path), state["imap_port"], state["smtp_port"], state["lmtp_port"],
                    state.get("imaps_port"))
        stack.cert_file = state.get("cert_file")
        stack.dovecot_pid = state.get("dovecot_pid")
        stack.smtp_pid = state.get("smtp_pid")
        stack._doveadm = find_dovecot()[1]
        return stack

    def stop(self) -> None:
        """Stop the SMTP front and Dovecot and wait until both are gone."""
        path = Path(self.workdir)
        if self._controller is not None:
            self._controller.stop()
            self._controller = None
        elif process_matches(self.smtp_pid, b"smtp-front"):
            terminate(self.smtp_pid)
        if self._front is not None:
            self._front.wait(timeout=STOP_TIMEOUT)
            self._front = None
        (path / "smtp-front.pid").unlink(missing_ok=True)
        self.smtp_pid = None
        pid_file = path / "run" / "master.pid"
        dovecot_pid = self.dovecot_pid or read_pid(pid_file)
        if process_matches(dovecot_pid, b"dovecot"):
            stop_dovecot(dovecot_pid, pid_file)
        self.dovecot_pid = None
        _LIVE_STACKS.discard(self)
        (path / "stack.json").unlink(missing_ok=True)
        if self._remove_workdir:
            shutil.rmtree(path, ignore_errors=True)
            self._remove_workdir = False

    # ---- faults, for tests: servers down and up again on the same ports ----

    def stop_imap(self) -> None:
        """Stop Dovecot (IMAP and LMTP) as a server crash or restart would: open
        IMAP sessions are cut too. Mail, ports and UIDVALIDITY are kept."""
        pid_file = Path(self.workdir) / "run" / "master.pid"
        pid = self.dovecot_pid or read_pid(pid_file)
        if process_matches(pid, b"dovecot"):
            stop_dovecot(pid, pid_file)
        # The master leaves the imap processes of connected clients running.
        for leftover in instance_processes(Path(self.workdir)):
            terminate(leftover, timeout=2.0)
        self.dovecot_pid = None
        self._write_state()

    def start_imap(self) -> None:
        """Start Dovecot again after ``stop_imap`` (same config, same ports)."""
        path = Path(self.workdir)
        self.dovecot_pid = start_dovecot(find_dovecot()[0], path / "dovecot.conf", path)
        self._write_state()

    def stop_smtp(self) -> None:
        """Stop the SMTP front (in-process stacks only); the port is left free."""
        if self._controller is None:
            raise MailStackError("stop_smtp needs a stack started with in_process_smtp=True")
        self._controller.stop()
        self._controller = None
        self._smtp_stopped = True

    def start_smtp(self) -> None:
        """Start the SMTP front again on the same port after ``stop_smtp``."""
        if not self._smtp_stopped:
            raise MailStackError("start_smtp: the SMTP front was not stopped with stop_smtp")
        controller = smtp_controller(Path(self.workdir), self.smtp_port, self.lmtp_port)
        controller.start()
        self._controller = controller
        self._smtp_stopped = False

    def refuse_next(self, count: int, code: int = 451, text: str = "4.3.2 try again later",
                    *, stage: str = "data") -> None:
        """Make the SMTP front answer ``code text`` to the next ``count`` RCPT
        (``stage="rcpt"``) or DATA (``stage="data"``) commands, then accept again.
        In-process stacks only."""
        if self._controller is None:
            raise MailStackError("refuse_next needs a stack started with in_process_smtp=True")
        if stage not in ("rcpt", "data"):
            raise ValueError(f"stage must be 'rcpt' or 'data', not {stage!r}")
        self._controller.handler.refuse_next(count, f"{code} {text}", stage)

    @property
    def refused(self) -> int:
        """How many SMTP commands the front refused because of ``refuse_next``."""
        return self._controller.handler.refused if self._controller is not None else 0

    def running(self) -> dict[str, bool]:
        """Which parts are alive and answering."""
        return {
            "dovecot": pid_alive(self.dovecot_pid) and port_open(self.imap_port),
            "smtp": port_open(self.smtp_port),
        }

    def __enter__(self) -> "MailStack":
        return self

    def __exit__(self, *exc) -> None:
        self.stop()

    def __repr__(self) -> str:
        return (f"MailStack(workdir={self.workdir!r}, imap={self.imap_port}, "
                f"smtp={self.smtp_port}, lmtp={self.lmtp_port}, imaps={self.imaps_port})")

    def info(self) -> dict:
        return {
            "workdir": self.workdir,
            "host": self.host,
            "imap_port": self.imap_port,
            "smtp_port": self.smtp_port,
            "lmtp_port": self.lmtp_port,
            "imaps_port": self.imaps_port,
            "cert_file": self.cert_file,
            "dovecot_pid": self.dovecot_pid,
            "smtp_pid": self.smtp_pid,
            "in_process_smtp": self._controller is not None,
            "users": sorted(read_users(Path(self.workdir) / "users")),
        }

    def _write_state(self) -> None:
        path = Path(self.workdir) / "stack.json"
        tmp = path.with_name("stack.json.tmp")
        tmp.write_text(json.dumps(self.info(), indent=2) + "\n")
        os.replace(tmp, path)

    # ---- users and mailboxes ----------------------------------------------

    def add_user(self, address: str, password: str) -> None:
        """Add (or re-password) a user; Dovecot and SMTP see it when this returns.

        Dovecot's passwd-file is re-read at most once per second, whatever
        auth_cache_size says, so Dovecot is reloaded (SIGHUP: existing IMAP
        sessions, IDLE included, stay) and the new login is checked (~30 ms).
        """
        check_user(address, password)
        users_file = Path(self.workdir) / "users"
        users = read_users(users_file)
        users[address.lower()] = password
        write_users(users_file, users)
        pid = self.dovecot_pid or read_pid(Path(self.workdir) / "run" / "master.pid")
        if not pid_alive(pid):
            return  # not running: the file is read at the next start
        self._write_state()
        os.kill(pid, signal.SIGHUP)
        self._wait_login(address, password)

    def _wait_login(self, address: str, password: str, timeout: float = 5.0) -> None:
        from imapclient import IMAPClient
        from imapclient.exceptions import LoginError

        deadline = time.monotonic() + timeout
        while True:
            client = IMAPClient(self.host, port=self.imap_port, ssl=False, timeout=5)
            try:
                client.login(address, password)
                client.logout()
                return
            except LoginError:
                client.shutdown()
                if time.monotonic() >= deadline:
                    raise MailStackError(f"Dovecot did not pick up user {address}") from None
                time.sleep(0.02)

    def password(self, address: str) -> str:
        try:
            return read_users(Path(self.workdir) / "users")[address.lower()]
        except KeyError:
            raise MailStackError(f"no such user in the stack: {address}") from None

    def doveadm(self, *args: str) -> subprocess.CompletedProcess:
        """Run doveadm against this stack's Dovecot; raise on failure."""
        cmd = [self._doveadm, "-c", str(Path(self.workdir) / "dovecot.conf"), *args]
        done = subprocess.run(cmd, capture_output=True, text=True)
        if done.returncode != 0:
            raise MailStackError(f"{' '.join(cmd)} failed ({done.returncode}): {done.stderr}")
        return done

    def clear(self) -> None:
        """Empty every folder of every user."""
        self.doveadm("expunge", "-A", "mailbox", "*", "all")

    def imap(self, address: str, *, ssl: bool = False):
        """A logged-in IMAPClient for ``address`` (caller logs out)."""
        from imapclient import IMAPClient

        if ssl:
            import ssl as ssl_module

            context = ssl_module.create_default_context(cafile=self.cert_file)
            client = IMAPClient(self.host, port=self.imaps_port, ssl=True, ssl_context=context,
                                timeout=10)
        else:
            client = IMAPClient(self.host, port=self.imap_port, ssl=False, timeout=10)
        try:
            client.login(address, self.password(address))
        except Exception:
            client.shutdown()
            raise
        return client

    def messages(self, address: str, folder: str = "INBOX") -> list[bytes]:
        """Raw bytes of every letter in ``folder`` of ``address``, in UID order."""
        client = self.imap(address)
        try:
            client.select_folder(folder, readonly=True)
            uids = client.search("ALL")
            if not uids:
                return []
            fetched = client.fetch(uids, ["BODY.PEEK[]"])
            return [fetched[uid][b"BODY[]"] for uid in sorted(fetched)]
        finally:
            client.logout()

    def wait_for(self, address: str, count: int, timeout: float = 10.0,
                 folder: str = "INBOX") -> list[bytes]:
        """Poll until ``folder`` holds at least ``count`` letters; return them all."""
        deadline = time.monotonic() + timeout
        while True:
            found = self.messages(address, folder)
            if len(found) >= count:
                return found
            if time.monotonic() >= deadline:
                raise TimeoutError(
                    f"{address}/{folder}: wanted {count} letter(s) within {timeout:g}s, "
                    f"found {len(found)}{_describe(found)}"
                )
            time.sleep(0.05)

    def send(self, raw: bytes | email.message.Message, mail_from: str,
             rcpt_to: list[str]) -> None:
        """Send through the stack's SMTP; raise if any recipient is refused."""
        self.send_many([(raw, mail_from, [rcpt_to] if isinstance(rcpt_to, str) else rcpt_to)])


    def send_many(self, letters: list[tuple[bytes | email.message.Message, str, list[str]]]) -> None:
        """Send ``(letter, mail_from, rcpt_to)`` items over one SMTP connection
        (500 letters in about a second); raise if any recipient is refused."""
        with smtplib.SMTP(self.host, self.smtp_port, timeout=30) as smtp:
            for raw, mail_from, rcpt_to in letters:
                if isinstance(raw, email.message.Message):
                    # as a mail client sends it: RFC 2047 headers, SMTPUTF8 only if needed
                    refused = smtp.send_message(raw, mail_from, rcpt_to)
                else:
                    refused = smtp.sendmail(mail_from, rcpt_to, raw, mail_options=_mail_options(
                        raw, [mail_from, *rcpt_to]))
                if refused:
                    raise smtplib.SMTPRecipientsRefused(refused)


def _mail_options(raw: bytes, addresses: list[str]) -> list[str]:
    options = []
    if any(b > 127 for b in raw):
        options.append("BODY=8BITMIME")
    if not all(a.isascii() for a in addresses):
        options.append("SMTPUTF8")
    return options


# Stacks whose SMTP front is a thread of this process: stopped at exit, so a
# crashed test run leaves no Dovecot behind.
_LIVE_STACKS: set[MailStack] = set()


@atexit.register
def _stop_live_stacks() -> None:
    for stack in list(_LIVE_STACKS):
        try:
            stack.stop()
        except Exception:  # noqa: BLE001 - best effort at interpreter exit
            pass


def _describe(found: list[bytes]) -> str:
    if not found:
        return ""
    lines = []
    for raw in found:
        msg = email.message_from_bytes(raw, policy=email.policy.default)
        lines.append(f"  - from {msg.get('From', '?')}: {msg.get('Subject', '(no subject)')}")
    return ":\n" + "\n".join(lines)


def _running_stack(path: Path) -> bool:
    pid = read_pid(path / "run" / "master.pid")
    return pid_alive(pid) and _is_dovecot(pid)


def _is_dovecot(pid: int) -> bool:
    return process_matches(pid, b"dovecot")


def process_matches(pid: int | None, marker: bytes) -> bool:
    """True when ``pid`` is alive and its command line contains ``marker``
    (guards against killing an unrelated process that reused a stale pid)."""
    if not pid_alive(pid):
        return False
    try:
        return marker in Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return True


# --------------------------------------------------------------------------
# Command line
# --------------------------------------------------------------------------


def _user_arg(value: str) -> tuple[str, str]:
    address, sep, password = value.partition(":")
    if not sep:
        raise argparse.ArgumentTypeError("expected addr:password")
    return address, password


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="mailstack", description="Local Dovecot + SMTP mail stack for tests and the demo")
    sub = parser.add_subparsers(dest="command", required=True,
                                metavar="{start,stop,status}")
    start = sub.add_parser("start", help="start a stack in DIR and leave it running")
    start.add_argument("dir")
    start.add_argument("--user", action="append", type=_user_arg, default=[],
                       metavar="ADDR:PASSWORD", help="mail user (repeatable)")
    start.add_argument("--tls", action="store_true", help="IMAPS/STARTTLS, self-signed cert")
    stop = sub.add_parser("stop", help="stop the stack running in DIR")
    stop.add_argument("dir")
    status = sub.add_parser("status", help="show the stack in DIR (exit 3 if not running)")
    status.add_argument("dir")
    front = sub.add_parser("smtp-front")  # internal: the detached SMTP front
    front.add_argument("dir")
    front.add_argument("--port", type=int, required=True)
    front.add_argument("--lmtp-port", type=int, required=True)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return _COMMANDS[args.command](args)
    except MailStackError as exc:
        print(f"mailstack: {exc}", file=sys.stderr)
        return 1


def _cmd_start(args) -> int:
    began = time.monotonic()
    stack = MailStack.start(args.dir, dict(args.user), in_process_smtp=False, tls=args.tls)
    info = stack.info()
    print(json.dumps({k: info[k] for k in (
        "workdir", "host", "imap_port", "smtp_port", "lmtp_port", "imaps_port", "cert_file",
        "users")}, indent=2))
    print(f"mailstack: ready in {time.monotonic() - began:.2f}s", file=sys.stderr)
    return 0


def _cmd_stop(args) -> int:
    path = Path(args.dir).absolute()
    if not (path / "stack.json").exists() and not _running_stack(path):
        print(f"mailstack: nothing running in {path}")
        return 0
    began = time.monotonic()
    if (path / "stack.json").exists():
        MailStack.attach(str(path)).stop()
    else:
        pid_file = path / "run" / "master.pid"
        stop_dovecot(read_pid(pid_file), pid_file)
    print(f"mailstack: stopped in {time.monotonic() - began:.2f}s")
    return 0


def _cmd_status(args) -> int:
    path = Path(args.dir).absolute()
    if not (path / "stack.json").exists():
        print(f"mailstack: nothing running in {path}")
        return 3
    stack = MailStack.attach(str(path))
    alive = stack.running()
    print(json.dumps({**stack.info(), "running": alive}, indent=2))
    return 0 if all(alive.values()) else 3


def _cmd_smtp_front(args) -> int:
    run_smtp_front(Path(args.dir).absolute(), args.port, args.lmtp_port)
    return 0


_COMMANDS = {
    "start": _cmd_start,
    "stop": _cmd_stop,
    "status": _cmd_status,
    "smtp-front": _cmd_smtp_front,
}

if __name__ == "__main__":
    sys.exit(main())
