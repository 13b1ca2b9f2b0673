"""One letter's whole path through the real mail stack (Dovecot + SMTP) and the CLI."""
from __future__ import annotations

import json
from email import message_from_bytes, policy
from email.message import EmailMessage

import pytest

from helpdesk.cli import main
from tests.conftest import CORPUS, SCHOOL, letter

pytestmark = pytest.mark.mailstack

STUDENT = "lev.kuzmin@lyceum21-edu.test"  # 7В
GERMAN_TEACHER = "m.shubina@lyceum21-edu.test"  # 7В German and class teacher
ALGEBRA_TEACHER = "d.karpenko@lyceum21-edu.test"  # 7В algebra


def run_once(config) -> None:
    assert main(["--config", str(config), "run", "--once"]) == 0


def cli_json(config, *args: str, capsys) -> list[dict]:
    capsys.readouterr()
    assert main(["--config", str(config), *args, "--json"]) == 0
    out = capsys.readouterr().out
    return [json.loads(line) for line in out.splitlines() if line.strip()]


def parse(raw: bytes):
    return message_from_bytes(raw, policy=policy.default)


def text_of(msg) -> str:
    return msg.get_body(preferencelist=("plain",)).get_content()


def test_appeal_ack_and_teacher_copy(helpdesk_config, stack, capsys):
    original = letter(STUDENT, "помогите с алгеброй", "Не понимаю как решать квадратные уравнения "
                      "через дискриминант, задали номер 5. Лев Кузьмин 7в")
    stack.send(original, STUDENT, [SCHOOL])
    run_once(helpdesk_config)

    appeals = cli_json(helpdesk_config, "appeals", "list", capsys=capsys)
    assert len(appeals) == 1
    appeal = appeals[0]
    assert appeal["status"] == "open"
    assert appeal["class"] == "7В" and appeal["subject"] == "алгебра"
    assert appeal["assignee"] == ALGEBRA_TEACHER
    assert appeal["sender_role"] == "student"
    assert appeal["due_at"] and appeal["received_at"].endswith("+03:00")

    ack = parse(stack.wait_for(STUDENT, 1)[0])
    assert f"[№ {appeal['number']}]" in ack["Subject"]
    assert ack["In-Reply-To"] == original["Message-ID"]
    body = text_of(ack)
    assert str(appeal["number"]) in body and "Карпенко Дмитрий Анатольевич" in body
    assert "Срок ответа:" in body

    to_teacher = parse(stack.wait_for(ALGEBRA_TEACHER, 1)[0])
    assert to_teacher["Reply-To"] == SCHOOL
    assert f"[№ {appeal['number']}]" in to_teacher["Subject"]
    assert "квадратные уравнения" in text_of(to_teacher)
    # Nothing went to anyone else.
    assert stack.messages(GERMAN_TEACHER) == []


def teacher_reply(to_teacher, teacher: str, new_text: str) -> EmailMessage:
    """A reply as a mail client writes it: new text on top, the original quoted below."""
    quoted = "\n".join("> " + line for line in text_of(to_teacher).splitlines())
    reply = letter(
        teacher, "Re: " + to_teacher["Subject"],
        f"{new_text}\n\nС уважением,\nДмитрий Анатольевич\n\n"
        f"пт, 27 нояб. 2026 г. в 10:00, МАОУ «Лицей №21» <{SCHOOL}>:\n{quoted}\n",
        In_Reply_To=to_teacher["Message-ID"],
        References=to_teacher["Message-ID"],
    )
    return reply


def test_teacher_reply_is_relayed_threaded_and_followup_joins(helpdesk_config, stack, capsys):
    original = letter(STUDENT, "алгебра", "как решить уравнение x^2-5x+6=0? лев 7в")
    stack.send(original, STUDENT, [SCHOOL])
    run_once(helpdesk_config)
    to_teacher = parse(stack.wait_for(ALGEBRA_TEACHER, 1)[0])
    ack = parse(stack.wait_for(STUDENT, 1)[0])

    stack.send(teacher_reply(to_teacher, ALGEBRA_TEACHER, "Лев, найди дискриминант: D = 25 - 24 = 1."),
               ALGEBRA_TEACHER, [SCHOOL])
    run_once(helpdesk_config)

    got = stack.wait_for(STUDENT, 2)
    relay = parse(got[1])
    body = text_of(relay)
    assert "найди дискриминант" in body
    assert "С уважением" not in body and "> " not in body and "пт, 27 нояб." not in body
    assert ALGEBRA_TEACHER not in relay.as_string()  # the teacher's address is not shown
    assert relay["From"].addresses[0].addr_spec == SCHOOL
    assert relay["In-Reply-To"] == original["Message-ID"]
    assert ack["Message-ID"] in relay["References"]
    [appeal] = cli_json(helpdesk_config, "appeals", "list", capsys=capsys)
    assert appeal["status"] == "answered" and appeal["answered_at"]

    # The student answers in the thread: the same appeal, reopened, the teacher is told.
    follow = letter(STUDENT, "Re: " + relay["Subject"], "А почему корни 2 и 3?\n\n> Лев, найди",
                    In_Reply_To=relay["Message-ID"], References=relay["Message-ID"])
    stack.send(follow, STUDENT, [SCHOOL])
    run_once(helpdesk_config)
    appeals = cli_json(helpdesk_config, "appeals", "list", capsys=capsys)
    assert len(appeals) == 1 and appeals[0]["status"] == "open"
    teacher_mail = stack.wait_for(ALGEBRA_TEACHER, 2)
    assert "почему корни 2 и 3" in text_of(parse(teacher_mail[1]))
    letters = cli_json(helpdesk_config, "letters", "list", capsys=capsys)
    assert [l["kind"] for l in letters] == ["appeal", "teacher_reply", "followup"]
    assert {l["appeal"] for l in letters} == {appeals[0]["number"]}


def test_auto_reply_gets_no_answer(helpdesk_config, stack, capsys):
    auto = letter(STUDENT, "Автоответ: помогите", "Я в отпуске до понедельника.",
                  Auto_Submitted="auto-replied")
    stack.send(auto, STUDENT, [SCHOOL])
    run_once(helpdesk_config)
    assert cli_json(helpdesk_config, "appeals", "list", capsys=capsys) == []
    [row] = cli_json(helpdesk_config, "letters", "list", capsys=capsys)
    assert row["status"] == "ignored" and row["kind"] == "auto_reply" and "Auto-Submitted" in row["reason"]
    assert stack.messages(STUDENT) == []


def test_unknown_sender_routed_by_class_in_text(helpdesk_config, stack, capsys):
    msg = letter("stranger@mail.test", "вопрос", "Здравствуйте! Я мама ученицы 8-Б, у дочки не "
                 "получается войти в электронный дневник, пишет неверный пароль.")
    stack.send(msg, "stranger@mail.test", [SCHOOL])
    run_once(helpdesk_config)
    [appeal] = cli_json(helpdesk_config, "appeals", "list", capsys=capsys)
    assert appeal["sender_role"] == "unknown"
    assert appeal["category"] == "technical"
    assert appeal["assignee"] == "a.saveliev@lyceum21-edu.test"
    assert stack.wait_for("stranger@mail.test", 1)


def test_unparseable_letter_is_quarantined_and_the_daemon_goes_on(helpdesk_config, stack, capsys):
    # Put into the folder as is (IMAP APPEND): no header at all, not even a delivery trace.
    with stack.imap(SCHOOL) as client:
        client.append("INBOX", b"\x00\xff\xfe this is not a letter at all\r\n")
    good = letter(STUDENT, "физика", "не понимаю закон Ома, помогите. лев кузьмин 7в")
    stack.send(good, STUDENT, [SCHOOL])
    run_once(helpdesk_config)
    letters = cli_json(helpdesk_config, "letters", "list", capsys=capsys)
    assert len(letters) == 2
    statuses = {l["status"] for l in letters}
    assert "processed" in statuses
    [appeal] = cli_json(helpdesk_config, "appeals", "list", capsys=capsys)
    assert appeal["subject"] == "физика"
    [bad] = [l for l in letters if l["status"] != "processed"]
    # The broken letter is kept with a reason, never dropped silently.
    assert bad["status"] == "quarantined" and "не удалось разобрать" in bad["reason"]


def test_replay_is_a_no_op(helpdesk_config, stack, capsys):
    msg = letter(STUDENT, "история", "когда сдавать доклад по истории? лев 7в")
    stack.send(msg, STUDENT, [SCHOOL])
    stack.send(msg, STUDENT, [SCHOOL])  # the same letter twice (same Message-ID)
    run_once(helpdesk_config)
    run_once(helpdesk_config)
    assert len(cli_json(helpdesk_config, "appeals", "list", capsys=capsys)) == 1
    assert len(stack.wait_for(STUDENT, 1)) == 1


def test_corpus_letters_through_the_stack(helpdesk_config, stack, capsys):
    """Every development-corpus letter delivered for real: appeals get exactly one ack,
    non-appeals none, and nothing is lost."""
    cases = json.loads((CORPUS / "cases.json").read_text(encoding="utf-8"))
    for case in cases:
        raw = (CORPUS / "cases" / case["file"]).read_bytes()
        stack.send(raw, "stranger@mail.test", [SCHOOL])
    run_once(helpdesk_config)
    letters = cli_json(helpdesk_config, "letters", "list", capsys=capsys)
    assert len(letters) == len(cases)
    assert all(l["status"] in ("processed", "ignored") for l in letters), letters
    appeals = cli_json(helpdesk_config, "appeals", "list", capsys=capsys)
    expected = sum(1 for c in cases if c["kind"] == "appeal")
    assert len(appeals) == expected
    kinds = sorted(l["kind"] for l in letters)
    assert kinds == sorted(c["kind"] for c in cases)


def test_acknowledgements_are_limited_per_sender_per_hour(tmp_path, stack, db_url, capsys):
    """A loop with a responder that escapes detection ends: appeals are still registered,
    but the sender gets at most ack_limit_per_hour acknowledgements."""
    from tests.conftest import ROSTER, write_config

    config = write_config(tmp_path, stack, db_url, outbox__ack_limit_per_hour="2")
    assert main(["--config", str(config), "roster", "import", str(ROSTER)]) == 0
    for n in range(4):
        stack.send(letter("stranger@mail.test", f"вопрос {n}", f"Где расписание 7В? Письмо {n}."),
                   "stranger@mail.test", [SCHOOL])
    run_once(config)
    assert len(cli_json(config, "appeals", "list", capsys=capsys)) == 4
    assert len(stack.messages("stranger@mail.test")) == 2


def test_an_oversized_attachment_is_named_to_the_sender_and_the_rest_forwarded(tmp_path, stack, db_url, capsys):
    from tests.conftest import ROSTER, write_config

    config = write_config(tmp_path, stack, db_url, school__attachment_limit_mb="1")
    assert main(["--config", str(config), "roster", "import", str(ROSTER)]) == 0
    msg = letter(STUDENT, "алгебра", "Посмотрите, пожалуйста, моё решение. Лев 7в")
    msg.add_attachment(b"x" * 200_000, maintype="image", subtype="jpeg", filename="решение.jpg")
    msg.add_attachment(b"y" * 3_000_000, maintype="video", subtype="mp4", filename="видео.mp4")
    stack.send(msg, STUDENT, [SCHOOL])
    run_once(config)
    [appeal] = cli_json(config, "appeals", "list", capsys=capsys)  # still an appeal
    ack = text_of(parse(stack.wait_for(STUDENT, 1)[0]))
    assert "«видео.mp4» (2.9 МБ) слишком большой" in ack and "до 1 МБ" in ack
    to_teacher = parse(stack.wait_for(ALGEBRA_TEACHER, 1)[0])
    names = [part.get_filename() for part in to_teacher.iter_attachments()]
    assert names == ["решение.jpg"]
    assert "видео.mp4" in text_of(to_teacher)


def test_the_daily_digest_goes_out_once_through_the_daemon(tmp_path, stack, db_url, capsys):
    from tests.conftest import ROSTER, write_config

    config = write_config(tmp_path, stack, db_url, digest__enabled="true")
    assert main(["--config", str(config), "roster", "import", str(ROSTER)]) == 0
    assert main(["--config", str(config), "run", "--once", "--now", "2026-12-07T08:05"]) == 0
    deputy, director = "n.kovalevskaya@lyceum21-edu.test", "o.grigoriev@lyceum21-edu.test"
    [digest] = [parse(raw) for raw in stack.wait_for(deputy, 1)]
    assert "[№" not in digest["Subject"] and "Сводка" in digest["Subject"]
    assert director in digest["To"]
    assert main(["--config", str(config), "run", "--once", "--now", "2026-12-07T10:00"]) == 0
    assert len(stack.messages(deputy)) == 1  # once per day, whatever the number of cycles
