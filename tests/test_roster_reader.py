"""Reading the roster CSV files (helpdesk.roster.reader): no database involved."""
from __future__ import annotations

import csv
import io
import shutil
from pathlib import Path

import pytest

from helpdesk.roster.reader import RosterError, normalize_subject, read_roster

CORPUS = Path("/work/shared/corpus/letters-dev/roster")
if not CORPUS.is_dir():  # the checkout may live elsewhere
    CORPUS = Path(__file__).resolve().parents[2] / "shared/corpus/letters-dev/roster"

pytestmark = pytest.mark.skipif(not CORPUS.is_dir(), reason="sample roster not available")

STAFF = "email,full_name,role\nt.one@school.test,Один Учитель,teacher\nd.two@school.test,Два Завуч,deputy\n"
CLASSES = "class,class_teacher_email\n7Б,t.one@school.test\n"


def write(directory: Path, name: str, text: str, encoding: str = "utf-8") -> None:
    (directory / name).write_bytes(text.encode(encoding))


def small_roster(directory: Path, **files: str) -> Path:
    """staff.csv and classes.csv of one class; keyword arguments add or replace files."""
    contents = {"staff.csv": STAFF, "classes.csv": CLASSES}
    contents.update({f"{name}.csv": text for name, text in files.items()})
    for name, text in contents.items():
        write(directory, name, text)
    return directory


def errors_of(directory: Path) -> list[str]:
    with pytest.raises(RosterError) as caught:
        read_roster(directory)
    return caught.value.errors


# --------------------------------------------------------------------------- the sample


def test_corpus_roster_reads():
    roster = read_roster(CORPUS)
    assert len(roster.students) == 32
    assert len(roster.staff) == 17
    assert len(roster.class_teachers) == 9
    assert len(roster.assignments) == 126
    assert roster.class_teacher("7А") == "m.zhdanov@lyceum21-edu.test"
    assert roster.staff_member("o.grigoriev@lyceum21-edu.test").roles == {"director"}
    assert [s.email for s in roster.with_role("deputy")] == ["n.kovalevskaya@lyceum21-edu.test"]
    # An unquoted ';' list in a comma-delimited file.
    assert roster.student("yasya.panova@mail.test").parent_emails == (
        "panov.igor@yandex.test",
        "panova.vera@mail.test",
    )
    assert roster.student("nika.subbotina@yandex.test").parent_emails == ()
    # Two groups: two teachers for the same class and subject.
    assert len(roster.teachers_for("10Б", "английский язык")) == 2
    # A parent of two children.
    assert len(roster.children_of("fomina.ekaterina@mail.test")) == 2


def excel_copy(source: Path, target: Path, *, quote_lists: bool = True) -> Path:
    """The sample as Russian Excel saves it: windows-1251, ';', CRLF."""
    target.mkdir(exist_ok=True)
    for path in source.glob("*.csv"):
        rows = list(csv.reader(io.StringIO(path.read_text(encoding="utf-8"), newline="")))
        out = io.StringIO(newline="")
        if quote_lists:
            csv.writer(out, delimiter=";", lineterminator="\r\n").writerows(rows)
        else:  # hand-made: a ';' list written without quotes
            out.write("".join(";".join(row) + "\r\n" for row in rows))
        (target / path.name).write_bytes(out.getvalue().encode("cp1251"))
    return target


@pytest.mark.parametrize("quote_lists", [True, False], ids=["quoted", "unquoted"])
def test_excel_cp1251_semicolon_reads_identically(tmp_path, quote_lists):
    copy = excel_copy(CORPUS, tmp_path / "excel", quote_lists=quote_lists)
    raw = (copy / "students.csv").read_bytes()
    assert b";" in raw.splitlines()[0]
    with pytest.raises(UnicodeDecodeError):
        raw.decode("utf-8")
    assert read_roster(copy) == read_roster(CORPUS)


def test_utf8_bom_and_utf16(tmp_path):
    for name in ("staff.csv", "classes.csv", "students.csv", "assignments.csv"):
        text = (CORPUS / name).read_text(encoding="utf-8")
        write(tmp_path, name, text, "utf-8-sig")
    assert read_roster(tmp_path) == read_roster(CORPUS)

    # Excel's "Unicode text": UTF-16 with BOM, tab-delimited.
    for name in ("staff.csv", "classes.csv", "students.csv", "assignments.csv"):
        text = (CORPUS / name).read_text(encoding="utf-8").replace(",", "\t")
        write(tmp_path, name, text, "utf-16")
    assert read_roster(tmp_path) == read_roster(CORPUS)


# --------------------------------------------------------------------------- formats


def test_parent_emails_quoted_semicolon_and_comma_forms(tmp_path):
    small_roster(
        tmp_path,
        students=(
            "email;full_name;class;parent_emails\n"
            'a@pupil.test;Ученик А;7Б;"Mom@Home.test; dad@home.test"\n'
            "b@pupil.test;Ученик Б;7Б;mom@b.test, dad@b.test\n"
            "c@pupil.test;Ученик В;7Б;mom@c.test dad@c.test\n"
            "d@pupil.test;Ученик Г;7Б;\n"
        ),
    )
    roster = read_roster(tmp_path)
    assert roster.student("a@pupil.test").parent_emails == ("mom@home.test", "dad@home.test")
    assert roster.student("b@pupil.test").parent_emails == ("mom@b.test", "dad@b.test")
    assert roster.student("c@pupil.test").parent_emails == ("mom@c.test", "dad@c.test")
    assert roster.student("d@pupil.test").parent_emails == ()


def test_comma_file_with_quoted_comma_list(tmp_path):
    small_roster(
        tmp_path,
        students='email,full_name,class,parent_emails\na@pupil.test,Ученик А,7Б,"m@h.test, d@h.test"\n',
    )
    assert read_roster(tmp_path).student("a@pupil.test").parent_emails == ("m@h.test", "d@h.test")


def test_headers_are_forgiving_and_values_normalised(tmp_path):
    write(tmp_path, "staff.csv", " E-Mail ; ФИО ; Роль ;Телефон\nT.One@School.test;  Один   Учитель ;учитель; 123\n"
          "boss@school.test;Директор Школы;director, teacher;\n")
    write(tmp_path, "classes.csv", "Класс,Классный руководитель\n7 «б»,t.one@school.test\n")
    write(tmp_path, "assignments.csv", "CLASS,Subject,Teacher_Email\n7-Б,  Русский   Язык ,T.ONE@school.test\n\n,,\n"
          "7b,Русский язык,boss@school.test\n")
    write(tmp_path, "students.csv", "email,full_name,Class,parent_emails\n\nkid@pupil.test,Ученик,7Б,\n")
    roster = read_roster(tmp_path)
    assert roster.staff_member("t.one@school.test").full_name == "Один Учитель"
    assert roster.staff_member("t.one@school.test").roles == {"teacher"}
    assert roster.staff_member("boss@school.test").roles == {"director", "teacher"}
    assert roster.class_teachers == {"7Б": "t.one@school.test"}
    assert roster.teachers_for("7Б", "русский язык") == ("t.one@school.test", "boss@school.test")
    assert roster.student("kid@pupil.test").class_name == "7Б"


def test_optional_files_and_warnings(tmp_path):
    write(tmp_path, "staff.csv", STAFF)
    warnings: list[str] = []
    roster = read_roster(tmp_path, warnings=warnings)
    assert len(roster.staff) == 2 and roster.students == () and roster.assignments == ()
    assert any(w.startswith("students.csv:") for w in warnings)
    assert any(w.startswith("classes.csv:") for w in warnings)


def test_required_files(tmp_path):
    write(tmp_path, "students.csv", "email,full_name,class\nkid@pupil.test,Ученик,7Б\n")
    errors = errors_of(tmp_path)
    assert any(e.startswith("staff.csv: ") for e in errors)
    assert any(e.startswith("classes.csv: ") for e in errors)
    with pytest.raises(RosterError):
        read_roster(tmp_path / "nowhere")


def test_normalize_subject():
    assert normalize_subject("  Труд   (Технология) ") == "труд (технология)"


# --------------------------------------------------------------------------- errors


def test_all_errors_reported_with_file_and_line(tmp_path):
    small_roster(
        tmp_path,
        staff=(
            "email,full_name,role\n"
            "t.one@school.test,Один Учитель,teacher\n"
            "d.two@school.test,Два Завуч,deputy\n"
            "not-an-email,Кто-то,teacher\n"  # 4
            "x@school.test,Некто,janitor\n"  # 5
            "T.ONE@school.test,Повтор,teacher\n"  # 6
            "y@school.test,,teacher\n"  # 7
        ),
        classes=(
            "class,class_teacher_email\n"
            "7Б,t.one@school.test\n"
            "\n"
            "7Ж1,t.one@school.test\n"  # 4
            "8А,stranger@school.test\n"  # 5
            "7-б,d.two@school.test\n"  # 6
        ),
        students=(
            "email,full_name,class,parent_emails\n"
            "kid@pupil.test,Ученик,7Б,mom@home.test\n"
            "kid@pupil.test,Двойник,7Б,\n"  # 3
            "other@pupil.test,Другой,9В,\n"  # 4
            "third@pupil.test,Третий,7Б,mom@home;dad@home.test\n"  # 5
            "t.one@school.test,Учитель-ученик,7Б,\n"  # 6
            '"multi@pupil.test","Многострочный\n'
            'ученик",12А,\n'  # 7-8: the record starts on line 7
        ),
        assignments=(
            "class,subject,teacher_email\n"
            "7Б,алгебра,t.one@school.test\n"
            "7Б,Алгебра ,t.one@school.test\n"  # 3
            "7Б,алгебра,d.two@school.test\n"  # fine: a second group
            "7Б,физика,nobody@school.test\n"  # 5
            "7Б,,t.one@school.test\n"  # 6
        ),
    )
    errors = errors_of(tmp_path)
    expected_prefixes = [
        "staff.csv:4: email 'not-an-email' is not a valid e-mail address",
        "staff.csv:5: unknown role 'janitor'",
        "staff.csv:6: duplicate email t.one@school.test (first on line 2)",
        "staff.csv:7: full_name is empty",
        "classes.csv:4: class '7Ж1' is not a class label",
        "classes.csv:5: class_teacher_email stranger@school.test is not in staff.csv",
        "classes.csv:6: duplicate class 7Б (first on line 2)",
        "students.csv:3: duplicate email kid@pupil.test (first on line 2)",
        "students.csv:4: class 9В is not in classes.csv",
        "students.csv:5: parent_emails 'mom@home' is not a valid e-mail address",
        "students.csv:6: t.one@school.test is also in staff.csv",
        "students.csv:7: class '12А' is not a class label",
        "assignments.csv:3: duplicate row",
        "assignments.csv:5: teacher_email nobody@school.test is not in staff.csv",
        "assignments.csv:6: subject is empty",
    ]
    assert len(errors) == len(expected_prefixes), "\n".join(errors)
    for error, prefix in zip(errors, expected_prefixes):
        assert error.startswith(prefix), (error, prefix)
    # 8А is listed in classes.csv (on a bad row): no cascade of "not in classes.csv".
    assert not any("8А is not in classes.csv" in e for e in errors)


def test_bad_header_and_extra_fields(tmp_path):
    small_roster(
        tmp_path,
        students="mail_address,full_name,class\nkid@pupil.test,Ученик,7Б\n",
        assignments="class,subject,teacher_email\n7Б,алгебра,t.one@school.test,лишнее\n",
    )
    errors = errors_of(tmp_path)
    assert errors[0].startswith("students.csv:1: missing column(s) email")
    assert errors[1] == "assignments.csv:2: 4 fields where the header has 3"
    assert len(errors) == 2


def test_unreadable_classes_file_is_reported_once(tmp_path):
    small_roster(
        tmp_path,
        classes="класс_номер;учитель_класса\n7Б;t.one@school.test\n",
        students="email,full_name,class\na@pupil.test,А,7Б\nb@pupil.test,Б,7Б\n",
    )
    errors = errors_of(tmp_path)
    assert len(errors) == 1 and errors[0].startswith("classes.csv:1: missing column(s)")


def test_undecodable_or_empty_file(tmp_path):
    small_roster(tmp_path, assignments="")
    assert errors_of(tmp_path) == ["assignments.csv:1: the file is empty; expected a header line"]
    (tmp_path / "assignments.csv").write_bytes(b"class,subject,teacher_email\n7\x98,x,y\n")
    assert errors_of(tmp_path) == [
        "assignments.csv: cannot decode: the file is neither UTF-8 nor windows-1251"
    ]


def test_case_insensitive_file_names(tmp_path):
    for path in CORPUS.glob("*.csv"):
        shutil.copy(path, tmp_path / path.name.capitalize())
    assert read_roster(tmp_path) == read_roster(CORPUS)
