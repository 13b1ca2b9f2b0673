"""Data protection: retention (purge), erasure (erase), file permissions and the backup
round trip, on letters that went through the real mail stack (SQLite and PostgreSQL)."""
from __future__ import annotations

import base64
import json
import os
import secrets
import shutil
import sqlite3
import stat
from contextlib import closing
from datetime import date, datetime, timedelta, timezone
from email import message_from_bytes, policy
from pathlib import Path

import pytest

from helpdesk.cli import main
from tests.conftest import ROSTER, SCHOOL, letter
from tests.test_e2e import parse, run_once

pytestmark = pytest.mark.mailstack

STUDENT = "lev.kuzmin@lyceum21-edu.test"  # 7В
STUDENT_NAME = "Кузьмин Лев Дмитриевич"
OTHER = "gleb.sitnikov@mail.test"  # 7В too
TEACHER = "d.karpenko@lyceum21-edu.test"  # 7В algebra
SECRET_BODY = "никому не говорите, я потерял тетрадь по алгебре с домашкой номер 417"
REPLY_BODY = "Лев, тетрадь нашлась в кабинете 12, забери её на перемене."


def _reply(to_teacher, body: str):
    return letter(TEACHER, "Re: " + to_teacher["Subject"], body,
                  In_Reply_To=to_teacher["Message-ID"], References=to_teacher["Message-ID"])


def _answered_appeal(config, stack, sender: str, body: str, answer: str, n_to_teacher: int):
    """A letter from ``sender``, answered by the teacher through the mail stack."""
    stack.send(letter(sender, "алгебра", body), sender, [SCHOOL])
    run_once(config)
    to_teacher = parse(stack.wait_for(TEACHER, n_to_teacher)[-1])
    stack.send(_reply(to_teacher, answer), TEACHER, [SCHOOL])
    run_once(config)
    return to_teacher


def _figures(config, now: datetime):
    """Everything the digest and the report compute for the two days before ``now``."""
    from helpdesk import app
    from helpdesk.digest import figures, report
    from helpdesk.roster.store import load_roster

    app.open_db(config)
    calendar, roster = app.work_calendar(config), load_roster()
    fig = figures.compute(calendar, roster, now - timedelta(days=2), now)
    today = app.school_today(config)
    rows = report.rows(calendar, roster, today - timedelta(days=1), today, now)
    return fig, rows


def _config(helpdesk_config):
    from helpdesk.config import load_config

    return load_config(helpdesk_config)


# --------------------------------------------------------------------------- purge


def test_purge_removes_old_bodies_and_keeps_the_figures(helpdesk_config, stack, capsys):
    from helpdesk import app
    from helpdesk.privacy import REMOVED_RAW
    from helpdesk.privacy.purge import purge
    from helpdesk.store.models import Appeal, Event, Letter, Outgoing

    config = _config(helpdesk_config)
    _answered_appeal(helpdesk_config, stack, STUDENT, SECRET_BODY + "\nЛев Кузьмин 7в", REPLY_BODY, 1)
    # A second appeal, closed by the teacher with a note; a third one stays open.
    stack.send(letter(STUDENT, "степени по алгебре", "Здравствуйте! Не понимаю, как решать задачу "
                      "про степени по алгебре. Лев Кузьмин 7в"), STUDENT, [SCHOOL])
    run_once(helpdesk_config)
    to_teacher = parse(stack.wait_for(TEACHER, 2)[-1])
    stack.send(_reply(to_teacher, "#закрыть сказал ему лично про контрольную"), TEACHER, [SCHOOL])
    stack.send(letter(STUDENT, "дроби по алгебре", "Здравствуйте! Не понимаю задачу про дроби по "
                      "алгебре. Лев Кузьмин 7в"), STUDENT, [SCHOOL])
    run_once(helpdesk_config)

    app.open_db(config)
    statuses = sorted(a.status for a in Appeal.select())
    assert statuses == ["answered", "closed", "open"]
    [open_appeal] = Appeal.select().where(Appeal.status == "open")
    open_letters = {l.id: bytes(l.raw) for l in Letter.select().where(Letter.appeal == open_appeal.number)}
    open_outgoing = {o.id: bytes(o.raw) for o in Outgoing.select().where(Outgoing.appeal == open_appeal.number)}
    assert open_letters and open_outgoing
    queued = Outgoing.create(kind="notice", mail_from=SCHOOL, recipients=json.dumps([STUDENT]),
                             message_id="<queued-test@lyceum21-edu.test>", raw=b"Subject: x\n\nunsent",
                             status="queued")
    moment = datetime.now(timezone.utc) + timedelta(minutes=5)
    before = _figures(config, moment)

    app.open_db(config)
    later = datetime.now(timezone.utc) + timedelta(days=400)
    dry = purge(later, 365, dry_run=True)
    assert Letter.select().where(Letter.raw == REMOVED_RAW).count() == 0  # the dry run changed nothing
    done = purge(later, 365)
    assert (dry.letters, dry.outgoing, dry.events) == (done.letters, done.outgoing, done.events)
    # 2 appeals finished: their 2 letters + 2 teacher replies; sent: 2 acks, 2 to the teacher, 1 relay.
    assert (done.appeals, done.letters, done.outgoing, done.events) == (2, 4, 5, 1)
    assert done.letter_bytes > 0 and done.outgoing_bytes > 0

    finished = [a.number for a in Appeal.select().where(Appeal.status != "open")]
    for row in Letter.select().where(Letter.appeal.in_(finished)):
        assert bytes(row.raw) == REMOVED_RAW
    for row in Outgoing.select().where(Outgoing.appeal.in_(finished)):
        assert bytes(row.raw) == REMOVED_RAW
    # Never purged: the open appeal's letters, an unsent letter.
    assert {l.id: bytes(l.raw) for l in Letter.select().where(Letter.appeal == open_appeal.number)} == open_letters
    assert {o.id: bytes(o.raw) for o in Outgoing.select()
            .where(Outgoing.appeal == open_appeal.number)} == open_outgoing
    assert bytes(Outgoing.get_by_id(queued.id).raw) == b"Subject: x\n\nunsent"
    # The teacher's note in the "closed" event is gone, the event itself stays.
    [closed] = Event.select().where(Event.kind == "closed")
    assert "сказал ему лично" not in closed.message and "без ответа ученику" in closed.message
    assert Event.select().where(Event.kind == "purged").count() == 1

    assert _figures(config, moment) == before  # the digest and the report count exactly as before
    app.open_db(config)
    assert purge(later, 365).letters == 0  # nothing left to purge
    # The command itself: by default (365 days) nothing of today is old enough.
    capsys.readouterr()
    assert main(["--config", str(helpdesk_config), "purge", "--dry-run"]) == 0
    assert "would purge: 0 incoming letters" in capsys.readouterr().out


def test_purge_setting_zero_keeps_everything(tmp_path, capsys):
    from tests.conftest import offline_config_text

    path = tmp_path / "config.toml"
    path.write_text(offline_config_text(f"sqlite:///{tmp_path / 'db.sqlite3'}")
                    + "[retention]\nbodies_days = 0\n", encoding="utf-8")
    assert main(["--config", str(path), "purge"]) == 0
    assert "kept forever" in capsys.readouterr().out


# --------------------------------------------------------------------------- erase


def _table_texts(db) -> list[tuple[str, str]]:
    """Every value of every row of every table, as text; stored letters decoded."""
    found = []
    for table in db.get_tables():
        cursor = db.execute_sql(f'SELECT * FROM "{table}"')
        for row in cursor.fetchall():
            for value in row:
                if isinstance(value, memoryview):
                    value = bytes(value)
                if isinstance(value, bytes):
                    found.append((table, value.decode("utf-8", "replace")))
                    msg = message_from_bytes(value, policy=policy.default)
                    found += [(table, str(v)) for _, v in msg.items()]
                    found += [(table, p.get_content()) for p in msg.walk()
                              if p.get_content_maintype() == "text"]
                elif value is not None:
                    found.append((table, str(value)))
    return found


def _roster_without(tmp_path: Path, email: str) -> Path:
    copy = tmp_path / "roster-next-year"
    shutil.copytree(ROSTER, copy)
    students = copy / "students.csv"
    lines = students.read_text(encoding="utf-8").splitlines(keepends=True)
    students.write_text("".join(l for l in lines if not l.startswith(email + ",")), encoding="utf-8")
    return copy


def test_erase_leaves_no_trace_and_keeps_the_statistics(helpdesk_config, stack, tmp_path, capsys):
    from helpdesk import app
    from helpdesk.store.models import Appeal, Event, database

    config = _config(helpdesk_config)
    _answered_appeal(helpdesk_config, stack, STUDENT, SECRET_BODY + "\nЛев Кузьмин 7в", REPLY_BODY, 1)
    _answered_appeal(helpdesk_config, stack, OTHER, "Здравствуйте! Не понимаю, как решать задачу 7 по алгебре. Глеб Ситников, 7В",
                     "Глеб, смотри пример 2.", 2)
    stack.send(letter(STUDENT, "пересдача по алгебре", "Здравствуйте! И ещё: когда пересдача по "
                      "алгебре? Лев Кузьмин 7в"), STUDENT, [SCHOOL])
    run_once(helpdesk_config)
    args = ["--config", str(helpdesk_config), "erase", STUDENT, "--yes"]

    capsys.readouterr()
    assert main(args) == 2  # still on the roster
    assert "roster" in capsys.readouterr().err
    assert main(["--config", str(helpdesk_config), "roster", "import", str(_roster_without(tmp_path, STUDENT))]) == 0
    capsys.readouterr()
    assert main(args) == 2  # an open appeal
    assert "open appeals" in capsys.readouterr().err
    app.open_db(config)
    assert SECRET_BODY in "\n".join(t for _, t in _table_texts(database.obj))  # nothing erased yet
    before = [(a.number, a.status, a.class_name, a.subject, a.category, a.assignee, a.received_at,
               a.due_at, a.answered_at) for a in Appeal.select().order_by(Appeal.number)]

    assert main(args + ["--force"]) == 0
    assert "erased: 2 appeals (1 open ones closed)" in capsys.readouterr().out

    app.open_db(config)
    texts = _table_texts(database.obj)
    for needle in (STUDENT, STUDENT_NAME, "Лев Кузьмин", SECRET_BODY, "когда пересдача", REPLY_BODY):
        hits = [(table, text[:80]) for table, text in texts if needle.lower() in text.lower()]
        assert not hits, (needle, hits)
    assert any(OTHER in text for _, text in texts)  # the other student's data is untouched
    after = [(a.number, a.status, a.class_name, a.subject, a.category, a.assignee, a.received_at,
              a.due_at, a.answered_at) for a in Appeal.select().order_by(Appeal.number)]
    assert [row for row in after if row[1] != "closed"] == [row for row in before if row[1] != "open"]
    assert [row[:1] + row[2:] for row in after] == [row[:1] + row[2:] for row in before]
    if config.database.sqlite_path:  # not even in free pages of the file or in its WAL
        for name in (config.database.sqlite_path, Path(f"{config.database.sqlite_path}-wal")):
            data = name.read_bytes() if name.exists() else b""
            assert STUDENT.encode() not in data and STUDENT_NAME.encode() not in data, name
    [erased] = Event.select().where(Event.kind == "erased")
    assert "обращений 2" in erased.message
    capsys.readouterr()
    assert main(["--config", str(helpdesk_config), "erase", STUDENT, "--yes"]) == 0  # nothing left
    assert "nothing erased" in capsys.readouterr().out
    app.open_db(config)
    assert Event.select().where(Event.kind == "erased").count() == 1


def test_erase_refuses_without_confirmation(tmp_path, capsys, monkeypatch):
    from tests.conftest import offline_config_text

    path = tmp_path / "config.toml"
    path.write_text(offline_config_text(f"sqlite:///{tmp_path / 'db.sqlite3'}"), encoding="utf-8")
    monkeypatch.setattr("sys.stdin", open(os.devnull))
    assert main(["--config", str(path), "erase", "nobody@mail.test"]) == 2
    assert "--yes" in capsys.readouterr().err
    assert main(["--config", str(path), "erase", SCHOOL, "--yes"]) == 2
    assert "school's own address" in capsys.readouterr().err


ANN, JOANN, T_ANN = "ann@mail.test", "joann@mail.test", "t.ann@lyceum21-edu.test"
ANN_NAME = "Петрова Анна Сергеевна"


def _raw(sender: str, subject: str, body: str, attachment: bytes | None = None, to: str = SCHOOL) -> bytes:
    from email.message import EmailMessage

    msg = EmailMessage()
    msg["From"], msg["To"], msg["Subject"] = sender, to, subject
    msg.set_content(body)
    if attachment is not None:
        msg.add_attachment(attachment, maintype="application", subtype="pdf", filename="scan.pdf")
    return msg.as_bytes()


# Bytes whose base64 reads "MaxMax…": a short display name found in any raw attachment.
PDF_WITH_MAX = base64.b64decode("MaxMaxMaxMaxMaxMaxMaxMaxMaxM")


def _letter(raw: bytes, sender: str, appeal=None, status: str = "processed", **fields):
    import hashlib

    from helpdesk.store.models import Letter

    return Letter.create(mailbox="INBOX", content_hash=hashlib.sha256(raw).hexdigest(), raw=raw,
                         sender=sender, appeal=appeal, status=status, title="вопрос", **fields)


def _outgoing(raw: bytes, to: str, appeal=None, status: str = "queued", kind: str = "notice", **fields):
    from helpdesk.store.models import Outgoing

    return Outgoing.create(kind=kind, mail_from=SCHOOL, recipients=json.dumps([to]), raw=raw,
                           message_id=f"<{secrets.token_hex(8)}@lyceum21-edu.test>",
                           appeal=appeal, status=status, **fields)


def _appeal(sender: str, name: str, status: str = "answered"):
    from helpdesk.store.models import Appeal, utcnow

    return Appeal.create(sender=sender, sender_name=name, sender_role="student", student=sender,
                         class_name="7В", subject="алгебра", category="subject", assignee=T_ANN,
                         status=status, title="вопрос по алгебре", received_at=utcnow())


def test_scrubber_matches_the_address_as_a_token_and_names_as_words():
    from helpdesk.privacy.erase import Scrubber

    scrub = Scrubber("ann@mail.ru", ("Петрова Анна", "Max"))
    text = ("joann@mail.ru, ANN@mail.ru; ann@mail.ru.evil.test t.ann@mail.ru <Ann@Mail.ru>. "
            "Петрова  Анна, Петровой Анне, Петрова Аннабель, Maxim, Max")
    assert scrub(text) == ("joann@mail.ru, удалено; ann@mail.ru.evil.test t.ann@mail.ru <удалено>. "
                           "удалено, Петровой Анне, Петрова Аннабель, Maxim, Max")
    assert not Scrubber("ann@mail.ru", ()).found("joann@mail.ru")
    assert Scrubber("ann@mail.ru", ()).found("write to ann@mail.ru.")
    # A name in JSON written with ensure_ascii; not inside a longer escaped word.
    assert scrub(json.dumps({"a": "x Петрова Анна"})) == '{"a": "x удалено"}'
    assert not scrub.found(json.dumps({"a": "Петрова Аннабель"}))
    # Only decoded headers and text parts are read, never the base64 of an attachment.
    assert Scrubber("x@y.test", ("Max Maxwell",)).in_letter(_raw("a@b.test", "hi", "hello", PDF_WITH_MAX)) is False
    assert Scrubber("x@y.test", ("Max Maxwell",)).in_letter(_raw("Max Maxwell <a@b.test>", "hi", "hello"))


def test_erase_keeps_other_peoples_letters_and_lists_them(db):
    """Only the person's own letters go; a letter of another appeal naming them is listed, not touched."""
    from helpdesk.privacy import MARKER, REMOVED_RAW
    from helpdesk.privacy.erase import erase, plan_erasure
    from helpdesk.routing.models import StaffAbsence
    from helpdesk.store.models import Appeal, Letter, Outgoing, Person

    Person.create(email=ANN, full_name=ANN_NAME, kind="student", class_name="7В", active=False)
    Person.create(email=JOANN, full_name="Иванова Жанна Петровна", kind="student", class_name="7В")
    own = _appeal(ANN, "Max")  # a one-word display name: never used to match
    other = _appeal(JOANN, "Жанна Иванова", status="open")
    mine = _letter(_raw(f"Max <{ANN}>", "вопрос", "я не поняла задачу"), ANN, own)
    ack = _outgoing(_raw(SCHOOL, "ack", "получено", to=ANN), ANN, own, kind="ack")
    notice = _outgoing(_raw(SCHOOL, "notice", "уведомление", to=ANN.upper()), ANN.upper())
    naming = _raw(f"Жанна <{JOANN}>", "задача", f"{ANN_NAME} тоже не поняла задачу.", PDF_WITH_MAX)
    mentions = _letter(naming, JOANN, other)
    plain_raw = _raw(f"Жанна <{JOANN}>", "ещё", "Max мне помог, спасибо.", PDF_WITH_MAX)
    plain = _letter(plain_raw, JOANN, other)
    forwarded = _outgoing(naming, T_ANN, other, kind="to_assignee")
    digest = _outgoing(_raw(SCHOOL, "сводка", f"Вопросы: {ANN_NAME}, 7В", to=T_ANN), T_ANN, status="sent",
                       kind="digest")
    absence = StaffAbsence.create(teacher=T_ANN, start=date(2026, 1, 1), end=date(2026, 1, 5),
                                  substitute=JOANN, note="курсы")

    plan = plan_erasure(ANN)
    assert plan.names == (ANN_NAME,)
    result = erase(plan)

    assert bytes(Letter.get_by_id(mine.id).raw) == REMOVED_RAW
    for row in (ack, notice):
        assert bytes(Outgoing.get_by_id(row.id).raw) == REMOVED_RAW
        assert Outgoing.get_by_id(row.id).status == "failed"  # cancelled
    assert bytes(Outgoing.get_by_id(digest.id).raw) == REMOVED_RAW  # the school's own digest naming her
    # Other people's letters: untouched (the queued one still queued); those naming her are listed.
    assert bytes(Letter.get_by_id(mentions.id).raw) == naming
    assert bytes(Letter.get_by_id(plain.id).raw) == plain_raw
    kept = Outgoing.get_by_id(forwarded.id)
    assert (bytes(kept.raw), kept.status) == (naming, "queued")
    assert result.kept_letters == [[mentions.id, other.number]]
    assert result.kept_outgoing == [[forwarded.id, other.number]]
    summary = result.summary()
    assert "2 letters of other people" in summary and f"{mentions.id} (appeal {other.number})" in summary
    # Addresses that merely contain hers are not rewritten.
    other = Appeal.get_by_id(other.number)
    assert (other.sender, other.student, other.assignee) == (JOANN, JOANN, T_ANN)
    own = Appeal.get_by_id(own.number)
    assert (own.sender, own.sender_name, own.student, own.assignee) == (MARKER, MARKER, MARKER, T_ANN)
    absence = StaffAbsence.get_by_id(absence.id)
    assert (absence.teacher, absence.substitute) == (T_ANN, JOANN)
    assert [p.email for p in Person.select()] == [JOANN]


def test_erase_finds_unprocessed_letters_whatever_the_case_of_the_address(db):
    from helpdesk.privacy import REMOVED_RAW
    from helpdesk.privacy.erase import erase, plan_erasure
    from helpdesk.store.models import Letter

    waiting = _letter(_raw("Anna <Ann@Mail.Test>", "вопрос", "я снова не поняла"), "Ann@Mail.Test",
                      status="new")
    result = erase(plan_erasure(ANN))
    row = Letter.get_by_id(waiting.id)
    assert (bytes(row.raw), row.status, result.unprocessed) == (REMOVED_RAW, "ignored", 1)


def test_purge_removes_old_failed_and_quarantined_letters(db):
    from helpdesk.privacy import REMOVED_RAW
    from helpdesk.privacy.purge import purge
    from helpdesk.store.models import Letter, Outgoing

    now = datetime.now(timezone.utc)
    old = (now - timedelta(days=400)).replace(tzinfo=None)
    body = _raw(SCHOOL, "обращение", "письмо ученика целиком", PDF_WITH_MAX, to=T_ANN)
    open_appeal = _appeal(ANN, "Анна Петрова", status="open")
    failed_old = _outgoing(body, T_ANN, open_appeal, status="failed", kind="to_assignee", created_at=old)
    failed_new = _outgoing(body, T_ANN, open_appeal, status="failed", kind="to_assignee")
    queued_old = _outgoing(body, T_ANN, open_appeal, created_at=old)
    quarantined_old = _letter(_raw(ANN, "x", "карантин"), ANN, status="quarantined", fetched_at=old)
    quarantined_new = _letter(_raw(ANN, "y", "карантин"), ANN, status="quarantined")
    new_old = _letter(_raw(ANN, "z", "не разобрано"), ANN, status="new", fetched_at=old, received_at=old)

    result = purge(now, 365)
    assert (result.letters, result.outgoing) == (1, 1)
    assert bytes(Outgoing.get_by_id(failed_old.id).raw) == REMOVED_RAW
    assert Outgoing.get_by_id(failed_old.id).status == "failed"  # the row and its status stay
    assert bytes(Letter.get_by_id(quarantined_old.id).raw) == REMOVED_RAW
    assert Letter.get_by_id(quarantined_old.id).status == "quarantined"
    for row in (failed_new, queued_old):
        assert bytes(Outgoing.get_by_id(row.id).raw) == body
    for row in (quarantined_new, new_old):
        assert bytes(Letter.get_by_id(row.id).raw) != REMOVED_RAW


# --------------------------------------------------------------------------- permissions, backup


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_database_and_backup_are_owner_only(tmp_path, capsys):
    from helpdesk.store.db import open_database
    from helpdesk.store.models import Event, database

    directory = tmp_path / "state" / "helpdesk"
    path = directory / "helpdesk.sqlite3"
    old = os.umask(0o022)
    try:
        open_database(f"sqlite:///{path}")
        Event.create(kind="test", message="x")  # the WAL and its index exist while open
        assert _mode(directory) == 0o700
        for name in (path, Path(f"{path}-wal"), Path(f"{path}-shm")):
            assert name.exists() and _mode(name) == 0o600, name
        database.close()
    finally:
        os.umask(old)
    config = tmp_path / "config.toml"
    from tests.conftest import offline_config_text

    config.write_text(offline_config_text(f"sqlite:///{path}"), encoding="utf-8")
    assert main(["--config", str(config), "backup", str(tmp_path / "copies") + "/"]) == 0
    assert _mode(tmp_path / "copies" / "helpdesk.sqlite3") == 0o600
    assert _mode(tmp_path / "copies") == 0o700  # made by the backup
    assert main(["--config", str(config), "backup", str(tmp_path / "copies") + "/"]) == 1  # exists
    assert main(["--config", str(config), "backup", str(tmp_path / "copies") + "/", "--force"]) == 0
    assert sorted(p.name for p in (tmp_path / "copies").iterdir()) == ["helpdesk.sqlite3"]


def test_backup_restore_round_trip(tmp_path, stack, capsys):
    """Back up while running, change things, restore the copy: exactly the state backed up."""
    from tests.conftest import write_config

    db_path = tmp_path / "helpdesk.sqlite3"
    config = write_config(tmp_path, stack, f"sqlite:///{db_path}")
    assert main(["--config", str(config), "roster", "import", str(ROSTER)]) == 0
    stack.send(letter(STUDENT, "алгебра", "вопрос до резервной копии. Лев 7в"), STUDENT, [SCHOOL])
    run_once(config)
    backup = tmp_path / "backup" / "helpdesk.sqlite3"
    assert main(["--config", str(config), "backup", str(backup)]) == 0
    stack.send(letter(OTHER, "алгебра", "вопрос после резервной копии. Глеб 7в"), OTHER, [SCHOOL])
    run_once(config)

    def appeals() -> list[str]:
        with closing(sqlite3.connect(db_path)) as conn:
            return [s for (s,) in conn.execute("SELECT sender FROM appeal ORDER BY number")]

    assert appeals() == [STUDENT, OTHER]
    # The README's restore: stop the daemon, copy the backup over the database (its -wal and
    # -shm files removed), start again; `helpdesk check` says whether all is well.
    from helpdesk.store.models import database

    database.close()
    for suffix in ("-wal", "-shm"):
        Path(f"{db_path}{suffix}").unlink(missing_ok=True)
    shutil.copy2(backup, db_path)
    assert _mode(db_path) == 0o600
    assert appeals() == [STUDENT]
    capsys.readouterr()
    assert main(["--config", str(config), "check"]) == 0, capsys.readouterr().out


# --------------------------------------------------------------------------- the daily timer

UNITS = Path(__file__).resolve().parent.parent / "systemd"
SANDBOX = ("User", "Group", "StateDirectory", "StateDirectoryMode", "UMask", "NoNewPrivileges",
           "CapabilityBoundingSet", "ProtectSystem", "ProtectHome", "PrivateTmp", "PrivateDevices",
           "RestrictAddressFamilies", "RestrictNamespaces", "SystemCallFilter", "SystemCallArchitectures")


def _unit(path: Path) -> dict[str, list[str]]:
    found: dict[str, list[str]] = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        if line.strip() and not line.startswith(("#", ";", "[")):
            key, _, value = line.partition("=")
            found.setdefault(key.strip(), []).append(value.strip())
    return found


@pytest.mark.parametrize("purge, daemon, instance", [("helpdesk-purge", "helpdesk", ""),
                                                    ("helpdesk-purge@", "helpdesk@", "school1")])
def test_purge_timer_units_verify_and_share_the_sandbox(tmp_path, purge, daemon, instance):
    service, timer = _unit(UNITS / f"{purge}.service"), _unit(UNITS / f"{purge}.timer")
    main_unit = _unit(UNITS / f"{daemon}.service")
    assert service["ExecStart"] == ["/usr/local/bin/helpdesk purge"] and service["Type"] == ["oneshot"]
    for key in SANDBOX + ("Environment", "WorkingDirectory", "LoadCredential"):
        assert service.get(key) == main_unit.get(key), key
    assert timer["Unit"] == [f"{purge}{'%i' if instance else ''}.service"] and timer["Persistent"] == ["true"]
    assert timer["OnCalendar"]
    tool, script = shutil.which("systemd-analyze"), shutil.which("helpdesk")
    if tool is None or script is None:
        pytest.skip("systemd-analyze or the helpdesk script not installed")
    text = (UNITS / f"{purge}.service").read_text(encoding="utf-8")
    (tmp_path / f"{purge}.service").write_text(text.replace("/usr/local/bin/helpdesk", script))
    shutil.copy(UNITS / f"{purge}.timer", tmp_path)
    import subprocess

    done = subprocess.run([tool, "verify", "--man=no", f"{purge}{instance}.service", f"{purge}{instance}.timer"],
                          capture_output=True, text=True, timeout=120, cwd=tmp_path)
    assert done.returncode == 0 and not (done.stdout + done.stderr).strip(), done.stdout + done.stderr
