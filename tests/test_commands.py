"""Teachers' # commands, parsed without a server."""
from __future__ import annotations

from datetime import date, datetime

from helpdesk.compose import is_female
from helpdesk.understand.commands import parse_reply

TODAY = date(2026, 12, 20)


def one(text: str):
    reply = parse_reply(text, TODAY)
    assert len(reply.commands) == 1
    return reply.commands[0], reply.text


def test_words_are_matched_by_stem():
    for word, name in (("#закрыть", "close"), ("#Закрыто", "close"), ("#передаю", "reassign"),
                       ("#переназначить", "reassign"), ("#ждем", "wait"), ("#Ждём", "wait"),
                       ("#консультации", "consultation"), ("#отложить", "unknown")):
        command, _ = one(f"{word} x@school.test 2026-12-22 15:00")
        assert command.name == name, word


def test_command_lines_are_taken_out_of_the_text():
    reply = parse_reply("Разберём на консультации.\n#консультация 22.12.2026 15:00 Сферум\nДо встречи!", TODAY)
    assert reply.text == "Разберём на консультации.\nДо встречи!"
    [command] = reply.commands
    assert command.when == datetime(2026, 12, 22, 15, 0) and command.place == "Сферум"


def test_day_and_month_alone_mean_the_coming_date():
    command, _ = one("#консультация 12.01 15:00 школа, каб. 21")
    assert command.when == datetime(2027, 1, 12, 15, 0) and command.place == "школа, каб. 21"


def test_a_past_or_broken_date_is_an_error_for_the_teacher():
    assert "уже прошла" in one("#консультация 2026-12-01 15:00")[0].error
    assert "не понял" in one("#консультация завтра днём")[0].error
    assert "укажите адрес" in one("#передать Валентине Павловне")[0].error


def test_close_keeps_its_note_and_hashes_in_text_are_not_commands():
    command, text = one("#закрыть ответил по телефону")
    assert command.argument == "ответил по телефону" and text == ""
    assert parse_reply("Задача №5, ответ 12.\n## не команда", TODAY).commands == ()


def test_gender_from_the_patronymic():
    assert is_female("Панова Ярослава Игоревна") and not is_female("Кузьмин Лев Дмитриевич")
    assert is_female("Абдуллаева Сабина Эльдаровна") and not is_female("Лев")
