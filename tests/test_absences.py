"""The router's second and third steps: low-confidence triage and staff absences (pure)."""
from __future__ import annotations

from datetime import date

import pytest

from helpdesk.decide import decide
from helpdesk.domain import Absence, Classification, ParsedLetter, Roster
from helpdesk.routing.router import TRIAGE_CONFIDENCE, initials, route, russian_date
from tests.test_router import (
    DEPUTY,
    DIRECTOR,
    GORBUNOVA,
    IT,
    KARPENKO,
    LISITSYNA,
    ROSTER,
    SHUBINA,
    STAFF,
    VOROBYOV,
    cls_,
)

DAY = date(2026, 12, 1)


def away(who, *, start=date(2026, 11, 30), end=date(2026, 12, 5), substitute=None, note=""):
    return Absence(who, start, end, substitute, note)


def test_helpers_write_russian():
    assert initials("Карпенко Дмитрий Анатольевич") == "Карпенко Д. А."
    assert russian_date(date(2026, 12, 5), relative_to=DAY) == "5 декабря"
    assert russian_date(date(2027, 1, 5), relative_to=DAY) == "5 января 2027 г."


# --------------------------------------------------------------------------- absences

def test_absent_teacher_with_substitute():
    d = route(cls_("subject_help", "7В", "алгебра"), ROSTER,
              absences=(away(KARPENKO, substitute=LISITSYNA, note="больничный"),), on=DAY)
    assert (d.assignee, d.subject, d.triage) == (LISITSYNA, "алгебра", False)
    assert d.reasons[-1] == ("Карпенко Д. А. отсутствует до 5 декабря (больничный); обращение передано "
                             "замещающему сотруднику — Лисицына Валентина Павловна.")


def test_absent_teacher_without_substitute_goes_to_class_teacher():
    d = route(cls_("subject_help", "7В", "алгебра"), ROSTER, absences=(away(KARPENKO),), on=DAY)
    assert d.assignee == SHUBINA
    assert "классному руководителю 7В — Шубина Мария Константиновна" in d.reasons[-1]


def test_absent_class_teacher_hands_over_to_the_deputy():
    d = route(cls_("organizational", "7В"), ROSTER, absences=(away(SHUBINA, note="курсы"),), on=DAY)
    assert d.assignee == DEPUTY
    assert d.reasons[-1].startswith("Шубина М. К. отсутствует до 5 декабря (курсы); обращение передано "
                                    "заместителю директора — Ковалевская")


def test_a_group_colleague_comes_before_the_class_teacher():
    d = route(cls_("subject_help", "10Б", "английский язык"), ROSTER, absences=(away(GORBUNOVA),), on=DAY)
    assert d.assignee == SHUBINA
    assert "другому учителю предмета «английский язык» в 10Б" in d.reasons[-1]


def test_absent_substitute_is_skipped_and_said_so():
    absences = (away(KARPENKO, substitute=LISITSYNA), away(LISITSYNA))
    d = route(cls_("subject_help", "7В", "алгебра"), ROSTER, absences=absences, on=DAY)
    assert d.assignee == SHUBINA
    assert "(Лисицына В. П. тоже отсутствует)" in d.reasons[-1]


def test_absent_it_goes_to_the_deputy_and_absent_deputy_to_the_director():
    d = route(cls_("technical", None, role="parent"), ROSTER, absences=(away(IT),), on=DAY)
    assert d.assignee == DEPUTY
    d = route(cls_("complaint", "7В"), ROSTER, absences=(away(DEPUTY),), on=DAY)
    assert d.assignee == DIRECTOR
    assert "директору" in d.reasons[-1]


@pytest.mark.parametrize("day, expected", [
    (date(2026, 11, 29), KARPENKO),  # the day before
    (date(2026, 11, 30), LISITSYNA),  # the first day counts
    (date(2026, 12, 5), LISITSYNA),  # and the last
    (date(2026, 12, 6), KARPENKO),
])
def test_absence_period_includes_both_ends(day, expected):
    d = route(cls_("subject_help", "7В", "алгебра"), ROSTER,
              absences=(away(KARPENKO, substitute=LISITSYNA),), on=day)
    assert d.assignee == expected


def test_without_a_day_absences_are_not_consulted():
    d = route(cls_("subject_help", "7В", "алгебра"), ROSTER, absences=(away(KARPENKO),))
    assert d.assignee == KARPENKO


def test_when_everybody_is_away_the_assignee_stays():
    everybody = tuple(away(m.email) for m in STAFF)
    d = route(cls_("subject_help", "7В", "алгебра"), ROSTER, absences=everybody, on=DAY)
    assert d.assignee == KARPENKO and "тоже отсутствуют" in d.reasons[-1]


def test_decide_passes_absences_and_the_day():
    roster = Roster(students=ROSTER.students, staff=ROSTER.staff, class_teachers=ROSTER.class_teachers,
                    assignments=ROSTER.assignments)
    letter = ParsedLetter(
        message_id="<a@x>", in_reply_to=None, references=(), from_addr="alena@school.test", from_name="",
        to=("school@school.test",), subject="алгебра", date=None,
        text="Не понимаю, как решать квадратные уравнения, помогите пожалуйста.", html=None, headers={},
    )
    plain = decide(letter, roster)
    assert plain.assignee == KARPENKO
    v = decide(letter, roster, absences=(away(KARPENKO, substitute=LISITSYNA),), today=DAY)
    assert v.assignee == LISITSYNA
    assert any("отсутствует до 5 декабря" in r for r in v.reasons)


# --------------------------------------------------------------------------- low confidence

def low(category, class_name, subject=None, confidence=0.3):
    return Classification(sender_role="student", student=None, class_name=class_name, subject=subject,
                          category=category, reasons=("…",), confidence=confidence)


def test_low_confidence_subject_letter_goes_to_class_teacher_for_triage():
    d = route(low("subject_help", "7В", "физика"), ROSTER)
    assert (d.assignee, d.triage, d.subject) == (SHUBINA, True, "физика")
    assert "Уверенность разбора низкая (0,30 при пороге 0,40)" in d.reasons[-1]
    assert "Воробьёв Константин Ильич" in d.reasons[-1]  # whom the rules had chosen


def test_low_confidence_without_class_goes_to_the_deputy():
    d = route(low("technical", None), ROSTER)
    assert (d.assignee, d.triage) == (DEPUTY, True)


@pytest.mark.parametrize("category, class_name, assignee", [
    ("complaint", "7В", DEPUTY),  # complaints stay with the deputy
    ("organizational", "7В", SHUBINA),  # already with the class teacher
])
def test_low_confidence_leaves_letters_already_with_triage_people(category, class_name, assignee):
    d = route(low(category, class_name), ROSTER)
    assert d.assignee == assignee and not any("Уверенность" in r for r in d.reasons)


def test_confidence_at_threshold_is_trusted():
    d = route(low("subject_help", "7В", "физика", confidence=TRIAGE_CONFIDENCE), ROSTER)
    assert (d.assignee, d.triage) == (VOROBYOV, False)


def test_low_confidence_then_absence():
    d = route(low("subject_help", "7В", "физика"), ROSTER, absences=(away(SHUBINA),), on=DAY)
    assert (d.assignee, d.triage) == (DEPUTY, True)
    assert "Уверенность" in d.reasons[-2] and "Шубина М. К. отсутствует" in d.reasons[-1]
