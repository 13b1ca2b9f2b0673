"""config.toml: loading, checking, secrets, writing the example (helpdesk.config)."""
from __future__ import annotations

import re
from datetime import time
from pathlib import Path

import pytest

from helpdesk.config import (
    CONFIG_ENV,
    ConfigError,
    default_config_text,
    default_templates_dir,
    load_config,
    write_default_config,
)

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(autouse=True)
def no_env(monkeypatch):
    for name in (CONFIG_ENV, "HELPDESK_IMAP_PASSWORD", "HELPDESK_SMTP_PASSWORD"):
        monkeypatch.delenv(name, raising=False)


def write(tmp_path: Path, text: str, name: str = "config.toml") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def edited(tmp_path: Path, old: str, new: str, **overrides) -> Path:
    """The default config with one line changed (the line must exist)."""
    text = default_config_text(**overrides)
    assert old in text, old
    return write(tmp_path, text.replace(old, new, 1))


def error_of(path: Path) -> str:
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    return str(caught.value)


# --------------------------------------------------------------------------- the example


def test_root_config_is_the_default_text_and_loads():
    path = ROOT / "config.toml"
    assert path.read_text(encoding="utf-8") == default_config_text()
    config = load_config(path)
    assert config.path == path
    assert config.school.name == "Школа №1"
    assert config.school.address == "school@example.org"
    assert config.school.domain == "example.org"
    assert config.school.from_name == "Школа №1"
    assert config.school.show_teacher_address is False
    assert config.school.timezone.key == "Europe/Moscow"
    assert (config.imap.host, config.imap.port, config.imap.security) == ("localhost", 143, "none")
    assert (config.smtp.host, config.smtp.port, config.smtp.security) == ("localhost", 25, "none")
    assert config.imap.username == "school@example.org"
    assert config.imap.folder == "INBOX" and config.imap.idle is True
    assert config.imap.processed_flag == "\\Seen"
    assert config.imap.password is None
    assert config.database.url == f"sqlite:///{ROOT / 'helpdesk.sqlite3'}"
    assert config.database.sqlite_path == ROOT / "helpdesk.sqlite3"
    assert (config.hours.start, config.hours.end) == (time(8), time(17))
    assert config.hours.six_day_week is False
    assert config.sla.window_days == 1.0
    assert config.daemon.interval == 60
    assert (config.outbox.max_attempts, config.outbox.retry_base) == (8, 30)
    assert config.paths.templates == ROOT / "templates" == default_templates_dir()
    assert config.unknown_keys == ()


def test_default_text_documents_the_presets():
    text = default_config_text()
    for host in ("imap.yandex.ru", "smtp.yandex.ru", "imap.mail.ru", "smtp.mail.ru",
                 "outlook.office365.com", "smtp.office365.com", "mail.example.org"):
        assert host in text
    assert "HELPDESK_IMAP_PASSWORD" in text and "HELPDESK_SMTP_PASSWORD" in text


def test_default_text_round_trips_with_overrides(tmp_path):
    text = default_config_text(
        name='Лицей "№21" \\ филиал',
        address="Help@Lyceum21.test",
        database_url="sqlite:///data/hd.sqlite3",
        timezone="Asia/Yekaterinburg",
        imap_host="imap.yandex.ru",
        imap_port=993,
        imap_security="ssl",
        smtp_host="smtp.office365.com",
        smtp_port=587,
        smtp_security="starttls",
        hours_start="09:30",
        hours_end="18:00",
    )
    config = load_config(write(tmp_path, text))
    assert config.school.name == 'Лицей "№21" \\ филиал'
    assert config.school.address == "help@lyceum21.test"
    assert config.imap.username == "Help@Lyceum21.test"
    assert config.school.timezone.key == "Asia/Yekaterinburg"
    assert (config.imap.host, config.imap.port, config.imap.security) == ("imap.yandex.ru", 993, "ssl")
    assert (config.smtp.port, config.smtp.security) == (587, "starttls")
    assert config.database.sqlite_path == tmp_path / "data" / "hd.sqlite3"
    assert config.hours.start == time(9, 30)
    with pytest.raises(TypeError):
        default_config_text(no_such_setting=1)


def test_write_default_config_refuses_to_overwrite(tmp_path):
    path = tmp_path / "config.toml"
    assert write_default_config(path, name="Гимназия") == path
    assert load_config(path).school.name == "Гимназия"
    with pytest.raises(ConfigError, match="already exists"):
        write_default_config(path)
    assert load_config(path).school.name == "Гимназия"


# --------------------------------------------------------------------------- finding the file


def test_path_from_environment_then_current_directory(tmp_path, monkeypatch):
    path = write_default_config(tmp_path / "elsewhere.toml")
    monkeypatch.setenv(CONFIG_ENV, str(path))
    assert load_config().path == path
    monkeypatch.delenv(CONFIG_ENV)
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ConfigError, match="config.toml: config file not found"):
        load_config()
    write_default_config(tmp_path / "config.toml")
    assert load_config().path == tmp_path / "config.toml"


def test_missing_file(tmp_path):
    message = error_of(tmp_path / "absent.toml")
    assert "absent.toml" in message and "not found" in message


def test_toml_syntax_error_names_the_line(tmp_path):
    path = edited(tmp_path, 'folder = "INBOX"', 'folder = "INBOX')
    message = error_of(path)
    line = default_config_text().splitlines().index('folder = "INBOX"') + 1
    assert str(path) in message and f"line {line}" in message


# --------------------------------------------------------------------------- bad values

BAD = [
    ('timezone = "Europe/Moscow"', 'timezone = "Europe/Atlantis"', "school.timezone"),
    ('start = "08:00"', 'start = "25:00"', "hours.start"),
    ('end = "17:00"', 'end = "7 pm"', "hours.end"),
    ('end = "17:00"', 'end = "07:00"', "hours.end"),
    ('security = "none"', 'security = "tls"', "imap.security"),
    ('port = 143', 'port = "143"', "imap.port"),
    ('port = 25', 'port = 70000', "smtp.port"),
    ('\nurl = "sqlite:///helpdesk.sqlite3"', '\nurl = "mysql://localhost/hd"', "database.url"),
    ('\nurl = "sqlite:///helpdesk.sqlite3"', '\nurl = "sqlite://helpdesk.sqlite3"', "database.url"),
    ('\nurl = "sqlite:///helpdesk.sqlite3"', '\nurl = "postgresql://pg@localhost:5432/"', "database.url"),
    ('address = "school@example.org"', 'address = "school"', "school.address"),
    ('name = "Школа №1"', 'name = "  "', "school.name"),
    ('name = "Школа №1"', "# no name", "school.name"),
    ('idle = true', 'idle = "yes"', "imap.idle"),
    ('window_days = 1.0', 'window_days = 0', "sla.window_days"),
    ('max_attempts = 8', 'max_attempts = 0', "outbox.max_attempts"),
    ('max_attempts = 8', 'max_attempts = 2.5', "outbox.max_attempts"),
    ('\ninterval = 60', '\ninterval = true', "daemon.interval"),
    ('host = "localhost"', "", "imap.host"),
]


@pytest.mark.parametrize("old,new,key", BAD, ids=[b[2] + ":" + b[1].strip() for b in BAD])
def test_bad_values_name_the_file_and_key(tmp_path, old, new, key):
    path = edited(tmp_path, old, new)
    message = error_of(path)
    assert str(path) in message
    assert re.search(rf"\b{re.escape(key)}\b", message), message


def test_missing_section(tmp_path):
    text = default_config_text()
    start, end = text.index("[database]"), text.index("[hours]")
    message = error_of(write(tmp_path, text[:start] + text[end:]))
    assert "database.url" in message and "[database]" in message


def test_section_that_is_not_a_table(tmp_path):
    text = "sla = 1\n" + default_config_text().replace("[sla]\n", "[sla_old]\n")
    assert "sla must be a section" in error_of(write(tmp_path, text))


def test_postgresql_url_kept(tmp_path):
    url = "postgresql://helpdesk@db.example.org:5432/helpdesk"
    config = load_config(write(tmp_path, default_config_text(database_url=url)))
    assert config.database.url == url
    assert config.database.scheme == "postgresql"
    assert config.database.sqlite_path is None


def test_relative_and_absolute_sqlite_paths(tmp_path):
    sub = tmp_path / "etc"
    sub.mkdir()
    config = load_config(write(sub, default_config_text(database_url="sqlite:///../var/hd.db")))
    assert config.database.url == f"sqlite:///{tmp_path / 'var' / 'hd.db'}"
    assert config.database.url.startswith("sqlite:////")
    config = load_config(write(sub, default_config_text(database_url="sqlite:////srv/hd.db"), "abs.toml"))
    assert config.database.sqlite_path == Path("/srv/hd.db")
    config = load_config(write(sub, default_config_text(database_url="sqlite:///:memory:"), "mem.toml"))
    assert config.database.url == "sqlite:///:memory:" and config.database.sqlite_path is None


def test_port_defaults_follow_security(tmp_path):
    text = default_config_text(imap_security="ssl", smtp_security="starttls")
    text = text.replace("port = 143\n", "").replace("port = 25\n", "")
    config = load_config(write(tmp_path, text))
    assert (config.imap.port, config.smtp.port) == (993, 587)


def test_optional_keys(tmp_path):
    text = default_config_text().replace(
        "[paths]\n", '[paths]\ntemplates = "my-templates"\n'
    ).replace(
        "# domain = \"example.org\"", 'domain = "Mail.Example.org"\nfrom_name = "Помощь"\n'
    ).replace("six_day_week = false", "six_day_week = true").replace(
        "show_teacher_address = false", "show_teacher_address = true"
    )
    config = load_config(write(tmp_path, text))
    assert config.paths.templates == tmp_path / "my-templates"
    assert config.school.domain == "mail.example.org"
    assert config.school.from_name == "Помощь"
    assert config.hours.six_day_week and config.school.show_teacher_address
    assert "paths.templates" in " ".join(config.problems())


# --------------------------------------------------------------------------- secrets


def with_secrets(tmp_path: Path, *, inline: str | None = None, file: str | None = None) -> Path:
    lines = []
    if inline is not None:
        lines.append(f'password = "{inline}"')
    if file is not None:
        lines.append(f'password_file = "{file}"')
    text = default_config_text().replace('# password_file = "/etc/helpdesk/imap-password"\n',
                                         "\n".join(lines) + "\n")
    return write(tmp_path, text)


def test_inline_password(tmp_path):
    config = load_config(with_secrets(tmp_path, inline="in-line"))
    assert (config.imap.password, config.imap.password_source) == ("in-line", "inline")
    assert "in-line" not in repr(config)
    assert not any(p.startswith("imap.password") for p in config.problems())
    assert any(p.startswith("smtp.password is not set") for p in config.problems())


def test_password_file_beats_inline_and_is_relative_to_config(tmp_path):
    (tmp_path / "secret").write_text("  from-file\n", encoding="utf-8")
    config = load_config(with_secrets(tmp_path, inline="in-line", file="secret"))
    assert (config.imap.password, config.imap.password_source) == ("from-file", "file")
    assert config.imap.password_file == tmp_path / "secret"


def test_environment_beats_file(tmp_path, monkeypatch):
    (tmp_path / "secret").write_text("from-file", encoding="utf-8")
    monkeypatch.setenv("HELPDESK_IMAP_PASSWORD", "from-env")
    monkeypatch.setenv("HELPDESK_SMTP_PASSWORD", "smtp-env")
    config = load_config(with_secrets(tmp_path, inline="in-line", file="secret"))
    assert (config.imap.password, config.imap.password_source) == ("from-env", "env")
    assert (config.smtp.password, config.smtp.password_source) == ("smtp-env", "env")
    assert config.problems() == []


def test_unreadable_password_file_is_a_problem_not_an_error(tmp_path):
    config = load_config(with_secrets(tmp_path, inline="in-line", file="missing-secret"))
    assert config.imap.password is None
    assert any(p.startswith("imap.password_file: cannot read") for p in config.problems())


def test_no_login_needed_for_loopback_without_username(tmp_path):
    text = default_config_text(username="")
    config = load_config(write(tmp_path, text))
    assert config.imap.username is None
    assert config.problems() == []
    text = default_config_text(username="", imap_security="ssl", imap_host="imap.yandex.ru")
    problems = load_config(write(tmp_path, text)).problems()
    assert any(p.startswith("imap.username is empty") for p in problems)


def test_cleartext_password_to_remote_host_is_a_problem(tmp_path, monkeypatch):
    monkeypatch.setenv("HELPDESK_SMTP_PASSWORD", "x")
    monkeypatch.setenv("HELPDESK_IMAP_PASSWORD", "x")
    config = load_config(write(tmp_path, default_config_text(smtp_host="mail.example.org")))
    assert [p for p in config.problems() if "unencrypted" in p] == [
        'smtp.security is "none": the password would travel unencrypted to mail.example.org'
    ]


def test_unknown_keys_are_reported(tmp_path):
    text = default_config_text().replace("[imap]\n", '[imap]\npasword = "x"\n') + "\n[extra]\na = 1\n"
    config = load_config(write(tmp_path, text))
    assert config.unknown_keys == ("[extra]", "imap.pasword")
    assert "unknown key imap.pasword (ignored; a typo?)" in config.problems()
