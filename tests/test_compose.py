"""Outgoing letters: subjects (prefixes never pile up, the appeal tag always survives)
and the composed bytes, as a mail program reads them back."""
from __future__ import annotations

from email import message_from_bytes, policy
from email.header import decode_header, make_header
from pathlib import Path
from types import SimpleNamespace

import pytest

from helpdesk.compose import Composer, SchoolIdentity, reply_subject, short_title, tag_number
from helpdesk.domain import Attachment


@pytest.mark.parametrize("title", [
    "алгебра", "Re: алгебра", "RE[2]: алгебра", "Ответ: Re: алгебра", "Отв: алгебра",
    "Fwd: алгебра", "Пересл.: алгебра", "FW: RE: Re^3: алгебра", "Re: алгебра [№ 7]",
    "[№ 7] Re: алгебра",
])
def test_prefixes_and_tags_do_not_pile_up(title):
    assert reply_subject(title, 7) == "Re: алгебра [№ 7]"


def test_a_long_subject_keeps_its_tag():
    subject = reply_subject("очень " * 200 + "длинная тема", 12)
    assert len(subject) < 180 and subject.endswith("[№ 12]") and tag_number(subject) == 12
    assert short_title("короткая") == "короткая"


def test_empty_subject_gets_a_title():
    assert reply_subject("", 3) == "Re: Ваше обращение [№ 3]"


# --- the composed letters: what a mail program reads back ---------------------------------

TEMPLATES = Path(__file__).resolve().parent.parent / "templates"
SCHOOL_ID = SchoolIdentity(name="МАОУ «Лицей №21»", address="lyceum21@lyceum21-edu.test",
                           domain="lyceum21-edu.test", timezone="Europe/Moscow")
APPEAL = SimpleNamespace(number=12, subject="алгебра", title="уравнения", sender="lev@x.test",
                         sender_role="student", triage=False)


def composer() -> Composer:
    return Composer(TEMPLATES, SCHOOL_ID)


def relay(subject: str, *, teacher: str = "Шубина Мария Константиновна", attachments=(), references=(),
          body: str = "Решение во вложении.\nЕсли будут вопросы — пишите."):
    return composer().build(
        "relay",
        {"appeal": APPEAL, "teacher_name": teacher, "body": body, "attachments": [a.filename for a in attachments],
         "greeting_name": "Лев", "consultation": None, "waiting": False, "teacher_address": ""},
        to=["lev@x.test"], subject=subject, number=12, from_name=f"{teacher} ({SCHOOL_ID.name})",
        in_reply_to="<first@x.test>", references=references, attachments=attachments,
    )


def decoded(raw_value: str) -> str:
    """A header as an RFC 2047 reader shows it."""
    return str(make_header(decode_header(raw_value)))


def lines(raw: bytes) -> list[bytes]:
    return raw.split(b"\n")


def test_russian_headers_are_encoded_and_read_back_exactly():
    subject = reply_subject("Вопрос по теме «Квадратные уравнения» (8Б), срочно: " + "очень " * 20, 12)
    refs = [f"<ref.{i}.{'x' * 30}@mail.example.test>" for i in range(12)]
    rendered = relay(subject, references=["<first@x.test>", *refs])
    raw = rendered.raw
    assert raw.isascii() and all(len(line) <= 78 for line in lines(raw))
    msg = message_from_bytes(raw, policy=policy.default)
    assert msg["Subject"] == subject
    assert msg["Message-ID"] == rendered.message_id
    assert msg["In-Reply-To"] == "<first@x.test>"
    assert msg["References"].split() == ["<first@x.test>", *refs]
    assert msg["X-Helpdesk-Appeal"] == "12"
    assert msg["Auto-Submitted"] is None  # a relay carries the teacher's own words
    [sender] = msg["From"].addresses
    assert sender.addr_spec == SCHOOL_ID.address
    raw_from = message_from_bytes(raw, policy=policy.compat32)["From"]
    assert decoded(raw_from) == f"Шубина Мария Константиновна (МАОУ «Лицей №21») <{SCHOOL_ID.address}>"


def test_ascii_names_with_specials_are_quoted():
    plain = composer().build("notice", {"recipient_name": "I", "headline": "h", "lines": [], "body": ""},
                             to=["a@x.test"], subject="plain", number=None, from_name='Ivanov, "Ivan" (IT)')
    [sender] = message_from_bytes(plain.raw, policy=policy.default)["From"].addresses
    assert (sender.display_name, sender.addr_spec) == ('Ivanov, "Ivan" (IT)', SCHOOL_ID.address)
    msg = message_from_bytes(plain.raw, policy=policy.default)
    assert msg["Auto-Submitted"] == "auto-generated" and msg["X-Helpdesk-Appeal"] == ""


def test_bodies_are_utf8_quoted_printable_with_the_rendered_text():
    body = "Ответ:\r\nx = (−b ± √D) / 2a   \rпроверьте знак.\n" + "длинная строка без переносов " * 10
    rendered = relay("Re: уравнения [№ 12]", body=body)
    msg = message_from_bytes(rendered.raw, policy=policy.default)
    assert msg.get_content_type() == "multipart/alternative"
    text_part, html_part = msg.get_payload()
    text, html = composer().render("relay", {
        "subject": "Re: уравнения [№ 12]", "appeal": APPEAL, "teacher_name": "Шубина Мария Константиновна",
        "body": body, "attachments": [], "greeting_name": "Лев", "consultation": None, "waiting": False,
        "teacher_address": ""})
    for part, rendered_text, subtype in ((text_part, text, "plain"), (html_part, html, "html")):
        assert part.get_content_type() == f"text/{subtype}"
        assert part["Content-Transfer-Encoding"] == "quoted-printable"
        assert part.get_content_charset() == "utf-8"
        expected = rendered_text.replace("\r\n", "\n").replace("\r", "\n")
        assert part.get_content() == (expected if expected.endswith("\n") else expected + "\n")
    assert all(len(line) <= 78 for line in lines(rendered.raw))


def test_attachments_keep_names_types_and_bytes():
    long_name = "Домашнее задание по алгебре и геометрии, вариант " * 6 + "№ 2.pdf"
    files = [
        Attachment(long_name, "application/pdf", 4, b"%PDF"),
        Attachment("invite.ics", "text/calendar; charset=utf-8; method=PUBLISH", 16, b"BEGIN:VCALENDAR\r\n"),
        Attachment("photo.jpg", "image/jpeg", 5120, bytes(range(256)) * 20),
    ]
    rendered = relay("Re: уравнения [№ 12]", attachments=files)
    assert rendered.raw.isascii() and all(len(line) <= 78 for line in lines(rendered.raw))
    msg = message_from_bytes(rendered.raw, policy=policy.default)
    assert msg.get_content_type() == "multipart/mixed"
    assert not [d for part in msg.walk() for d in part.defects]
    body, *parts = msg.get_payload()
    assert body.get_content_type() == "multipart/alternative"
    assert [(p.get_filename(), p.get_content_type(), p.get_payload(decode=True)) for p in parts] == [
        (f.filename, f.content_type.split(";")[0], f.payload) for f in files]
    assert parts[1].get_param("method") == "PUBLISH" and parts[1].get_content_charset() == "utf-8"


@pytest.mark.parametrize("subject", ["Тема\nBcc: all@x.test", "Тема\r\nX: y", "ascii\rinjected"])
def test_line_breaks_in_a_header_are_refused(subject):
    with pytest.raises(ValueError, match="linefeed or carriage return"):
        relay(subject)
