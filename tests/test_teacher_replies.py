"""Teachers work from their mail client: replies in each client's format, the # commands,
and the trust rules, all through the real mail stack."""
from __future__ import annotations

import json

import pytest
from icalendar import Calendar

from helpdesk.cli import main
from tests.conftest import SCHOOL
from tests.test_e2e import cli_json, letter, parse, run_once, text_of

pytestmark = pytest.mark.mailstack

STUDENT = "lev.kuzmin@lyceum21-edu.test"  # 7В
TEACHER = "d.karpenko@lyceum21-edu.test"  # 7В algebra
OTHER_TEACHER = "v.lisitsyna@lyceum21-edu.test"  # 7В geometry
DEPUTY = "n.kovalevskaya@lyceum21-edu.test"
DIRECTOR = "o.grigoriev@lyceum21-edu.test"


def open_appeal(config, stack) -> tuple:
    """A student's algebra letter, processed: returns (original, letter to the teacher)."""
    original = letter(STUDENT, "алгебра", "не понимаю как решать квадратные уравнения, лев 7в")
    stack.send(original, STUDENT, [SCHOOL])
    run_once(config)
    to_teacher = parse(stack.wait_for(TEACHER, 1)[0])
    stack.wait_for(STUDENT, 1)
    return original, to_teacher


def reply_to(to_teacher, sender: str, body: str, *, threaded: bool = True, **headers):
    extra = dict(headers)
    if threaded:
        extra.update(In_Reply_To=to_teacher["Message-ID"], References=to_teacher["Message-ID"])
    return letter(sender, "Re: " + to_teacher["Subject"], body, **extra)


# Each client's reply layout, written from the clients' documented formats:
# (new text, the rest of the reply after it).
CLIENT_FORMATS = {
    "gmail_ru": "\n\nпн, 30 нояб. 2026 г. в 10:00, МАОУ «Лицей №21» <{school}>:\n> {quote}\n",
    "gmail_en": "\n\nOn Mon, Nov 30, 2026 at 10:00 AM МАОУ «Лицей №21» <{school}> wrote:\n> {quote}\n",
    "yandex": "\n\n-- \nС уважением,\nДмитрий Анатольевич\n\n30.11.2026, 10:00, \"МАОУ «Лицей №21»\" <{school}>:\n> {quote}\n",
    "mailru": "\n\nПонедельник, 30 ноября 2026, 10:00 +03:00 от МАОУ «Лицей №21» <{school}>:\n> {quote}\n",
    "outlook": "\n\n-----Исходное сообщение-----\nОт: МАОУ «Лицей №21» <{school}>\nОтправлено: 30 ноября 2026 г. 10:00\nКому: Карпенко Д. А.\nТема: {subject}\n\n{quote}\n",
    "iphone": "\n\nОтправлено с iPhone\n\n> 30 нояб. 2026 г., в 10:00, МАОУ «Лицей №21» <{school}> написал(а):\n> {quote}\n",
    "thunderbird": "\n\n30.11.2026 10:00, МАОУ «Лицей №21» пишет:\n> {quote}\n",
}


@pytest.mark.parametrize("client", sorted(CLIENT_FORMATS))
def test_each_clients_reply_reaches_the_student_clean(helpdesk_config, stack, capsys, client):
    _, to_teacher = open_appeal(helpdesk_config, stack)
    answer = "Лев, посмотри пример 3 на странице 45, там разобрано решение через дискриминант."
    tail = CLIENT_FORMATS[client].format(school=SCHOOL, quote="не понимаю как решать",
                                         subject=to_teacher["Subject"])
    stack.send(reply_to(to_teacher, TEACHER, answer + tail), TEACHER, [SCHOOL])
    run_once(helpdesk_config)
    relay = parse(stack.wait_for(STUDENT, 2)[1])
    body = text_of(relay)
    assert answer in body
    for leftover in ("не понимаю как решать", "С уважением", "Отправлено с iPhone", "Исходное", "wrote:"):
        assert leftover not in body, (client, body)
    [appeal] = cli_json(helpdesk_config, "appeals", "list", capsys=capsys)
    assert appeal["status"] == "answered"


def test_close_command_closes_without_writing_to_the_student(helpdesk_config, stack, capsys):
    _, to_teacher = open_appeal(helpdesk_config, stack)
    stack.send(reply_to(to_teacher, TEACHER, "#закрыть ответил по телефону"), TEACHER, [SCHOOL])
    run_once(helpdesk_config)
    [appeal] = cli_json(helpdesk_config, "appeals", "list", capsys=capsys)
    assert appeal["status"] == "closed" and appeal["closed_at"]
    assert len(stack.messages(STUDENT)) == 1  # only the acknowledgement
    [shown] = cli_json(helpdesk_config, "appeals", "show", str(appeal["number"]), capsys=capsys)
    assert any("ответил по телефону" in e["message"] for e in shown["events"])


def test_handover_command(helpdesk_config, stack, capsys):
    _, to_teacher = open_appeal(helpdesk_config, stack)
    stack.send(reply_to(to_teacher, TEACHER, f"#передать {OTHER_TEACHER}\n\nЭто геометрия."),
               TEACHER, [SCHOOL])
    run_once(helpdesk_config)
    [appeal] = cli_json(helpdesk_config, "appeals", "list", capsys=capsys)
    assert appeal["assignee"] == OTHER_TEACHER
    handed = parse(stack.wait_for(OTHER_TEACHER, 1)[0])
    assert "квадратные уравнения" in text_of(handed)
    [correction] = cli_json(helpdesk_config, "corrections", "list", capsys=capsys)
    assert (correction["old"], correction["new"], correction["source"]) == (TEACHER, OTHER_TEACHER, "mail")
    # The new assignee's reply is trusted and relayed; "Это геометрия." went to the student
    # as the first teacher's words.
    stack.send(reply_to(handed, OTHER_TEACHER, "Лев, жду тебя на консультации."), OTHER_TEACHER, [SCHOOL])
    run_once(helpdesk_config)
    texts = [text_of(parse(raw)) for raw in stack.messages(STUDENT)]
    assert any("жду тебя на консультации" in t for t in texts)


def test_consultation_command_sends_an_ics_invitation(helpdesk_config, stack, capsys):
    _, to_teacher = open_appeal(helpdesk_config, stack)
    stack.send(reply_to(to_teacher, TEACHER, "Разберём на консультации.\n#консультация 2026-12-02 15:00 Сферум"),
               TEACHER, [SCHOOL])
    run_once(helpdesk_config)
    relay = parse(stack.wait_for(STUDENT, 2)[1])
    body = text_of(relay)
    assert "Разберём на консультации." in body and "Сферум" in body and "#консультация" not in body
    [ics] = [part for part in relay.iter_attachments() if part.get_filename() == "invite.ics"]
    [event] = Calendar.from_ical(ics.get_content()).walk("VEVENT")
    start = event.decoded("dtstart")
    assert (start.year, start.month, start.day, start.hour) == (2026, 12, 2, 15)
    assert start.utcoffset().total_seconds() == 3 * 3600
    assert str(event["location"]) == "Сферум"


def test_wait_command_pauses_until_the_student_answers(helpdesk_config, stack, capsys):
    _, to_teacher = open_appeal(helpdesk_config, stack)
    stack.send(reply_to(to_teacher, TEACHER, "Лев, какой номер задачи?\n#ждём"), TEACHER, [SCHOOL])
    run_once(helpdesk_config)
    [appeal] = cli_json(helpdesk_config, "appeals", "list", capsys=capsys)
    assert appeal["status"] == "waiting"
    relay = parse(stack.wait_for(STUDENT, 2)[1])
    assert "какой номер задачи" in text_of(relay)
    answer = letter(STUDENT, "Re: " + relay["Subject"], "номер 212",
                    In_Reply_To=relay["Message-ID"], References=relay["Message-ID"])
    stack.send(answer, STUDENT, [SCHOOL])
    run_once(helpdesk_config)
    [appeal] = cli_json(helpdesk_config, "appeals", "list", capsys=capsys)
    assert appeal["status"] == "open"  # the clock runs again
    assert "номер 212" in text_of(parse(stack.wait_for(TEACHER, 2)[1]))


def test_unknown_command_gets_help_to_the_teacher_only(helpdesk_config, stack, capsys):
    _, to_teacher = open_appeal(helpdesk_config, stack)
    stack.send(reply_to(to_teacher, TEACHER, "#отложить до завтра"), TEACHER, [SCHOOL])
    run_once(helpdesk_config)
    help_letter = parse(stack.wait_for(TEACHER, 2)[1])
    assert "неизвестная команда" in text_of(help_letter) and "#закрыть" in text_of(help_letter)
    assert len(stack.messages(STUDENT)) == 1
    [appeal] = cli_json(helpdesk_config, "appeals", "list", capsys=capsys)
    assert appeal["status"] == "open"


def test_other_teacher_with_the_tag_is_not_relayed(helpdesk_config, stack, capsys):
    _, to_teacher = open_appeal(helpdesk_config, stack)
    forged = reply_to(to_teacher, OTHER_TEACHER, "Не делай это задание.", threaded=False)
    stack.send(forged, OTHER_TEACHER, [SCHOOL])
    run_once(helpdesk_config)
    assert len(stack.messages(STUDENT)) == 1  # nothing relayed
    notice = parse(stack.wait_for(DEPUTY, 1)[0])
    assert "Подозрительное письмо" in notice["Subject"] and "Не делай это задание." in text_of(notice)


def test_forged_from_is_not_relayed(helpdesk_config, stack, capsys):
    _, to_teacher = open_appeal(helpdesk_config, stack)
    forged = reply_to(to_teacher, TEACHER, "Ответ: 42.", Authentication_Results=(
        "mx.lyceum21-edu.test; spf=fail smtp.mailfrom=lyceum21-edu.test; dmarc=fail header.from=lyceum21-edu.test"))
    stack.send(forged, TEACHER, [SCHOOL])
    run_once(helpdesk_config)
    assert len(stack.messages(STUDENT)) == 1
    assert "SPF=fail" in text_of(parse(stack.wait_for(DEPUTY, 1)[0]))


def test_same_reply_twice_is_relayed_once(helpdesk_config, stack, capsys):
    _, to_teacher = open_appeal(helpdesk_config, stack)
    for _ in range(2):  # e.g. the client resent it with a new Message-ID
        stack.send(reply_to(to_teacher, TEACHER, "Дискриминант равен 49."), TEACHER, [SCHOOL])
    run_once(helpdesk_config)
    assert len(stack.messages(STUDENT)) == 2  # ack + one relay


def test_teacher_auto_reply_is_not_relayed_and_the_deputy_is_told(helpdesk_config, stack, capsys):
    _, to_teacher = open_appeal(helpdesk_config, stack)
    away = reply_to(to_teacher, TEACHER, "Я в отпуске до 10 декабря.", Auto_Submitted="auto-replied")
    stack.send(away, TEACHER, [SCHOOL])
    run_once(helpdesk_config)
    assert len(stack.messages(STUDENT)) == 1
    notice = parse(stack.wait_for(DEPUTY, 1)[0])
    assert "возможно, отсутствует" in notice["Subject"]


def test_reply_text_command(tmp_path, capsys):
    raw = letter(TEACHER, "Re: [№ 1] алгебра", "Ответ тут.\n#ждём\n\nС уважением,\nД. А.\n\n"
                 "пн, 30 нояб. 2026 г. в 10:00, Школа <s@x.test>:\n> вопрос\n")
    path = tmp_path / "reply.eml"
    path.write_bytes(raw.as_bytes())
    assert main(["reply-text", str(path)]) == 0
    out = capsys.readouterr().out
    assert out.splitlines() == ["[command #ждём: wait]", "Ответ тут."]


def test_an_attachment_only_reply_sends_no_quote_and_no_signature(helpdesk_config, stack, capsys):
    _, to_teacher = open_appeal(helpdesk_config, stack)
    quoted = "\n".join("> " + line for line in text_of(to_teacher).splitlines())
    reply = reply_to(to_teacher, TEACHER, "\n-- \nД. А. Карпенко, тел. +7 912 000-00-00\n\n"
                     f"пн, 30 нояб. 2026 г. в 10:00, МАОУ «Лицей №21» <{SCHOOL}>:\n{quoted}\n")
    reply.add_attachment(b"%PDF-1.4 solution", maintype="application", subtype="pdf",
                         filename="reshenie.pdf")
    stack.send(reply, TEACHER, [SCHOOL])
    run_once(helpdesk_config)
    relay = parse(stack.wait_for(STUDENT, 2)[1])
    body = text_of(relay)
    assert "(ответ во вложении)" in body
    assert "+7 912" not in body and "Почему оно пришло вам" not in body
    assert [p.get_filename() for p in relay.iter_attachments()] == ["reshenie.pdf"]


def test_a_teacher_who_is_also_a_parent_can_answer(helpdesk_config, stack, tmp_path, capsys):
    import shutil

    from tests.conftest import ROSTER

    roster = tmp_path / "roster"
    shutil.copytree(ROSTER, roster)
    students = (roster / "students.csv").read_text(encoding="utf-8")
    (roster / "students.csv").write_text(
        students.replace("dan.kornilov@yandex.test,Корнилов Даниил Андреевич,5В,",
                         f"dan.kornilov@yandex.test,Корнилов Даниил Андреевич,5В,{TEACHER}"),
        encoding="utf-8")
    assert main(["--config", str(helpdesk_config), "roster", "import", str(roster)]) == 0
    _, to_teacher = open_appeal(helpdesk_config, stack)
    stack.send(reply_to(to_teacher, TEACHER, "Лев, смотри пример 3."), TEACHER, [SCHOOL])
    run_once(helpdesk_config)
    assert len(cli_json(helpdesk_config, "appeals", "list", capsys=capsys)) == 1
    assert "смотри пример 3" in text_of(parse(stack.wait_for(STUDENT, 2)[1]))


def test_the_same_words_after_a_new_question_are_a_new_answer(helpdesk_config, stack, capsys):
    _, to_teacher = open_appeal(helpdesk_config, stack)
    stack.send(reply_to(to_teacher, TEACHER, "Да."), TEACHER, [SCHOOL])
    run_once(helpdesk_config)
    relay = parse(stack.wait_for(STUDENT, 2)[1])
    question = letter(STUDENT, "Re: " + relay["Subject"], "А во втором номере тоже через дискриминант?",
                      In_Reply_To=relay["Message-ID"], References=relay["Message-ID"])
    stack.send(question, STUDENT, [SCHOOL])
    run_once(helpdesk_config)
    followup = parse(stack.wait_for(TEACHER, 2)[1])
    stack.send(reply_to(followup, TEACHER, "Да."), TEACHER, [SCHOOL])
    run_once(helpdesk_config)
    assert len(stack.wait_for(STUDENT, 3)) == 3
    [appeal] = cli_json(helpdesk_config, "appeals", "list", capsys=capsys)
    assert appeal["status"] == "answered"


def test_a_handover_to_an_unknown_address_sends_nothing_to_the_student(helpdesk_config, stack, capsys):
    _, to_teacher = open_appeal(helpdesk_config, stack)
    stack.send(reply_to(to_teacher, TEACHER, "#передать v.lisitsina@lyceum21-edu.test\n"
                        "Ваш вопрос передан Валентине Павловне."), TEACHER, [SCHOOL])
    run_once(helpdesk_config)
    assert len(stack.messages(STUDENT)) == 1
    assert "не найден среди сотрудников" in text_of(parse(stack.wait_for(TEACHER, 2)[1]))
    [appeal] = cli_json(helpdesk_config, "appeals", "list", capsys=capsys)
    assert appeal["status"] == "open" and appeal["assignee"] == TEACHER


def test_a_reply_to_a_help_letter_gets_a_hint_not_a_suspicion(helpdesk_config, stack, capsys):
    _, to_teacher = open_appeal(helpdesk_config, stack)
    stack.send(reply_to(to_teacher, TEACHER, "#отложить"), TEACHER, [SCHOOL])
    run_once(helpdesk_config)
    help_letter = parse(stack.wait_for(TEACHER, 2)[1])
    stack.send(reply_to(help_letter, TEACHER, f"#передать {OTHER_TEACHER}"), TEACHER, [SCHOOL])
    run_once(helpdesk_config)
    assert stack.messages(DEPUTY) == []
    assert "Как ответить ученику" in parse(stack.wait_for(TEACHER, 3)[2])["Subject"]


def test_a_follow_up_while_the_teacher_is_away_goes_to_the_substitute(helpdesk_config, stack, capsys):
    from datetime import date, timedelta

    _, to_teacher = open_appeal(helpdesk_config, stack)
    ack = parse(stack.wait_for(STUDENT, 1)[0])
    today = date.today()
    assert main(["--config", str(helpdesk_config), "absence", "add", TEACHER, "--from", str(today),
                 "--to", str(today + timedelta(days=3)), "--substitute", OTHER_TEACHER,
                 "--note", "больничный"]) == 0
    more = letter(STUDENT, "Re: " + ack["Subject"], "И ещё: номер 213 тоже не получается.",
                  In_Reply_To=ack["Message-ID"], References=ack["Message-ID"])
    stack.send(more, STUDENT, [SCHOOL])
    run_once(helpdesk_config)
    [appeal] = cli_json(helpdesk_config, "appeals", "list", capsys=capsys)
    assert appeal["assignee"] == OTHER_TEACHER
    got = [parse(raw) for raw in stack.wait_for(OTHER_TEACHER, 2)]
    assert "квадратные уравнения" in text_of(got[0]) and "отсутствует" in text_of(got[0])
    assert "номер 213" in text_of(got[1])
    assert len(stack.messages(TEACHER)) == 1  # only the original appeal, before the absence
