"""Classification and routing against the labelled development corpus.

Every letter whose kind is "appeal" is parsed, classified and routed; category,
class, subject (after matching) and assignee are compared with cases.json. The
accuracy per field is printed (run with ``-s``) and must stay above a floor.
Nothing here is tuned to single letters: a failure is counted, not special-cased.
"""
from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest

from helpdesk.domain import Assignment, Roster, StaffMember, Student
from helpdesk.routing.router import route
from helpdesk.understand.classify import classify
from helpdesk.understand.parse import parse_letter

HERE = Path(__file__).parent
CANDIDATES = (HERE / "data" / "letters-dev", Path("/work/shared/corpus/letters-dev"))
CORPUS = next((p for p in CANDIDATES if (p / "cases.json").exists()), CANDIDATES[0])

FLOORS = {"category": 0.90, "class": 0.90, "subject": 0.90, "assignee": 0.90, "sender_role": 0.95}


def _rows(name: str) -> list[dict[str, str]]:
    with open(CORPUS / "roster" / name, encoding="utf-8-sig", newline="") as fh:
        return list(csv.DictReader(fh))


def _split(value: str) -> tuple[str, ...]:
    return tuple(v.strip().lower() for v in (value or "").split(";") if v.strip())


def load_roster() -> Roster:
    """A minimal reader for the corpus CSVs (the product reader lives in helpdesk.roster)."""
    return Roster(
        students=tuple(Student(r["email"].strip().lower(), r["full_name"].strip(), r["class"].strip(),
                               _split(r.get("parent_emails", ""))) for r in _rows("students.csv")),
        staff=tuple(StaffMember(r["email"].strip().lower(), r["full_name"].strip(), frozenset(_split(r["role"])))
                    for r in _rows("staff.csv")),
        class_teachers={r["class"].strip(): r["class_teacher_email"].strip().lower() for r in _rows("classes.csv")},
        assignments=tuple(Assignment(r["class"].strip(), r["subject"].strip(), r["teacher_email"].strip().lower())
                          for r in _rows("assignments.csv")),
    )


def appeal_cases() -> list[dict]:
    cases = json.loads((CORPUS / "cases.json").read_text(encoding="utf-8"))
    return [c for c in cases if c["kind"] == "appeal"]


pytestmark = pytest.mark.skipif(not (CORPUS / "cases.json").exists(), reason="development corpus not found")


def test_corpus_accuracy_per_field():
    roster = load_roster()
    cases = appeal_cases()
    hits = {field: 0 for field in FLOORS}
    failures: list[str] = []
    for case in cases:
        letter = parse_letter((CORPUS / "cases" / case["file"]).read_bytes())
        c = classify(letter, roster)
        d = route(c, roster)
        got = {
            "category": c.category == case["category"],
            "class": c.class_name == case["class"],
            "subject": d.subject == case["subject"],
            "assignee": d.assignee in case["assignee"],
            "sender_role": c.sender_role == case["sender_role"],
        }
        for field, ok in got.items():
            hits[field] += ok
        assert d.assignee, case["file"]
        assert 0.0 <= c.confidence <= 1.0
        if not all(got.values()):
            wrong = ", ".join(f for f, ok in got.items() if not ok)
            failures.append(f"  {case['file']}: {wrong} | got {c.category}/{c.class_name}/{d.subject}/"
                            f"{d.assignee}; want {case['category']}/{case['class']}/{case['subject']}/"
                            f"{case['assignee']}")
    n = len(cases)
    print(f"\nCorpus routing accuracy on {n} appeals ({CORPUS}):")
    for field, hit in hits.items():
        print(f"  {field:12} {hit:3}/{n} = {hit / n:.1%}")
    if failures:
        print("Failures:")
        print("\n".join(failures))
    for field, floor in FLOORS.items():
        assert hits[field] / n >= floor, f"{field}: {hits[field]}/{n} below {floor:.0%}"
