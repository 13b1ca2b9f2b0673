"""Unit tests for helpdesk.routing.router: every branch of the policy's routing table."""
from __future__ import annotations

import itertools

import pytest

from helpdesk.domain import CATEGORIES, Assignment, Classification, ParsedLetter, Roster, StaffMember, Student
from helpdesk.routing.router import Router, RoutingError, route
from helpdesk.understand.classify import classify

D = "school.test"
DEPUTY, IT, DIRECTOR = f"deputy@{D}", f"it@{D}", f"director@{D}"
KARPENKO, LISITSYNA, SHUBINA = f"karpenko@{D}", f"lisitsyna@{D}", f"shubina@{D}"
GORBUNOVA, VOROBYOV, SEMENOVA = f"gorbunova@{D}", f"vorobyov@{D}", f"semenova@{D}"


def _assign(cls, *pairs):
    return tuple(Assignment(cls, subj, t) for subj, t in pairs)


STAFF = (
    StaffMember(DIRECTOR, "Григорьев Олег Викторович", frozenset({"director"})),
    StaffMember(DEPUTY, "Ковалевская Нина Аркадьевна", frozenset({"deputy"})),
    StaffMember(IT, "Савельев Артур Ринатович", frozenset({"it"})),
    StaffMember(KARPENKO, "Карпенко Дмитрий Анатольевич", frozenset({"teacher"})),
    StaffMember(LISITSYNA, "Лисицына Валентина Павловна", frozenset({"teacher"})),
    StaffMember(SHUBINA, "Шубина Мария Константиновна", frozenset({"teacher"})),
    StaffMember(GORBUNOVA, "Горбунова Алла Евгеньевна", frozenset({"teacher"})),
    StaffMember(VOROBYOV, "Воробьёв Константин Ильич", frozenset({"teacher"})),
    StaffMember(SEMENOVA, "Семёнова Оксана Юрьевна", frozenset({"teacher"})),
)
ASSIGNMENTS = (
    _assign("5В", ("математика", KARPENKO), ("английский язык", GORBUNOVA))
    + _assign("6Б", ("математика", KARPENKO), ("русский язык", SEMENOVA), ("английский язык", GORBUNOVA))
    + _assign("7В", ("алгебра", KARPENKO), ("геометрия", LISITSYNA), ("немецкий язык", SHUBINA),
              ("физика", VOROBYOV))
    + _assign("8А", ("английский язык", GORBUNOVA), ("немецкий язык", SHUBINA))
    + _assign("10Б", ("английский язык", GORBUNOVA), ("английский язык", SHUBINA), ("геометрия", LISITSYNA))
)
CLASS_TEACHERS = {"5В": KARPENKO, "6Б": SEMENOVA, "7В": SHUBINA, "8А": GORBUNOVA, "10Б": VOROBYOV}
STUDENTS = (
    Student(f"tim@{D}", "Фомин Тимофей Сергеевич", "5В", (f"fomina@{D}",)),
    Student(f"alena@{D}", "Фомина Алёна Сергеевна", "7В", (f"fomina@{D}",)),
)
ROSTER = Roster(students=STUDENTS, staff=STAFF, class_teachers=CLASS_TEACHERS, assignments=ASSIGNMENTS)


def cls_(category, class_name, subject=None, role="student"):
    return Classification(sender_role=role, student=None, class_name=class_name, subject=subject,
                          category=category, reasons=("…",), confidence=0.9)


# --------------------------------------------------------------------------- subject_help / consultation

@pytest.mark.parametrize("class_name, subject, assignee, matched", [
    ("7В", "физика", VOROBYOV, "физика"),
    ("7В", "геометрия", LISITSYNA, "геометрия"),
    ("7В", "математика", KARPENKO, "алгебра"),  # математика -> алгебра where there is no математика
    ("5В", "алгебра", KARPENKO, "математика"),  # алгебра -> математика where there is only математика
    ("5В", "геометрия", KARPENKO, "математика"),
    ("7В", "иностранный язык", SHUBINA, "немецкий язык"),  # the class's only foreign language
    ("5В", "иностранный язык", GORBUNOVA, "английский язык"),
])
def test_subject_help_goes_to_the_subject_teacher(class_name, subject, assignee, matched):
    d = route(cls_("subject_help", class_name, subject), ROSTER)
    assert (d.assignee, d.subject, d.triage) == (assignee, matched, False)
    assert d.reasons[-1].startswith("Назначено: учитель предмета")


def test_subject_the_class_does_not_study_goes_to_class_teacher():
    d = route(cls_("subject_help", "5В", "физика"), ROSTER)
    assert (d.assignee, d.subject, d.triage) == (KARPENKO, "физика", False)
    assert any("не изучает" in r for r in d.reasons)


def test_subject_question_without_subject_goes_to_class_teacher():
    d = route(cls_("subject_help", "7В", None), ROSTER)
    assert (d.assignee, d.subject) == (SHUBINA, None)
    assert any("классный руководитель" in r for r in d.reasons)


def test_foreign_language_in_class_with_two_languages_goes_to_class_teacher():
    d = route(cls_("subject_help", "8А", "иностранный язык"), ROSTER)
    assert d.assignee == GORBUNOVA  # class teacher of 8А
    assert any("несколько" in r for r in d.reasons)


def test_consultation_with_and_without_subject():
    assert route(cls_("consultation", "7В", "физика"), ROSTER).assignee == VOROBYOV
    d = route(cls_("consultation", "7В", None), ROSTER)
    assert d.assignee == SHUBINA
    assert any("Консультация без предмета" in r for r in d.reasons)


def test_two_teachers_for_one_class_and_subject_first_in_roster_order():
    d = route(cls_("subject_help", "10Б", "английский язык"), ROSTER)
    assert d.assignee == GORBUNOVA
    assert any("несколько учителей" in r and "первый по списку" in r for r in d.reasons)
    flipped = Roster(students=STUDENTS, staff=STAFF, class_teachers=CLASS_TEACHERS,
                     assignments=tuple(reversed(ASSIGNMENTS)))
    assert route(cls_("subject_help", "10Б", "английский язык"), flipped).assignee == SHUBINA


# --------------------------------------------------------------------------- class-teacher categories

@pytest.mark.parametrize("category, subject", [
    ("organizational", "алгебра"),  # the subject label is still matched to the class
    ("paper_materials", None),  # not about a subject: the label is dropped
    ("other", None),
])
def test_class_teacher_categories(category, subject):
    d = route(cls_(category, "7В", "математика"), ROSTER)
    assert (d.assignee, d.triage) == (SHUBINA, False)
    assert d.subject == subject


def test_technical_letter_carries_no_subject():
    d = route(cls_("technical", "7В", "история"), ROSTER)
    assert (d.assignee, d.subject) == (IT, None)


def test_consultation_timetable_is_organizational_so_class_teacher():
    assert route(cls_("organizational", "7В", "алгебра"), ROSTER).assignee == SHUBINA


def test_other_without_class_goes_to_deputy_without_triage():
    d = route(cls_("other", None, role="unknown"), ROSTER)
    assert (d.assignee, d.triage) == (DEPUTY, False)


@pytest.mark.parametrize("category, subject", [
    ("subject_help", "русский язык"), ("consultation", "русский язык"),
    ("organizational", "русский язык"), ("paper_materials", None),
])
def test_no_class_means_triage_to_deputy(category, subject):
    d = route(cls_(category, None, "русский язык", role="unknown"), ROSTER)
    assert (d.assignee, d.triage, d.subject) == (DEPUTY, True, subject)
    assert any("Класс" in r and "не определён" in r for r in d.reasons)


def test_class_without_class_teacher_goes_to_deputy_triage():
    d = route(cls_("organizational", "9Г"), ROSTER)
    assert (d.assignee, d.triage) == (DEPUTY, True)


# --------------------------------------------------------------------------- technical / complaint

def test_technical_goes_to_it_without_class():
    d = route(cls_("technical", None, role="parent"), ROSTER)
    assert (d.assignee, d.triage) == (IT, False)


def test_technical_without_it_staff_goes_to_deputy():
    no_it = Roster(students=STUDENTS, staff=tuple(s for s in STAFF if "it" not in s.roles),
                   class_teachers=CLASS_TEACHERS, assignments=ASSIGNMENTS)
    d = route(cls_("technical", "7В"), no_it)
    assert (d.assignee, d.triage) == (DEPUTY, False)
    assert any("it" in r for r in d.reasons)


def test_complaint_goes_to_deputy_and_keeps_subject():
    d = route(cls_("complaint", "7В", "математика"), ROSTER)
    assert (d.assignee, d.subject, d.triage) == (DEPUTY, "алгебра", False)


# --------------------------------------------------------------------------- fallbacks

def test_director_when_there_is_no_deputy():
    roster = Roster(students=STUDENTS, staff=tuple(s for s in STAFF if "deputy" not in s.roles),
                    class_teachers=CLASS_TEACHERS, assignments=ASSIGNMENTS)
    assert route(cls_("complaint", "7В"), roster).assignee == DIRECTOR


def test_roster_without_staff_raises():
    with pytest.raises(RoutingError):
        route(cls_("complaint", "7В"), Roster())


def test_never_empty_assignee():
    router = Router(ROSTER)
    classes = [None, "5В", "7В", "8А", "10Б", "11Я"]
    subjects = [None, "математика", "алгебра", "физика", "иностранный язык", "английский язык", "черчение"]
    for category, class_name, subject in itertools.product(CATEGORIES, classes, subjects):
        d = router.route(cls_(category, class_name, subject))
        assert d.assignee and ROSTER.staff_member(d.assignee), (category, class_name, subject)
        assert d.reasons


def test_parent_with_two_children_not_named_is_triaged_end_to_end():
    item = ParsedLetter(
        message_id=None, in_reply_to=None, references=(), from_addr=f"fomina@{D}", from_name="",
        to=(), subject="задание", date=None, text="Ребёнок не понимает задачу по математике.", html=None,
        headers={},
    )
    c = classify(item, ROSTER)
    d = route(c, ROSTER)
    assert (c.sender_role, c.class_name, d.assignee, d.triage) == ("parent", None, DEPUTY, True)


def test_groups_written_as_separate_roster_subject_names():
    roster = Roster(
        staff=STAFF, class_teachers={"10Б": VOROBYOV},
        assignments=(Assignment("10Б", "Английский язык (1 группа)", GORBUNOVA),
                     Assignment("10Б", "Английский язык (2 группа)", SHUBINA)),
    )
    d = route(cls_("subject_help", "10Б", "английский язык"), roster)
    assert (d.assignee, d.subject) == (GORBUNOVA, "Английский язык (1 группа)")
    assert any("несколько учителей" in r for r in d.reasons)
