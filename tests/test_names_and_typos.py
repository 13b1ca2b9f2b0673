"""Diminutive first names, roster subject names with remarks, typos in cue words (pure)."""
from __future__ import annotations

import pytest

from helpdesk.domain import Assignment, ParsedLetter, Roster, StaffMember, Student
from helpdesk.routing.router import route
from helpdesk.understand.classify import classify
from helpdesk.understand.lexicon import default_lexicon, default_nicknames

D = "school.test"
KIDS = (
    Student(f"sonya@{D}", "Кузнецова Софья Сергеевна", "5А", (f"mama@{D}",)),
    Student(f"petya@{D}", "Кузнецов Пётр Сергеевич", "7Б", (f"mama@{D}",)),
    Student(f"tema@{D}", "Орлов Артём Игоревич", "6В", (f"orlova@{D}",)),
    Student(f"ksenia@{D}", "Орлова Ксения Игоревна", "9Б", (f"orlova@{D}",)),
    Student(f"dasha@{D}", "Иванова Дарья Михайловна", "7Б"),
)
STAFF = (
    StaffMember(f"deputy@{D}", "Кравченко Ольга Петровна", frozenset({"deputy"})),
    StaffMember(f"it@{D}", "Мельников Денис Олегович", frozenset({"it"})),
    StaffMember(f"kiseleva@{D}", "Киселёва Анна Сергеевна", frozenset({"teacher"})),
    StaffMember(f"dyakova@{D}", "Дьякова Вера Олеговна", frozenset({"teacher"})),
    StaffMember(f"frolov@{D}", "Фролов Виктор Павлович", frozenset({"teacher"})),
    StaffMember(f"lebedeva@{D}", "Лебедева Марина Андреевна", frozenset({"teacher"})),
)
ROSTER = Roster(
    students=KIDS,
    staff=STAFF,
    class_teachers={"5А": f"kiseleva@{D}", "6В": f"kiseleva@{D}", "7Б": f"frolov@{D}", "9Б": f"lebedeva@{D}"},
    assignments=(
        Assignment("7Б", "иностранный язык (английский)", f"kiseleva@{D}"),
        Assignment("7Б", "второй иностранный язык (немецкий)", f"dyakova@{D}"),
        Assignment("7Б", "физика", f"frolov@{D}"),
        Assignment("9Б", "химия", f"lebedeva@{D}"),
        Assignment("9Б", "физика", f"frolov@{D}"),
        Assignment("5А", "иностранный язык (английский)", f"kiseleva@{D}"),
    ),
)


def letter(sender: str, subject: str, text: str) -> ParsedLetter:
    return ParsedLetter(message_id="<m@x>", in_reply_to=None, references=(), from_addr=sender, from_name="",
                        to=(f"school@{D}",), subject=subject, date=None, text=text, html=None, headers={})


def test_nickname_table_is_normalised():
    table = default_nicknames()
    assert table["петя"] == {"петр"} and table["саша"] == {"александр", "александра"}
    assert "тема" in table  # Тёма, written with е


@pytest.mark.parametrize("text, child", [
    ("Моя дочь Соня не может зайти в электронный дневник.", f"sonya@{D}"),
    ("Пете задали задачу по физике, он не понимает.", f"petya@{D}"),
    ("С Петей занимались весь вечер, но задачи по физике не получаются.", f"petya@{D}"),
])
def test_parent_names_a_child_by_a_diminutive(text, child):
    c = classify(letter(f"mama@{D}", "вопрос", text), ROSTER)
    assert c.student and c.student.email == child


def test_a_nickname_that_is_an_everyday_word_needs_a_capital_letter():
    # "тема" (topic) is also Тёма (Артём): a lower-case "тема" is not a child's name
    c = classify(letter(f"orlova@{D}", "вопрос", "Какая тема контрольной? Ксюша не знает, что повторять."),
                 ROSTER)
    assert c.student and c.student.email == f"ksenia@{D}"
    c = classify(letter(f"orlova@{D}", "вопрос", "Здравствуйте, у Тёмы не открывается дневник."), ROSTER)
    assert c.student and c.student.email == f"tema@{D}"


def test_unknown_sender_names_a_pupil_by_diminutive_and_surname():
    c = classify(letter("someone@mail.test", "не грузит",
                        "привет, это Даша Иванова, у меня не грузится видеоурок"), ROSTER)
    assert (c.class_name, c.student.email if c.student else None) == ("7Б", f"dasha@{D}")


@pytest.mark.parametrize("name, canonical", [
    ("Иностранный язык (английский)", "английский язык"),
    ("Второй иностранный язык (немецкий)", "немецкий язык"),
    ("Английский язык (1 группа)", "английский язык"),
    ("Труд (технология)", "труд (технология)"),
    ("История России. Всеобщая история", "история"),
    ("Алгебра и начала математического анализа", "алгебра"),
])
def test_roster_subject_names_with_remarks(name, canonical):
    assert default_lexicon().canonical(name) == canonical


def test_second_foreign_language_goes_to_its_own_teacher():
    c = classify(letter(f"petya@{D}", "немецкий", "Не понимаю Perfekt, когда haben, а когда sein?"), ROSTER)
    d = route(c, ROSTER)
    assert (d.assignee, d.subject) == (f"dyakova@{D}", "второй иностранный язык (немецкий)")
    c = classify(letter(f"petya@{D}", "англ", "не понимаю present perfect"), ROSTER)
    assert route(c, ROSTER).assignee == f"kiseleva@{D}"


def test_a_four_letter_typo_of_a_subject_name():
    c = classify(letter(f"ksenia@{D}", "хмия", "не могу уравнять реакцию, коэффициенты не сходятся"), ROSTER)
    assert c.subject == "химия"


def test_a_typo_in_a_long_category_cue():
    c = classify(letter(f"ksenia@{D}", "физика", "здраствуйте а можна мне консультацыю по физике"), ROSTER)
    assert c.category == "consultation"
    assert any("консультацыю (с опечаткой)" in r for r in c.reasons)
