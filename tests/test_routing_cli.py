"""Absences, manual reassignment and the corrections list, through the CLI and the
daemon's processing stage (SQLite and, where reachable, PostgreSQL; no mail server)."""
from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone
from email import message_from_bytes, policy
from email.message import EmailMessage
from email.utils import make_msgid
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from helpdesk.cli import main
from tests.conftest import ROSTER, SCHOOL

STUDENT = "lev.kuzmin@lyceum21-edu.test"  # 7В
KARPENKO = "d.karpenko@lyceum21-edu.test"  # 7В algebra
LISITSYNA = "v.lisitsyna@lyceum21-edu.test"  # 7В geometry
SHUBINA = "m.shubina@lyceum21-edu.test"  # 7В class teacher
DEPUTY = "n.kovalevskaya@lyceum21-edu.test"


def offline_config(directory: Path, db_url: str) -> Path:
    """A config whose mail servers are never contacted by these tests."""
    path = directory / "config.toml"
    path.write_text(
        f'[school]\nname = "МАОУ «Лицей №21»"\naddress = "{SCHOOL}"\ntimezone = "Europe/Moscow"\n\n'
        '[imap]\nhost = "127.0.0.1"\nport = 1\nsecurity = "none"\n\n'
        '[smtp]\nhost = "127.0.0.1"\nport = 1\nsecurity = "none"\n\n'
        f'[database]\nurl = "{db_url}"\n\n[hours]\nstart = "08:00"\nend = "17:00"\n',
        encoding="utf-8",
    )
    return path


@pytest.fixture
def config(tmp_path, db_url):
    path = offline_config(tmp_path, db_url)
    assert main(["--config", str(path), "roster", "import", str(ROSTER)]) == 0
    yield path
    from helpdesk.store.models import database

    database.close()


def cli(config, *args, capsys) -> tuple[int, str, str]:
    capsys.readouterr()
    code = main(["--config", str(config), *args])
    out, err = capsys.readouterr()
    return code, out, err


def cli_json(config, *args, capsys) -> list[dict]:
    code, out, _ = cli(config, *args, "--json", capsys=capsys)
    assert code == 0
    return [json.loads(line) for line in out.splitlines() if line.strip()]


def today() -> datetime:
    return datetime.now(ZoneInfo("Europe/Moscow"))


def deliver(body: str, subject: str = "алгебра", sender: str = STUDENT) -> None:
    """Store a letter as the ingest stage would (no IMAP needed)."""
    from helpdesk.ingest.imap import FetchedLetter
    from helpdesk.ingest.runner import store_letter
    from helpdesk.store.models import database

    msg = EmailMessage()
    msg["From"], msg["To"], msg["Subject"] = sender, SCHOOL, subject
    msg["Message-ID"] = make_msgid(domain="mail.test")
    msg.set_content(body)
    with database.atomic():
        store_letter("test", 1, FetchedLetter(1, datetime.now(timezone.utc), msg.as_bytes()))


def outgoing(kind: str) -> list[tuple[list[str], str]]:
    from helpdesk.store.models import Outgoing

    rows = Outgoing.select().where(Outgoing.kind == kind).order_by(Outgoing.id)
    out = []
    for o in rows:
        msg = message_from_bytes(bytes(o.raw), policy=policy.default)
        out.append((o.recipient_list(), msg.get_body(preferencelist=("plain",)).get_content()))
    return out


ALGEBRA = "Не понимаю, как решать квадратные уравнения через дискриминант, задали номер 5. Лев Кузьмин 7в"


def test_schema_has_the_routing_tables(config):
    from helpdesk.store.db import SCHEMA_VERSION, schema_version
    from helpdesk.store.models import database

    assert SCHEMA_VERSION >= 3
    assert schema_version(database.obj) == SCHEMA_VERSION
    assert database.obj.table_exists("staff_absence") and database.obj.table_exists("routing_correction")


def test_absence_add_list_remove(config, capsys):
    start, end = (today() - timedelta(days=1)).date(), (today() + timedelta(days=3)).date()
    code, out, _ = cli(config, "absence", "add", KARPENKO, "--from", start.isoformat(),
                       "--to", end.strftime("%d.%m.%Y"), "--substitute", LISITSYNA, "--note", "больничный",
                       capsys=capsys)
    assert code == 0 and "absence 1 added: Карпенко Д. А. отсутствует" in out and "(больничный)" in out
    rows = cli_json(config, "absence", "list", capsys=capsys)
    assert [(r["teacher"], r["substitute"], r["state"], r["to"]) for r in rows] == [
        (KARPENKO, LISITSYNA, "current", end.isoformat())]

    for bad in (["nobody@mail.test", "--from", "2026-01-01", "--to", "2026-01-02"],
                [KARPENKO, "--from", "2026-01-03", "--to", "2026-01-02"],
                [KARPENKO, "--from", "2026-02-30", "--to", "2026-03-02"],
                [KARPENKO, "--from", "2026-01-01", "--to", "2026-01-02", "--substitute", KARPENKO]):
        code, _, err = cli(config, "absence", "add", *bad, capsys=capsys)
        assert code == 1 and err.startswith("helpdesk: "), bad

    assert cli(config, "absence", "remove", "1", capsys=capsys)[0] == 0
    assert cli_json(config, "absence", "list", capsys=capsys) == []
    assert cli(config, "absence", "remove", "1", capsys=capsys)[0] == 1


def test_a_new_appeal_goes_to_the_substitute_and_the_ack_names_them(config, capsys):
    start, end = (today() - timedelta(days=2)).date(), (today() + timedelta(days=2)).date()
    assert cli(config, "absence", "add", KARPENKO, "--from", start.isoformat(), "--to", end.isoformat(),
               "--substitute", LISITSYNA, "--note", "больничный", capsys=capsys)[0] == 0
    deliver(ALGEBRA)
    assert cli(config, "run", "--once", "--only", "process", capsys=capsys)[0] == 0

    [appeal] = cli_json(config, "appeals", "list", capsys=capsys)
    assert (appeal["assignee"], appeal["subject"]) == (LISITSYNA, "алгебра")
    [shown] = cli_json(config, "appeals", "show", str(appeal["number"]), capsys=capsys)
    assert any(r.startswith("Карпенко Д. А. отсутствует до ") and "(больничный)" in r
               and "Лисицына Валентина Павловна" in r for r in shown["reasons"])

    [(to, ack)] = outgoing("ack")
    assert to == [STUDENT] and "Ответит: Лисицына Валентина Павловна" in ack
    [(to, letter)] = outgoing("to_assignee")
    assert to == [LISITSYNA] and "Карпенко Д. А. отсутствует до" in letter


def test_a_past_absence_changes_nothing(config, capsys):
    assert cli(config, "absence", "add", KARPENKO, "--from", "2020-01-01", "--to", "2020-01-10",
               capsys=capsys)[0] == 0
    deliver(ALGEBRA)
    assert cli(config, "run", "--once", "--only", "process", capsys=capsys)[0] == 0
    [appeal] = cli_json(config, "appeals", "list", capsys=capsys)
    assert appeal["assignee"] == KARPENKO


def test_reassign_queues_the_letter_and_records_a_correction(config, capsys):
    deliver(ALGEBRA)
    assert cli(config, "run", "--once", "--only", "process", capsys=capsys)[0] == 0
    [appeal] = cli_json(config, "appeals", "list", capsys=capsys)
    number = str(appeal["number"])
    assert appeal["assignee"] == KARPENKO

    code, out, _ = cli(config, "appeals", "reassign", number, LISITSYNA.upper(), "--note",
                       "это геометрия", capsys=capsys)
    assert code == 0 and f"{KARPENKO} -> {LISITSYNA}" in out

    [appeal] = cli_json(config, "appeals", "list", capsys=capsys)
    assert appeal["assignee"] == LISITSYNA
    forwarded = [(to, text) for to, text in outgoing("to_assignee") if to == [LISITSYNA]]
    assert len(forwarded) == 1 and "квадратные уравнения" in forwarded[0][1]
    assert "это геометрия" in forwarded[0][1]  # the reason of the hand-over is in the letter
    [shown] = cli_json(config, "appeals", "show", number, capsys=capsys)
    assert any(e["kind"] == "reassigned" and "Лисицына" in e["message"] for e in shown["events"])

    [c] = cli_json(config, "corrections", "list", capsys=capsys)
    assert (c["appeal"], c["old"], c["new"], c["source"], c["note"]) == (
        appeal["number"], KARPENKO, LISITSYNA, "cli", "это геометрия")
    assert (c["category"], c["class"], c["subject"]) == ("subject_help", "7В", "алгебра")
    code, out, _ = cli(config, "corrections", "list", capsys=capsys)
    assert code == 0 and "это геометрия" in out

    for bad in (["999", LISITSYNA], [number, "nobody@mail.test"], [number, LISITSYNA]):
        code, _, err = cli(config, "appeals", "reassign", *bad, capsys=capsys)
        assert code == 1 and err.startswith("helpdesk: "), bad
    assert len(cli_json(config, "corrections", "list", capsys=capsys)) == 1


def test_a_long_lived_processor_sees_absences_added_after_it_was_built(config, capsys):
    from helpdesk import app
    from helpdesk.config import load_config

    processor = app.processor(load_config(config))  # the daemon keeps one while the roster is unchanged
    start, end = (today() - timedelta(days=1)).date(), (today() + timedelta(days=1)).date()
    assert cli(config, "absence", "add", KARPENKO, "--from", start.isoformat(), "--to", end.isoformat(),
               capsys=capsys)[0] == 0
    deliver(ALGEBRA)
    assert processor.process_pending().counts == {"appeal": 1}
    [appeal] = cli_json(config, "appeals", "list", capsys=capsys)
    assert appeal["assignee"] == SHUBINA  # no substitute: the class teacher of 7В
