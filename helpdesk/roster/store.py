"""Saving a roster into the database and loading it back as a ``Roster`` snapshot.

An import is one transaction: it either replaces the school's picture whole or
changes nothing. People missing from a new import are marked inactive rather
than deleted, so old appeals still show who they were.
"""
from __future__ import annotations

from dataclasses import dataclass

from ..domain import Assignment, Roster, StaffMember, Student
from ..store.models import Parent, Person, SchoolClass, TeachingAssignment, database


@dataclass(frozen=True)
class ImportSummary:
    students: int
    staff: int
    classes: int
    assignments: int
    added: int
    updated: int
    deactivated: int

    def __str__(self) -> str:
        return (
            f"{self.students} students, {self.staff} staff, {self.classes} classes, "
            f"{self.assignments} assignments ({self.added} people added, "
            f"{self.updated} updated, {self.deactivated} deactivated)"
        )


def save_roster(roster: Roster) -> ImportSummary:
    with database.atomic():
        existing = {p.email: p for p in Person.select()}
        added = updated = 0
        people: dict[str, Person] = {}

        def upsert(email: str, **fields) -> Person:
            nonlocal added, updated
            person = existing.get(email)
            if person is None:
                person = Person.create(email=email, **fields)
                added += 1
            else:
                changed = any(getattr(person, k) != v for k, v in fields.items())
                if changed:
                    for k, v in fields.items():
                        setattr(person, k, v)
                    person.save()
                    updated += 1
            people[email] = person
            return person

        for member in roster.staff:
            upsert(
                member.email,
                full_name=member.full_name,
                kind="staff",
                roles=";".join(sorted(member.roles)),
                class_name=None,
                active=True,
            )
        for student in roster.students:
            upsert(
                student.email,
                full_name=student.full_name,
                kind="student",
                roles="",
                class_name=student.class_name,
                active=True,
            )
        gone = [p.id for email, p in existing.items() if email not in people and p.active]
        if gone:
            Person.update(active=False).where(Person.id.in_(gone)).execute()

        Parent.delete().execute()
        parent_rows = [
            {"student": people[s.email].id, "email": p, "position": i}
            for s in roster.students
            for i, p in enumerate(s.parent_emails)
        ]
        if parent_rows:
            Parent.insert_many(parent_rows).execute()

        TeachingAssignment.delete().execute()
        SchoolClass.delete().execute()
        classes: dict[str, SchoolClass] = {}
        for name in roster.classes():
            teacher = roster.class_teacher(name)
            classes[name] = SchoolClass.create(
                name=name, class_teacher=people[teacher].id if teacher in people else None
            )
        rows = [
            {
                "school_class": classes[a.class_name].id,
                "subject": a.subject,
                "teacher": people[a.teacher_email].id,
                "position": i,
            }
            for i, a in enumerate(roster.assignments)
        ]
        if rows:
            TeachingAssignment.insert_many(rows).execute()
    return ImportSummary(
        students=len(roster.students),
        staff=len(roster.staff),
        classes=len(classes),
        assignments=len(rows),
        added=added,
        updated=updated,
        deactivated=len(gone),
    )


def load_roster() -> Roster:
    """The active roster as a plain snapshot for the pure stages."""
    parents: dict[int, list[str]] = {}
    for p in Parent.select().order_by(Parent.student, Parent.position):
        parents.setdefault(p.student_id, []).append(p.email)
    students: list[Student] = []
    staff: list[StaffMember] = []
    emails: dict[int, str] = {}
    for person in Person.select().where(Person.active == True).order_by(Person.id):  # noqa: E712
        emails[person.id] = person.email
        if person.kind == "student":
            students.append(
                Student(
                    email=person.email,
                    full_name=person.full_name,
                    class_name=person.class_name or "",
                    parent_emails=tuple(parents.get(person.id, ())),
                )
            )
        else:
            staff.append(
                StaffMember(
                    email=person.email,
                    full_name=person.full_name,
                    roles=frozenset(r for r in person.roles.split(";") if r),
                )
            )
    class_names = {c.id: c.name for c in SchoolClass.select()}
    class_teachers = {
        c.name: emails[c.class_teacher_id]
        for c in SchoolClass.select()
        if c.class_teacher_id in emails
    }
    assignments = tuple(
        Assignment(class_names[a.school_class_id], a.subject, emails[a.teacher_id])
        for a in TeachingAssignment.select().order_by(TeachingAssignment.position)
        if a.teacher_id in emails
    )
    return Roster(
        students=tuple(students),
        staff=tuple(staff),
        class_teachers=class_teachers,
        assignments=assignments,
    )
