"""Reading the school roster from CSV files into a ``domain.Roster`` (no database).

The directory holds up to four files:

- ``staff.csv``: email, full_name, role. Required. Roles: teacher, deputy,
  director, it (several separated by ``;`` or ``,``; a few Russian names such as
  "учитель" or "завуч" are accepted too).
- ``classes.csv``: class, class_teacher_email. Required as soon as students.csv
  or assignments.csv is present, since they name classes.
- ``students.csv``: email, full_name, class, parent_emails (optional column;
  addresses separated by ``;``, ``,`` or spaces).
- ``assignments.csv``: class, subject, teacher_email. Two teachers for the same
  class and subject are fine (groups); the same row twice is an error.

students.csv and assignments.csv are optional so that a school can import its
staff first; their absence is reported through ``warnings``.

Files may be UTF-8 (with or without BOM), UTF-16 with BOM, or windows-1251, and
delimited by commas, semicolons or tabs (as Russian Excel writes them); the
delimiter is taken from the header line. Header names are matched ignoring case,
spaces, ``_``/``-``, and a few Russian aliases ("класс", "предмет", ...); extra
columns are ignored. Blank lines are skipped.

Every problem is collected before ``RosterError`` is raised; each is
``"students.csv:7: reason"`` with the physical line number (the header is line 1).
"""
from __future__ import annotations

import csv
import io
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

from ..domain import STAFF_ROLES, Assignment, Roster, StaffMember, Student, normalize_class

STUDENTS, STAFF, CLASSES, ASSIGNMENTS = "students.csv", "staff.csv", "classes.csv", "assignments.csv"

_EMAIL_RE = re.compile(
    r"^[a-z0-9!#$%&'*+/=?^_`{|}~-]+(\.[a-z0-9!#$%&'*+/=?^_`{|}~-]+)*"
    r"@([^\W_]([\w-]*[^\W_])?\.)+([^\W\d_]{2,}|xn--[a-z0-9-]+)$"
)
_LIST_SPLIT_RE = re.compile(r"[;,\s]+")

# Accepted header names, compared after _header_key().
_COLUMNS: dict[str, tuple[str, ...]] = {
    "email": ("email", "e mail", "mail", "почта", "адрес", "электронная почта", "эл почта", "email адрес"),
    "full_name": ("full name", "name", "фио", "имя", "полное имя"),
    "class": ("class", "class name", "класс"),
    "parent_emails": (
        "parent emails", "parent email", "parents", "parents emails",
        "родители", "почта родителей", "email родителей", "e mail родителей",
    ),
    "role": ("role", "roles", "роль", "роли"),
    "class_teacher_email": (
        "class teacher email", "class teacher", "классный руководитель", "email классного руководителя",
    ),
    "subject": ("subject", "предмет"),
    "teacher_email": ("teacher email", "teacher", "учитель", "email учителя", "e mail учителя"),
}

# Columns each file must have, and columns it may have.
_REQUIRED_COLUMNS = {
    STUDENTS: ("email", "full_name", "class"),
    STAFF: ("email", "full_name", "role"),
    CLASSES: ("class", "class_teacher_email"),
    ASSIGNMENTS: ("class", "subject", "teacher_email"),
}
_OPTIONAL_COLUMNS = {STUDENTS: ("parent_emails",)}
# List-valued columns: when one is last and a row has extra cells (a ';' list not
# quoted in a ';'-delimited file), the extra cells belong to it.
_LIST_COLUMNS = ("parent_emails", "role")

_ROLE_ALIASES = {
    "учитель": "teacher",
    "педагог": "teacher",
    "завуч": "deputy",
    "заместитель директора": "deputy",
    "зам директора": "deputy",
    "директор": "director",
    "ит": "it",
}


class RosterError(Exception):
    """The roster files are wrong; ``errors`` lists every problem as "file:line: reason"."""

    def __init__(self, errors: list[str]) -> None:
        self.errors = list(errors)
        super().__init__("\n".join(self.errors))


@dataclass(frozen=True)
class _Row:
    line: int  # physical line where the record starts
    values: dict[str, str]  # canonical column -> stripped text ("" when absent)


class _Errors:
    def __init__(self) -> None:
        self.items: list[str] = []

    def add(self, file: str, line: int | None, reason: str) -> None:
        self.items.append(f"{file}:{line}: {reason}" if line else f"{file}: {reason}")


# --------------------------------------------------------------------------- public


def read_roster(directory: str | os.PathLike[str], *, warnings: list[str] | None = None) -> Roster:
    """Read and check the CSV files in ``directory``.

    Raises RosterError with all problems found. Notes that are not errors (an
    optional file that is absent) are appended to ``warnings`` when a list is given.
    """
    folder = Path(directory)
    if not folder.is_dir():
        raise RosterError([f"{folder}: not a directory"])
    errors = _Errors()
    files = {name: _find(folder, name) for name in _REQUIRED_COLUMNS}
    notes = _check_presence(files, errors)
    if warnings is not None:
        warnings.extend(notes)
    tables = {name: _read_table(name, path, errors) for name, path in files.items() if path}
    # A file that could not be read at all is reported once; references to it
    # are then not checked (None), rather than reported on every row.
    usable = {name for name, rows in tables.items() if rows is not None}

    staff, listed_staff = _staff(_rows(tables, STAFF), _label(files, STAFF), errors)
    known_staff = listed_staff if STAFF in usable else None
    class_teachers, listed_classes = _classes(
        _rows(tables, CLASSES), _label(files, CLASSES), known_staff, errors
    )
    known_classes = listed_classes if CLASSES in usable else None
    students = _students(
        _rows(tables, STUDENTS), _label(files, STUDENTS), known_classes, listed_staff, errors
    )
    assignments = _assignments(
        _rows(tables, ASSIGNMENTS), _label(files, ASSIGNMENTS), known_classes, known_staff, errors
    )
    if errors.items:
        raise RosterError(errors.items)
    return Roster(
        students=tuple(students),
        staff=tuple(staff),
        class_teachers=class_teachers,
        assignments=tuple(assignments),
    )


def normalize_subject(text: str) -> str:
    """Subject names as stored: stripped, lower-case, single spaces."""
    return " ".join(text.split()).lower()


# --------------------------------------------------------------------------- files


def _find(folder: Path, name: str) -> Path | None:
    """The file ``name`` in ``folder``, matched ignoring case (Students.csv)."""
    exact = folder / name
    if exact.is_file():
        return exact
    for candidate in sorted(folder.iterdir()):
        if candidate.name.lower() == name and candidate.is_file():
            return candidate
    return None


def _rows(tables: dict[str, list[_Row] | None], name: str) -> list[_Row]:
    return tables.get(name) or []


def _label(files: dict[str, Path | None], name: str) -> str:
    path = files.get(name)
    return path.name if path else name


def _check_presence(files: dict[str, Path | None], errors: _Errors) -> list[str]:
    notes = []
    if not files[STAFF]:
        errors.add(STAFF, None, "file not found; staff.csv is required")
    if not files[CLASSES]:
        needed_by = [name for name in (STUDENTS, ASSIGNMENTS) if files[name]]
        if needed_by:
            errors.add(CLASSES, None, f"file not found; {' and '.join(needed_by)} name classes, so it is required")
        else:
            notes.append(f"{CLASSES}: not found; no classes or class teachers imported")
    for name in (STUDENTS, ASSIGNMENTS):
        if not files[name]:
            notes.append(f"{name}: not found; nothing imported from it")
    return notes


def _decode(data: bytes) -> tuple[str, str]:
    """(text, encoding): UTF-16 with BOM, UTF-8 (BOM or not), else windows-1251."""
    if data.startswith((b"\xff\xfe", b"\xfe\xff")):
        return data.decode("utf-16"), "utf-16"
    try:
        return data.decode("utf-8-sig"), "utf-8"
    except UnicodeDecodeError:
        return data.decode("cp1251"), "cp1251"


def _sniff_delimiter(text: str) -> str:
    """The delimiter of the first non-blank line: whichever of , ; TAB occurs most."""
    header = next((line for line in text.splitlines() if line.strip()), "")
    counts = {d: header.count(d) for d in (",", ";", "\t")}
    best = max(counts, key=lambda d: counts[d])
    return best if counts[best] else ","


def _read_table(name: str, path: Path, errors: _Errors) -> list[_Row] | None:
    """The file's data rows; None (after recording why) when it cannot be used."""
    label = path.name
    try:
        text, _encoding = _decode(path.read_bytes())
    except OSError as exc:
        errors.add(label, None, f"cannot read: {exc.strerror}")
        return None
    except UnicodeDecodeError:
        errors.add(label, None, "cannot decode: the file is neither UTF-8 nor windows-1251")
        return None
    records = _records(text, _sniff_delimiter(text), label, errors)
    header = next(records, None)
    if header is None:
        errors.add(label, 1, "the file is empty; expected a header line")
        return None
    columns = _map_header(header[1], name, label, errors)
    if columns is None:
        return None
    return [_row(line, cells, columns, label, errors) for line, cells in records]


def _records(text: str, delimiter: str, label: str, errors: _Errors) -> Iterator[tuple[int, list[str]]]:
    """(first physical line, cells) of every non-blank record."""
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter)
    while True:
        start = reader.line_num + 1
        try:
            cells = next(reader)
        except StopIteration:
            return
        except csv.Error as exc:
            errors.add(label, start, f"cannot parse the line: {exc}")
            return
        if any(cell.strip() for cell in cells):
            yield start, cells


def _header_key(text: str) -> str:
    text = text.replace("\ufeff", "").replace("ё", "е").replace("Ё", "Е").lower()
    return " ".join(re.sub(r"[_\-.:]", " ", text).split())


def _canonical_column(text: str) -> str | None:
    key = _header_key(text)
    for column, aliases in _COLUMNS.items():
        if key in aliases:
            return column
    return None


def _map_header(cells: list[str], name: str, label: str, errors: _Errors) -> list[str | None] | None:
    """Canonical column name per header cell (None: ignored); None if unusable."""
    wanted = _REQUIRED_COLUMNS[name] + _OPTIONAL_COLUMNS.get(name, ())
    columns: list[str | None] = []
    ok = True
    for cell in cells:
        column = _canonical_column(cell)
        if column not in wanted:
            column = None
        elif column in columns:
            errors.add(label, 1, f"column {column} appears twice")
            ok = False
        columns.append(column)
    missing = [c for c in _REQUIRED_COLUMNS[name] if c not in columns]
    if missing:
        found = ", ".join(c.strip() for c in cells if c.strip()) or "nothing"
        errors.add(label, 1, f"missing column(s) {', '.join(missing)} (header has: {found})")
        ok = False
    return columns if ok else None


def _row(line: int, cells: list[str], columns: list[str | None], label: str, errors: _Errors) -> _Row:
    extra = cells[len(columns):]
    cells = cells[: len(columns)]
    if any(cell.strip() for cell in extra):
        if columns[-1] in _LIST_COLUMNS:
            cells[-1] = ";".join([cells[-1], *extra])
        else:
            errors.add(label, line, f"{len(columns) + len(extra)} fields where the header has {len(columns)}")
    values = {column: cell.strip() for column, cell in zip(columns, cells) if column}
    for column in columns:
        if column:
            values.setdefault(column, "")
    return _Row(line, values)


# --------------------------------------------------------------------------- values


def _email(value: str) -> str | None:
    address = value.strip().strip("<>").strip().lower()
    if address.startswith("mailto:"):
        address = address[len("mailto:"):]
    return address if _EMAIL_RE.match(address) else None


def _split(value: str) -> list[str]:
    return [part for part in _LIST_SPLIT_RE.split(value) if part]


def _full_name(value: str) -> str:
    return " ".join(value.split())


class _Checker:
    """Row-level checks that record an error and return None on failure."""

    def __init__(self, label: str, errors: _Errors) -> None:
        self.label, self.errors = label, errors

    def fail(self, row: _Row, reason: str) -> None:
        self.errors.add(self.label, row.line, reason)
        return None

    def required(self, row: _Row, column: str) -> str | None:
        value = row.values[column]
        return value if value else self.fail(row, f"{column} is empty")

    def email(self, row: _Row, column: str) -> str | None:
        value = self.required(row, column)
        if value is None:
            return None
        address = _email(value)
        return address if address else self.fail(row, f"{column} {value!r} is not a valid e-mail address")

    def staff_email(self, row: _Row, column: str, staff: set[str] | None) -> str | None:
        address = self.email(row, column)
        if address is None or staff is None or address in staff:
            return address
        return self.fail(row, f"{column} {address} is not in {STAFF}")

    def class_name(self, row: _Row, known: set[str] | None) -> str | None:
        value = self.required(row, "class")
        if value is None:
            return None
        name = normalize_class(value)
        if name is None:
            return self.fail(row, f"class {value!r} is not a class label (like 7Б)")
        if known is not None and name not in known:
            return self.fail(row, f"class {name} is not in {CLASSES}")
        return name

    def unique(self, row: _Row, key: object, seen: dict[object, int], what: str) -> bool:
        if key in seen:
            self.fail(row, f"duplicate {what} (first on line {seen[key]})")
            return False
        seen[key] = row.line
        return True


def _staff(rows: list[_Row], label: str, errors: _Errors) -> tuple[list[StaffMember], set[str]]:
    """(staff members, every valid address listed, even on an otherwise bad row)."""
    check, seen, staff = _Checker(label, errors), {}, []
    for row in rows:
        email = check.email(row, "email")
        name = check.required(row, "full_name")
        roles = _roles(row, check)
        if email and not check.unique(row, email, seen, f"email {email}"):
            continue
        if email and name and roles:
            staff.append(StaffMember(email=email, full_name=_full_name(name), roles=roles))
    return staff, {str(email) for email in seen}


def _roles(row: _Row, check: _Checker) -> frozenset[str] | None:
    value = check.required(row, "role")
    if value is None:
        return None
    roles = set()
    for part in re.split(r"[;,/]+", value):
        role = _role(part)
        if role is None:
            return check.fail(row, f"unknown role {part.strip()!r} (roles: {', '.join(sorted(STAFF_ROLES))})")
        roles |= role
    return frozenset(roles) or check.fail(row, "role is empty")


def _role(text: str) -> set[str] | None:
    """Roles named by one list item: "it", "завуч", or words like "teacher it"."""
    key = _header_key(text)
    if not key:
        return set()
    if key in _ROLE_ALIASES or key in STAFF_ROLES:
        return {_ROLE_ALIASES.get(key, key)}
    words = key.split()
    if len(words) > 1 and all(w in STAFF_ROLES or w in _ROLE_ALIASES for w in words):
        return {_ROLE_ALIASES.get(w, w) for w in words}
    return None


def _classes(
    rows: list[_Row], label: str, staff: set[str] | None, errors: _Errors
) -> tuple[dict[str, str], set[str]]:
    """(class -> class teacher, every class listed even on a bad row)."""
    check, seen, teachers = _Checker(label, errors), {}, {}
    for row in rows:
        name = check.class_name(row, None)
        teacher = check.staff_email(row, "class_teacher_email", staff)
        if name and check.unique(row, name, seen, f"class {name}") and teacher:
            teachers[name] = teacher
    return teachers, {str(name) for name in seen}


def _students(
    rows: list[_Row], label: str, classes: set[str] | None, staff: set[str], errors: _Errors
) -> list[Student]:
    check, seen, students = _Checker(label, errors), {}, []
    for row in rows:
        email = check.email(row, "email")
        name = check.required(row, "full_name")
        class_name = check.class_name(row, classes)
        parents = _parents(row, check)
        if email and email in staff:
            check.fail(row, f"{email} is also in {STAFF}; one address cannot be both")
            continue
        if email and not check.unique(row, email, seen, f"email {email}"):
            continue
        if email and name and class_name and parents is not None:
            students.append(Student(email, _full_name(name), class_name, parents))
    return students


def _parents(row: _Row, check: _Checker) -> tuple[str, ...] | None:
    addresses: dict[str, None] = {}
    for part in _split(row.values.get("parent_emails", "")):
        address = _email(part)
        if address is None:
            return check.fail(row, f"parent_emails {part!r} is not a valid e-mail address")
        addresses.setdefault(address, None)
    return tuple(addresses)


def _assignments(
    rows: list[_Row], label: str, classes: set[str] | None, staff: set[str] | None, errors: _Errors
) -> list[Assignment]:
    check, seen, assignments = _Checker(label, errors), {}, []
    for row in rows:
        class_name = check.class_name(row, classes)
        subject = check.required(row, "subject")
        teacher = check.staff_email(row, "teacher_email", staff)
        if not (class_name and subject and teacher):
            continue
        item = Assignment(class_name, normalize_subject(subject), teacher)
        if check.unique(row, item, seen, "row: same class, subject and teacher"):
            assignments.append(item)
    return assignments


__all__ = ["RosterError", "read_roster", "normalize_subject"]
