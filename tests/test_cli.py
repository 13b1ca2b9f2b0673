"""The operator's commands: init, roster import, check, and their errors."""
from __future__ import annotations

import shutil

import pytest

from helpdesk.cli import main
from tests.conftest import ROSTER, SCHOOL, write_config


def test_init_writes_config_and_database_and_keeps_an_existing_config(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    assert main(["init", "--name", "Школа №5", "--address", "help@school5.test"]) == 0
    text = (tmp_path / "config.toml").read_text(encoding="utf-8")
    assert 'name = "Школа №5"' in text and 'address = "help@school5.test"' in text
    assert (tmp_path / "helpdesk.sqlite3").exists()
    assert oct((tmp_path / "helpdesk.sqlite3").stat().st_mode & 0o777) == "0o600"
    assert main(["init", "--name", "Другая"]) == 0
    assert (tmp_path / "config.toml").read_text(encoding="utf-8") == text
    assert "kept as it is" in capsys.readouterr().out


def test_roster_import_reports_every_bad_row_and_changes_nothing(tmp_path, db_url, capsys):
    config = tmp_path / "config.toml"
    config.write_text(f'[school]\nname = "Лицей"\naddress = "{SCHOOL}"\ntimezone = "Europe/Moscow"\n'
                      '[imap]\nhost = "127.0.0.1"\nsecurity = "none"\n'
                      '[smtp]\nhost = "127.0.0.1"\nsecurity = "none"\n'
                      f'[database]\nurl = "{db_url}"\n[hours]\nstart = "08:00"\nend = "17:00"\n',
                      encoding="utf-8")
    assert main(["--config", str(config), "roster", "import", str(ROSTER)]) == 0
    bad = tmp_path / "bad"
    shutil.copytree(ROSTER, bad)
    students = (bad / "students.csv").read_text(encoding="utf-8").splitlines()
    students[2] = "not-an-email,Кто-то,7В,"
    students[5] = "new.kid@mail.test,Новенький,12Я,"
    (bad / "students.csv").write_text("\n".join(students) + "\n", encoding="utf-8")
    capsys.readouterr()
    assert main(["--config", str(config), "roster", "import", str(bad)]) == 1
    err = capsys.readouterr().err
    assert "students.csv:3:" in err and "students.csv:6:" in err and "nothing was changed" in err
    from helpdesk.roster.store import load_roster

    roster = load_roster()
    assert roster.student("new.kid@mail.test") is None
    assert len(roster.students) == 32


def test_unknown_stage_is_a_clear_error(tmp_path, capsys):
    config = tmp_path / "config.toml"
    config.write_text(f'[school]\nname = "Лицей"\naddress = "{SCHOOL}"\ntimezone = "Europe/Moscow"\n'
                      '[imap]\nhost = "127.0.0.1"\nsecurity = "none"\n[smtp]\nhost = "127.0.0.1"\n'
                      'security = "none"\n[database]\nurl = "sqlite:///h.sqlite3"\n'
                      '[hours]\nstart = "08:00"\nend = "17:00"\n', encoding="utf-8")
    assert main(["--config", str(config), "run", "--once", "--only", "ingest,mail"]) == 1
    assert "unknown stage(s) mail" in capsys.readouterr().err
    assert main(["--config", str(config), "appeals", "show", "7"]) == 1
    assert "no appeal number 7" in capsys.readouterr().err


def test_missing_config_is_one_clear_line(tmp_path, capsys):
    assert main(["--config", str(tmp_path / "nope.toml"), "appeals", "list"]) == 1
    err = capsys.readouterr().err.strip()
    assert err.startswith("helpdesk:") and "nope.toml" in err and "\n" not in err


@pytest.mark.mailstack
def test_check_says_all_good_then_names_what_is_wrong(helpdesk_config, stack, tmp_path, capsys):
    capsys.readouterr()
    assert main(["--config", str(helpdesk_config), "check"]) == 0
    out = capsys.readouterr().out
    assert "ok   imap" in out and "IDLE yes" in out and "ok   smtp" in out and "all good" in out
    (tmp_path / "wrong").mkdir()
    wrong = write_config(tmp_path / "wrong", stack, "sqlite:///x.sqlite3")
    text = wrong.read_text(encoding="utf-8").replace('password = "secret"', 'password = "wrong"')
    wrong.write_text(text, encoding="utf-8")
    assert main(["--config", str(wrong), "check"]) == 1
    out = capsys.readouterr().out
    assert "FAIL imap: IMAP login as" in out and "problems found" in out
    assert "FAIL roster: empty" in out


def test_backup_is_a_consistent_copy_that_opens(tmp_path, monkeypatch, capsys):
    import sqlite3

    monkeypatch.chdir(tmp_path)
    assert main(["init"]) == 0
    assert main(["roster", "import", str(ROSTER)]) == 0
    assert main(["backup", str(tmp_path / "b" / "monday.sqlite3")]) == 0  # a file path
    (tmp_path / "dir").mkdir()
    assert main(["backup", str(tmp_path / "dir")]) == 0  # a directory: the database's own name
    for copy in (tmp_path / "b" / "monday.sqlite3", tmp_path / "dir" / "helpdesk.sqlite3"):
        assert oct(copy.stat().st_mode & 0o777) == "0o600"
        with sqlite3.connect(copy) as db:
            assert db.execute("select count(*) from person where kind = 'student'").fetchone() == (32,)
    assert main(["backup", str(tmp_path / "dir")]) == 1
    assert "give --force" in capsys.readouterr().err
    assert main(["backup", "--force", str(tmp_path / "dir")]) == 0
