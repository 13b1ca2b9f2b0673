"""The daemon's settings: ``config.toml`` read into frozen, typed sections.

``load_config()`` finds the file (argument, else ``$HELPDESK_CONFIG``, else
``./config.toml``), checks every key and raises ``ConfigError`` naming the file
and the key when something is wrong. Things that are legal but will not work yet
(a password not given, a missing directory) are not errors: ``Config.problems()``
lists them for ``helpdesk check``.

Passwords are looked up in this order, the first one found wins:
``$HELPDESK_IMAP_PASSWORD`` / ``$HELPDESK_SMTP_PASSWORD``, then the file named by
``password_file``, then ``password`` written in the config itself.

Relative paths (SQLite database, templates, password and CA files)
are resolved against the directory of the config file.
"""
from __future__ import annotations

import os
import re
import string
import tomllib
from dataclasses import dataclass, field
from datetime import time
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

CONFIG_ENV = "HELPDESK_CONFIG"
DEFAULT_CONFIG_NAME = "config.toml"
PASSWORD_ENV = {"imap": "HELPDESK_IMAP_PASSWORD", "smtp": "HELPDESK_SMTP_PASSWORD"}
SECURITY_MODES = ("none", "starttls", "ssl")
AUTH_MODES = ("password", "xoauth2")
DEFAULT_PORTS = {
    "imap": {"ssl": 993, "starttls": 143, "none": 143},
    "smtp": {"ssl": 465, "starttls": 587, "none": 25},
}
LOOPBACK_HOSTS = frozenset({"localhost", "127.0.0.1", "::1"})

_EMAIL_RE = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
_HHMM_RE = re.compile(r"^(\d{1,2}):(\d{2})$")


class ConfigError(Exception):
    """The config file is missing or wrong; the message names the file and the key."""


# --------------------------------------------------------------------------- sections


@dataclass(frozen=True)
class SchoolConfig:
    name: str
    address: str  # lower-case; the mailbox helpdesk reads and sends from
    timezone: ZoneInfo  # str(timezone) / timezone.key gives the IANA name
    domain: str  # default: the domain of ``address``
    show_teacher_address: bool = False
    attachment_limit_mb: float = 10.0  # attachments forwarded per letter; larger files are named
    from_name: str = ""  # default: ``name``


@dataclass(frozen=True)
class MailServerConfig:
    host: str
    port: int
    security: str  # "none" | "starttls" | "ssl"
    username: str | None
    password: str | None = field(repr=False)
    password_source: str | None  # "env" | "file" | "inline" | None
    password_file: Path | None
    ca_file: Path | None  # extra CA bundle to trust (self-signed test servers)
    timeout: float
    password_problem: str | None = None  # why password_file gave nothing
    tls_verify: bool = True  # false: the server's certificate is not checked (loud warning)
    auth: str = "password"  # "password" (an app password) | "xoauth2" (an OAuth2 access token)
    token_file: Path | None = None  # xoauth2: a file holding a current access token
    token_command: str | None = None  # xoauth2: a command printing a fresh access token


@dataclass(frozen=True)
class ImapConfig(MailServerConfig):
    folder: str = "INBOX"
    idle: bool = True
    poll_interval: float = 60.0  # with IDLE on: longest wait before checking anyway
    processed_flag: str = "\\Seen"  # set on a letter once it is stored; "" = none
    processed_folder: str = ""  # dealt-with letters are moved here; "" = they stay
    quarantine_folder: str = "Quarantine"  # letters that could not be processed; "" = stay


@dataclass(frozen=True)
class SmtpConfig(MailServerConfig):
    pass


@dataclass(frozen=True)
class DatabaseConfig:
    url: str  # sqlite URLs carry an absolute path: sqlite:////abs/path

    @property
    def scheme(self) -> str:
        scheme = self.url.split(":", 1)[0]
        return "postgresql" if scheme == "postgres" else scheme

    @property
    def sqlite_path(self) -> Path | None:
        """The database file, or None for PostgreSQL and ``:memory:``."""
        if self.scheme != "sqlite":
            return None
        path = self.url[len("sqlite:///"):]
        return None if path == ":memory:" else Path(path)


@dataclass(frozen=True)
class HoursConfig:
    start: time
    end: time
    six_day_week: bool = False


@dataclass(frozen=True)
class SlaConfig:
    window_days: float = 1.0
    reminder_at: float = 0.75  # share of the window; 0 = no reminder
    escalate_to: tuple = ("deputy", "director")  # one level each; an item may be a list
    escalation_interval: float = 1.0  # working days between escalation levels
    escalation_copy: tuple[str, ...] = ("assignee",)


@dataclass(frozen=True)
class DaemonConfig:
    interval: float = 60.0  # seconds between cycles when IDLE is off
    letter_timeout: float = 300.0  # one letter processed longer than this: restart
    claim_lease: float = 300.0  # seconds a daemon's claim on outgoing letters holds unrenewed


@dataclass(frozen=True)
class MetricsConfig:
    enabled: bool = False  # serve Prometheus metrics at http://listen:port/metrics
    listen: str = "127.0.0.1"
    port: int = 9464


@dataclass(frozen=True)
class OutboxConfig:
    max_attempts: int = 8
    retry_base: float = 30.0  # seconds before the first retry
    ack_limit_per_hour: int = 10  # acknowledgements to one address per hour; 0 = no limit


@dataclass(frozen=True)
class DigestConfig:
    time: time = time(8, 0)  # school-local; working days only
    enabled: bool = True
    extra_addresses: tuple[str, ...] = ()  # besides the deputy and the director


@dataclass(frozen=True)
class RetentionConfig:
    bodies_days: int = 365  # letters' bodies of finished appeals kept this long; 0 = forever


@dataclass(frozen=True)
class PathsConfig:
    templates: Path


@dataclass(frozen=True)
class Config:
    path: Path  # the config file, absolute
    school: SchoolConfig
    imap: ImapConfig
    smtp: SmtpConfig
    database: DatabaseConfig
    hours: HoursConfig
    sla: SlaConfig
    daemon: DaemonConfig
    outbox: OutboxConfig
    paths: PathsConfig
    digest: DigestConfig = None  # type: ignore[assignment]  # always set by load_config
    retention: RetentionConfig = RetentionConfig()
    metrics: MetricsConfig = MetricsConfig()
    unknown_keys: tuple[str, ...] = ()

    @property
    def dir(self) -> Path:
        return self.path.parent

    def problems(self) -> list[str]:
        """What will stop helpdesk from working although the file is valid."""
        found = [f"unknown key {key} (ignored; a typo?)" for key in self.unknown_keys]
        found += _server_problems("imap", self.imap)
        found += _server_problems("smtp", self.smtp)
        db_path = self.database.sqlite_path
        if db_path is not None and not db_path.parent.is_dir():
            found.append(f"database.url: directory {db_path.parent} does not exist")
        if not self.paths.templates.is_dir():
            found.append(f"paths.templates: directory {self.paths.templates} does not exist")
        return found

    def warnings(self) -> list[str]:
        """What works but was weakened on purpose (shown by ``helpdesk check``)."""
        return [f"{name}.tls_verify is false: the certificate of {server.host} is NOT checked; "
                f"anyone on the way can read the mail and the password (prefer {name}.ca_file)"
                for name, server in (("imap", self.imap), ("smtp", self.smtp))
                if not server.tls_verify and server.security != "none"]


def _server_problems(name: str, server: MailServerConfig) -> list[str]:
    found = []
    if server.auth == "xoauth2":
        if not server.token_file and not server.token_command:
            found.append(f"{name}.auth is \"xoauth2\": give {name}.token_file or {name}.token_command")
        elif server.token_file and not server.token_file.is_file():
            found.append(f"{name}.token_file: {server.token_file} does not exist")
    elif server.password_problem:
        found.append(f"{name}.password_file: {server.password_problem}")
    elif server.username and not server.password:
        found.append(
            f"{name}.password is not set: give {name}.password, {name}.password_file "
            f"or the environment variable {PASSWORD_ENV[name]}"
        )
    if not server.username and server.security != "none":
        found.append(f"{name}.username is empty: the server at {server.host} will ask for a login")
    if server.security == "none" and server.password and server.host not in LOOPBACK_HOSTS:
        found.append(
            f"{name}.security is \"none\": the password would travel unencrypted to {server.host}"
        )
    if server.ca_file is not None and not server.ca_file.is_file():
        found.append(f"{name}.ca_file: {server.ca_file} does not exist")
    return found


# --------------------------------------------------------------------------- loading


def load_config(path: str | os.PathLike[str] | None = None) -> Config:
    """Read and check the config: ``path``, else ``$HELPDESK_CONFIG``, else ./config.toml."""
    file = Path(path or os.environ.get(CONFIG_ENV) or DEFAULT_CONFIG_NAME).expanduser().absolute()
    try:
        text = file.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(
            f"{file}: config file not found (give its path, set {CONFIG_ENV}, "
            f"or create one with `helpdesk init`)"
        ) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{file}: cannot read the config file: {exc}") from None
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{file}: TOML syntax error: {exc}") from None
    return _build(file, data)


def _build(file: Path, data: dict[str, Any]) -> Config:
    base = file.parent
    tables = {name: _Table(file, name, data) for name in _SECTIONS}
    database = _database(tables["database"], base)
    sections = dict(
        school=_school(tables["school"]),
        imap=_imap(tables["imap"], base),
        smtp=_smtp(tables["smtp"], base),
        database=database,
        hours=_hours(tables["hours"]),
        sla=_sla(tables["sla"]),
        daemon=DaemonConfig(
            interval=tables["daemon"].number("interval", 60.0, positive=True),
            letter_timeout=tables["daemon"].number("letter_timeout", 300.0, positive=True),
            claim_lease=tables["daemon"].number("claim_lease", 300.0, positive=True),
        ),
        outbox=_outbox(tables["outbox"]),
        paths=_paths(tables["paths"], base),
        digest=_digest(tables["digest"]),
        retention=RetentionConfig(bodies_days=tables["retention"].integer("bodies_days", 365, low=0)),
        metrics=MetricsConfig(
            enabled=tables["metrics"].flag("enabled", False),
            listen=tables["metrics"].text("listen", "127.0.0.1") or "127.0.0.1",
            port=tables["metrics"].integer("port", 9464, low=1, high=65535),
        ),
    )
    unknown = [f"[{name}]" for name in data if name not in _SECTIONS]
    for table in tables.values():
        unknown += table.unknown_keys()
    return Config(path=file, **sections, unknown_keys=tuple(unknown))


_REQUIRED = object()


class _Table:
    """One ``[section]`` of the file, with typed getters that raise ConfigError."""

    def __init__(self, file: Path, name: str, data: dict[str, Any]) -> None:
        self.file, self.name = file, name
        value = data.get(name, {})
        if not isinstance(value, dict):
            raise ConfigError(f"{file}: {name} must be a section [{name}], not a value")
        self.data: dict[str, Any] = value
        self.present = name in data
        self.used: set[str] = set()

    def error(self, key: str, message: str) -> ConfigError:
        return ConfigError(f"{self.file}: {self.name}.{key} {message}")

    def get(self, key: str, kinds: tuple[type, ...], what: str, default: Any = _REQUIRED) -> Any:
        self.used.add(key)
        if key not in self.data:
            if default is _REQUIRED:
                where = "" if self.present else f" (section [{self.name}] is missing)"
                raise self.error(key, f"is required but missing{where}")
            return default
        value = self.data[key]
        if isinstance(value, bool) and bool not in kinds or not isinstance(value, kinds):
            raise self.error(key, f"must be {what}, got {value!r}")
        return value

    def text(self, key: str, default: Any = _REQUIRED, *, required: bool = False) -> Any:
        value = self.get(key, (str,), "a string", default)
        if isinstance(value, str):
            value = value.strip()
            if required and not value:
                raise self.error(key, "must not be empty")
        return value

    def flag(self, key: str, default: bool) -> bool:
        return self.get(key, (bool,), "true or false", default)

    def integer(self, key: str, default: Any = _REQUIRED, *, low: int = 1, high: int | None = None) -> int:
        value = self.get(key, (int,), "an integer", default)
        if value < low or (high is not None and value > high):
            limit = f"between {low} and {high}" if high is not None else f"at least {low}"
            raise self.error(key, f"must be {limit}, got {value}")
        return value

    def number(self, key: str, default: float, *, positive: bool = False) -> float:
        value = float(self.get(key, (int, float), "a number", default))
        if positive and not value > 0:
            raise self.error(key, f"must be greater than 0, got {value:g}")
        return value

    def path(self, key: str, base: Path) -> Path | None:
        value = self.text(key, None)
        return _resolve(base, value) if value else None

    def unknown_keys(self) -> list[str]:
        return [f"{self.name}.{key}" for key in self.data if key not in self.used]


_SECTIONS = ("school", "imap", "smtp", "database", "hours", "sla", "daemon", "outbox", "digest",
             "paths", "retention", "metrics")


def _resolve(base: Path, value: str) -> Path:
    # $VARIABLES are expanded: password_file = "$CREDENTIALS_DIRECTORY/imap-password"
    # reads a secret that systemd's LoadCredential= handed to the service.
    return Path(os.path.normpath(base / Path(os.path.expandvars(value)).expanduser()))


def _sla(t: _Table) -> SlaConfig:
    from .sla.ladder import build_ladder

    def names(key: str, default: tuple) -> tuple:
        value = t.get(key, (list,), "a list", list(default))
        items = []
        for item in value:
            if isinstance(item, str):
                items.append(item.strip())
            elif isinstance(item, list) and all(isinstance(x, str) for x in item):
                items.append(tuple(x.strip() for x in item))
            else:
                raise t.error(key, f"must list roles or addresses (strings), got {item!r}")
        return tuple(items)

    config = SlaConfig(
        window_days=t.number("window_days", 1.0, positive=True),
        reminder_at=t.number("reminder_at", 0.75),
        escalate_to=names("escalate_to", SlaConfig.escalate_to),
        escalation_interval=t.number("escalation_interval", 1.0),
        escalation_copy=tuple(x for x in names("escalation_copy", SlaConfig.escalation_copy)
                              if isinstance(x, str)),
    )
    if not 0 <= config.reminder_at < 1:
        raise t.error("reminder_at", f"must be from 0 (no reminder) to below 1, got {config.reminder_at:g}")
    try:
        build_ladder(config.reminder_at, config.escalate_to, config.escalation_interval,
                     config.escalation_copy)
    except ValueError as exc:
        raise ConfigError(f"{t.file}: [sla]: {exc}") from None
    return config


def _school(t: _Table) -> SchoolConfig:
    name = t.text("name", required=True)
    address = t.text("address", required=True).lower()
    if not _EMAIL_RE.match(address):
        raise t.error("address", f"is not an e-mail address: {address!r}")
    zone_name = t.text("timezone", required=True)
    try:
        zone = ZoneInfo(zone_name)
    except (ZoneInfoNotFoundError, ValueError):
        raise t.error("timezone", f"is not a known time zone: {zone_name!r} (e.g. \"Europe/Moscow\")") from None
    domain = t.text("domain", address.rsplit("@", 1)[1]).lower() or address.rsplit("@", 1)[1]
    return SchoolConfig(
        name=name,
        address=address,
        timezone=zone,
        domain=domain,
        show_teacher_address=t.flag("show_teacher_address", False),
        attachment_limit_mb=t.number("attachment_limit_mb", 10.0, positive=True),
        from_name=t.text("from_name", name) or name,
    )


def _server_fields(t: _Table, base: Path) -> dict[str, Any]:
    host = t.text("host", required=True)
    security = t.text("security", "ssl").lower()
    if security not in SECURITY_MODES:
        raise t.error("security", f"must be one of {', '.join(SECURITY_MODES)}; got {security!r}")
    port = t.integer("port", DEFAULT_PORTS[t.name][security], low=1, high=65535)
    password, source, problem = _password(t, base)
    auth = t.text("auth", "password").lower()
    if auth not in AUTH_MODES:
        raise t.error("auth", f"must be one of {', '.join(AUTH_MODES)}; got {auth!r}")
    return dict(
        host=host,
        port=port,
        security=security,
        username=t.text("username", "") or None,
        password=password,
        password_source=source,
        password_file=t.path("password_file", base),
        ca_file=t.path("ca_file", base),
        timeout=t.number("timeout", 30.0, positive=True),
        password_problem=problem,
        tls_verify=t.flag("tls_verify", True),
        auth=auth,
        token_file=t.path("token_file", base),
        token_command=t.text("token_command", "") or None,
    )


def _password(t: _Table, base: Path) -> tuple[str | None, str | None, str | None]:
    """(password, where it came from, problem): environment > password_file > password."""
    inline = t.get("password", (str,), "a string", None) or None  # not stripped
    file = t.path("password_file", base)
    from_env = os.environ.get(PASSWORD_ENV[t.name])
    if from_env:
        return from_env, "env", None
    if file is not None:
        try:
            secret = file.read_text(encoding="utf-8").strip()
        except (OSError, UnicodeDecodeError) as exc:
            return None, None, f"cannot read {file}: {exc.strerror if isinstance(exc, OSError) else exc}"
        if not secret:
            return None, None, f"{file} is empty"
        return secret, "file", None
    return (inline, "inline", None) if inline else (None, None, None)


def _imap(t: _Table, base: Path) -> ImapConfig:
    return ImapConfig(
        **_server_fields(t, base),
        folder=t.text("folder", "INBOX") or "INBOX",
        idle=t.flag("idle", True),
        poll_interval=t.number("poll_interval", 60.0, positive=True),
        processed_flag=t.text("processed_flag", "\\Seen"),
        processed_folder=t.text("processed_folder", ""),
        quarantine_folder=t.text("quarantine_folder", "Quarantine"),
    )


def _smtp(t: _Table, base: Path) -> SmtpConfig:
    return SmtpConfig(**_server_fields(t, base))


def _database(t: _Table, base: Path) -> DatabaseConfig:
    url = t.text("url", required=True)
    scheme = url.split(":", 1)[0].lower() if ":" in url else ""
    if scheme == "sqlite":
        return DatabaseConfig(url=_sqlite_url(t, url, base))
    if scheme in ("postgresql", "postgres"):
        parts = urlsplit(url)
        if not parts.path.strip("/"):
            raise t.error("url", f"names no database: {url!r} (postgresql://user@host:5432/dbname)")
        return DatabaseConfig(url=url)
    raise t.error(
        "url",
        f"has an unknown scheme {scheme or url!r}: use sqlite:///path or postgresql://user@host:port/db",
    )


def _sqlite_url(t: _Table, url: str, base: Path) -> str:
    if not url.startswith("sqlite:///") or url == "sqlite:///":
        raise t.error("url", f"must look like sqlite:///relative/path or sqlite:////absolute/path, got {url!r}")
    path = url[len("sqlite:///"):]
    if path == ":memory:":
        return url
    return "sqlite:///" + str(_resolve(base, path))


def _hours(t: _Table) -> HoursConfig:
    start, end = _clock(t, "start"), _clock(t, "end")
    if end <= start:
        raise t.error("end", f"must be later than hours.start ({start:%H:%M}), got {end:%H:%M}")
    return HoursConfig(start=start, end=end, six_day_week=t.flag("six_day_week", False))


def _clock(t: _Table, key: str) -> time:
    value = t.get(key, (str, time), 'a time like "08:00"')
    if isinstance(value, time):
        return value
    m = _HHMM_RE.match(value.strip())
    if not m or int(m.group(1)) > 23 or int(m.group(2)) > 59:
        raise t.error(key, f'must be a time like "08:00" (00:00-23:59), got {value!r}')
    return time(int(m.group(1)), int(m.group(2)))


def _outbox(t: _Table) -> OutboxConfig:
    return OutboxConfig(
        max_attempts=t.integer("max_attempts", 8, low=1),
        retry_base=t.number("retry_base", 30.0, positive=True),
        ack_limit_per_hour=t.integer("ack_limit_per_hour", 10, low=0),
    )


def _paths(t: _Table, base: Path) -> PathsConfig:
    return PathsConfig(templates=t.path("templates", base) or default_templates_dir())


def _digest(t: _Table) -> DigestConfig:
    extra = t.get("extra_addresses", (list,), "a list of addresses", [])
    for address in extra:
        if not isinstance(address, str) or not _EMAIL_RE.match(address.strip().lower()):
            raise t.error("extra_addresses", f"must list mail addresses, got {address!r}")
    return DigestConfig(
        time=_clock(t, "time") if "time" in t.data else DigestConfig.time,
        enabled=t.flag("enabled", True),
        extra_addresses=tuple(a.strip().lower() for a in extra),
    )


def default_templates_dir() -> Path:
    """``templates/`` beside the package (a source checkout), else inside it."""
    package = Path(__file__).resolve().parent
    beside = package.parent / "templates"
    return beside if beside.is_dir() else package / "templates"


# --------------------------------------------------------------------------- writing

DEFAULTS: dict[str, Any] = {
    "name": "Школа №1",
    "address": "school@example.org",
    "username": None,  # default: the address
    "timezone": "Europe/Moscow",
    "database_url": "sqlite:///helpdesk.sqlite3",
    "hours_start": "08:00",
    "hours_end": "17:00",
    "imap_host": "localhost",
    "imap_port": 143,
    "imap_security": "none",
    "smtp_host": "localhost",
    "smtp_port": 25,
    "smtp_security": "none",
}

_TEMPLATE = string.Template('''\
# helpdesk configuration.
#
# `helpdesk init` wrote this file; edit it, then run `helpdesk check`.
# Relative paths are taken from the directory of this file.
# Durations are in seconds unless a key says otherwise.

[school]
# The school's name: used in letters and as the sender name.
name = ${name}
# The mailbox parents and students write to. helpdesk reads it over IMAP and
# answers from it over SMTP.
address = ${address}
# The school's time zone (an IANA name); working hours and deadlines use it.
timezone = ${timezone}
# The school's mail domain, used in the Message-IDs of outgoing letters.
# Default: the domain of `address`.
# domain = "example.org"
# Whether letters to students and parents show the assigned teacher's address.
# When false the teacher is named, and all correspondence goes through the
# school address.
show_teacher_address = false
# Attachments of one letter are forwarded up to this many megabytes in all; a larger
# file stays in the stored letter, and the sender is told politely which one it was.
attachment_limit_mb = 10
# Display name in the From header of outgoing letters (default: the name above).
# from_name = "Школа №1, дистанционное обучение"

[imap]
# The mailbox helpdesk reads. Presets (uncomment one and delete the lines they
# replace below; the README's "Mail providers" says what to switch on first).
# Letters arrive in "INBOX" everywhere; the provider keeps a copy of what helpdesk
# sends in its own sent folder ("Отправленные", "Sent Items"), which helpdesk never reads.
#
#   Yandex 360 (mail settings -> "Почтовые программы": allow IMAP; an app password):
#     host = "imap.yandex.ru"
#     port = 993
#     security = "ssl"
#     auth = "password"
#   Mail.ru for business (a password for external applications):
#     host = "imap.mail.ru"
#     port = 993
#     security = "ssl"
#     auth = "password"
#   Microsoft 365 (OAuth2 only: an access token from your OAuth helper):
#     host = "outlook.office365.com"
#     port = 993
#     security = "ssl"
#     auth = "xoauth2"
#     token_command = "/usr/local/bin/m365-token imap"
#   A self-hosted server (Dovecot and the like):
#     host = "mail.example.org"
#     port = 993
#     security = "ssl"
#     ca_file = "/etc/helpdesk/ca.pem"    # if its certificate is self-signed
host = ${imap_host}
# Default port: 993 with "ssl", 143 otherwise.
port = ${imap_port}
# "ssl": TLS from the first byte; "starttls": a plain connection upgraded to TLS;
# "none": no encryption at all (only for a server on this machine).
security = ${imap_security}
username = ${username}
# The password is better kept out of this file. It is looked up in this order,
# the first one found wins:
#   1. the environment variable HELPDESK_IMAP_PASSWORD;
#   2. password_file: a file holding only the password (readable by helpdesk alone);
#   3. password = "..." written here.
# password_file = "/etc/helpdesk/imap-password"
# password = ""
# How helpdesk logs in: "password" (an app password, above) or "xoauth2" (an
# OAuth2 access token, Microsoft 365). helpdesk does not run OAuth flows itself:
# the token is read from token_file, or printed by token_command (run before each
# login, so it can refresh the token); the username is the mailbox address.
# auth = "xoauth2"
# token_file = "/run/credentials/helpdesk.service/imap-token"
# token_command = "/usr/local/bin/m365-token imap"
# The server's TLS certificate is always checked. For a self-signed certificate
# give the certificate (or its CA) here:
# ca_file = "/etc/helpdesk/ca.pem"
# Or, only as a last resort, switch the check off (anyone on the way can then read
# the mail and the password; `helpdesk check` and the log warn about it):
# tls_verify = false
# The folder where letters to the school arrive.
folder = "INBOX"
# Wait for new letters with IMAP IDLE (the server announces them at once).
idle = true
# With IDLE on: the longest wait in IDLE before helpdesk checks the mailbox anyway.
poll_interval = 60
# Seconds to wait for the server before giving up on a command.
timeout = 30
# The flag set on a letter once helpdesk has stored it ("" for none). Letters are
# read without marking them, so the flag shows exactly what was taken in.
processed_flag = "\\\\Seen"
# Move letters out of the folder once dealt with (processed, ignored, duplicates);
# "" leaves them where they are. Nothing is ever deleted.
processed_folder = ""
# Letters that could not be processed are moved here (created if missing), with
# the reason in `helpdesk letters list --status quarantined`; "" leaves them.
quarantine_folder = "Quarantine"

[smtp]
# The server helpdesk sends its letters through, as the school address.
# Presets:
#
#   Yandex 360 (the same app password as for IMAP):
#     host = "smtp.yandex.ru"
#     port = 465
#     security = "ssl"
#   Mail.ru for business:
#     host = "smtp.mail.ru"
#     port = 465
#     security = "ssl"
#   Microsoft 365 (SMTP AUTH switched on for the mailbox; OAuth2):
#     host = "smtp.office365.com"
#     port = 587
#     security = "starttls"
#     auth = "xoauth2"
#     token_command = "/usr/local/bin/m365-token smtp"
#   A self-hosted server (Postfix and the like):
#     host = "mail.example.org"
#     port = 587
#     security = "starttls"
host = ${smtp_host}
# Default port: 465 with "ssl", 587 with "starttls", 25 with "none".
port = ${smtp_port}
security = ${smtp_security}
# Leave username empty for a relay that needs no login.
username = ${username}
# As for IMAP: HELPDESK_SMTP_PASSWORD, then password_file, then password.
# password_file = "/etc/helpdesk/smtp-password"
# password = ""
# As for IMAP: auth, token_file, token_command, ca_file, tls_verify.
# auth = "xoauth2"
# token_command = "/usr/local/bin/m365-token smtp"
# ca_file = "/etc/helpdesk/ca.pem"
timeout = 30

[database]
# Where helpdesk keeps letters, appeals and the outbox.
#   SQLite, one file (a relative path is taken from this file's directory;
#   an absolute path has four slashes: sqlite:////var/lib/helpdesk/helpdesk.sqlite3):
#     url = "sqlite:///helpdesk.sqlite3"
#   PostgreSQL (pip install 'helpdesk[postgres]'). Keep the password out of the
#   URL: the PostgreSQL client reads PGPASSWORD or ~/.pgpass.
#     url = "postgresql://helpdesk@localhost:5432/helpdesk"
url = ${database_url}

[hours]
# The school's working hours, local time, 24-hour "HH:MM". Deadlines are counted
# in working time only: these hours on working days (weekends and public
# holidays excluded).
start = ${hours_start}
end = ${hours_end}
# true when Saturday is a working day.
six_day_week = false

[sla]
# How long an appeal may wait for an answer, in working days (0.5 = half a day).
window_days = 1.0
# A reminder to the assignee when this share of the window has passed (0 = none).
reminder_at = 0.75
# Who is told when an appeal is overdue: one level per item, the first at the
# deadline, each next one `escalation_interval` working days later. An item is a
# role (deputy, director, it, class_teacher, assignee), an address, or a list of them.
escalate_to = ["deputy", "director"]
escalation_interval = 1.0
# Who gets a copy of every escalation letter about their appeals.
escalation_copy = ["assignee"]

[daemon]
# Seconds between processing cycles when IDLE is off or the server lacks it.
interval = 60
# A letter whose processing takes longer than this many seconds means something
# hangs: the daemon restarts itself; after three tries the letter is quarantined.
letter_timeout = 300
# Several daemons on one PostgreSQL database: seconds a daemon's claim on the
# letters it is sending holds without renewal. After a crash on another host its
# letters are sent by the others once the claim has run out.
claim_lease = 300

[metrics]
# An optional Prometheus endpoint, http://listen:port/metrics (letters ingested,
# appeals by state, outbox queue length, send failures, IMAP reconnects, cycle
# and SLA sweep durations, last successful poll).
enabled = false
listen = "127.0.0.1"
port = 9464

[outbox]
# How many times a letter is tried before it is given up as undeliverable.
max_attempts = 8
# Seconds before the first retry; later waits grow exponentially.
retry_base = 30
# At most this many acknowledgements to one address per hour (ends mail loops with
# auto-responders that escape detection); 0 = no limit. Appeals are still registered.
ack_limit_per_hour = 10

[digest]
# The daily letter to the deputy and the director: what came in, what was answered
# in time, what is overdue. Sent at this local time on working days; a day missed
# while helpdesk was down is sent late, saying so.
time = "08:00"
enabled = true
# More recipients (addresses outside the school domain get students' names too).
extra_addresses = []

[retention]
# Personal data of minors is kept no longer than needed. `helpdesk purge` (daily,
# from the helpdesk-purge.timer) removes the bodies and attachments of letters of
# appeals answered or closed more than this many days ago; the appeals themselves
# (dates, class, subject, category, teacher, status) stay for the statistics.
# 0 = keep everything forever.
bodies_days = 365

[paths]
# Letter templates (default: the templates that come with helpdesk).
# templates = "templates"
''')


def default_config_text(**overrides: Any) -> str:
    """The commented example config; ``overrides`` fill the placeholders in DEFAULTS."""
    unknown = sorted(set(overrides) - set(DEFAULTS))
    if unknown:
        raise TypeError(f"unknown config setting(s) {', '.join(unknown)}; known: {', '.join(DEFAULTS)}")
    values = {**DEFAULTS, **overrides}
    if values["username"] is None:
        values["username"] = values["address"]
    rendered = {key: _toml_value(value) for key, value in values.items()}
    return _TEMPLATE.substitute(rendered)


def write_default_config(path: str | os.PathLike[str], **overrides: Any) -> Path:
    """Write the example config to ``path``; never overwrites an existing file."""
    file = Path(path)
    text = default_config_text(**overrides)
    try:
        with open(file, "x", encoding="utf-8") as out:
            out.write(text)
    except FileExistsError:
        raise ConfigError(f"{file}: already exists; not overwriting it") from None
    except OSError as exc:
        raise ConfigError(f"{file}: cannot write the config file: {exc.strerror}") from None
    return file


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return str(value)
    return _toml_string(str(value))


_TOML_ESCAPES: dict[str, str] = {'"': '\\"', "\\": "\\\\", "\n": "\\n", "\t": "\\t", "\r": "\\r"}


def _toml_string(text: str) -> str:
    def escape(ch: str) -> str:
        if ch in _TOML_ESCAPES:
            return _TOML_ESCAPES[ch]
        if ord(ch) < 0x20 or ord(ch) == 0x7F:
            return f"\\u{ord(ch):04x}"
        return ch

    return '"' + "".join(escape(ch) for ch in text) + '"'


__all__: list[str] = [
    "CONFIG_ENV",
    "AUTH_MODES",
    "PASSWORD_ENV",
    "SECURITY_MODES",
    "Config",
    "ConfigError",
    "DaemonConfig",
    "DatabaseConfig",
    "HoursConfig",
    "ImapConfig",
    "MailServerConfig",
    "OutboxConfig",
    "PathsConfig",
    "RetentionConfig",
    "SchoolConfig",
    "SlaConfig",
    "SmtpConfig",
    "default_config_text",
    "default_templates_dir",
    "load_config",
    "write_default_config",
]
