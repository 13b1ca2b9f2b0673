"""machine_kind on the development corpus and on synthetic header sets."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from helpdesk.domain import Attachment, ParsedLetter
from helpdesk.understand.kinds import machine_kind
from helpdesk.understand.parse import parse_letter

CORPUS = Path("/work/shared/corpus/letters-dev")
CASES = json.loads((CORPUS / "cases.json").read_text(encoding="utf-8"))


@pytest.mark.parametrize("case", CASES, ids=[c["file"] for c in CASES])
def test_corpus_kind_matches_label(case):
    letter = parse_letter((CORPUS / "cases" / case["file"]).read_bytes())
    kind, reason = machine_kind(letter)
    expected = None if case["kind"] == "appeal" else case["kind"]
    assert kind == expected, reason
    assert bool(reason) == (kind is not None)


@pytest.mark.parametrize(
    "name, reason",
    [
        ("letter_012.eml", "Автоматический ответ: заголовок Auto-Submitted: auto-replied (RFC 3834)"),
        ("letter_032.eml", "Автоматический ответ: заголовок X-Autoreply: yes"),
        ("letter_035.eml", "Уведомление о недоставке: письмо типа multipart/report; "
                           "report-type=delivery-status (RFC 3464)"),
        ("letter_006.eml", "Рассылка: заголовок List-Id: МО учителей информатики "
                           "<mo-inf.lists.imc-gorod.test> (RFC 2919)"),
    ],
)
def test_corpus_reasons(name, reason):
    letter = parse_letter((CORPUS / "cases" / name).read_bytes())
    assert machine_kind(letter)[1] == reason


def letter(headers=None, subject="Вопрос по алгебре", from_addr="parent@mail.test",
           attachments=()) -> ParsedLetter:
    return ParsedLetter(
        message_id="<1@mail.test>", in_reply_to=None, references=(), from_addr=from_addr,
        from_name="", to=("lyceum21@lyceum21-edu.test",), subject=subject, date=None,
        text="текст", html=None, headers={k.lower(): v for k, v in (headers or {}).items()},
        attachments=tuple(attachments),
    )


@pytest.mark.parametrize(
    "headers, subject, from_addr, kind, words",
    [
        # RFC 3834
        ({"Auto-Submitted": "auto-replied"}, None, None, "auto_reply", "Auto-Submitted: auto-replied"),
        ({"Auto-Submitted": "auto-generated"}, None, None, "auto_reply", "auto-generated"),
        ({"Auto-Submitted": "auto-replied (vacation)"}, None, None, "auto_reply", "RFC 3834"),
        ({"Auto-Submitted": "no"}, None, None, None, ""),
        ({"Auto-Submitted": "No ; comment"}, None, None, None, ""),
        # other autoresponder headers
        ({"X-Autoreply": "yes"}, None, None, "auto_reply", "X-Autoreply: yes"),
        ({"X-Autorespond": "on vacation"}, None, None, "auto_reply", "X-Autorespond"),
        ({"X-Auto-Response-Suppress": "All"}, None, None, None, ""),  # Outlook, ordinary letters
        ({"Precedence": "auto_reply"}, None, None, "auto_reply", "Precedence: auto_reply"),
        # mailing lists
        ({"Precedence": "bulk"}, None, None, "bulk", "Precedence: bulk"),
        ({"Precedence": "junk"}, None, None, "bulk", "Precedence: junk"),
        ({"Precedence": "list"}, None, None, "bulk", "Precedence: list"),
        ({"List-Id": "<news.example.test>"}, None, None, "bulk", "List-Id"),
        ({"List-Unsubscribe": "<mailto:u@x.test>"}, None, None, "bulk", "List-Unsubscribe"),
        ({"Precedence": "first-class"}, None, None, None, ""),
        # delivery reports
        ({"Content-Type": 'multipart/report; report-type="delivery-status"; boundary=x'},
         None, None, "bounce", "delivery-status"),
        ({"X-Failed-Recipients": "a@b.test"}, None, None, "bounce", "X-Failed-Recipients"),
        ({}, None, "mailer-daemon@mx.test", "bounce", "mailer-daemon@mx.test"),
        ({}, None, "postmaster@school.test", "bounce", "postmaster@school.test"),
        ({}, None, "mailer-daemon", "bounce", "почтовый сервер"),
        ({}, "Undelivered Mail Returned to Sender", None, "bounce", "Undelivered Mail"),
        ({}, "Недоставленное сообщение", None, "bounce", "Недоставленное сообщение"),
        ({}, "Delivery Status Notification (Failure)", None, "bounce", "тема"),
        ({}, "Fwd: Undelivered Mail Returned to Sender", None, None, ""),  # a person forwarding it
        # read receipts
        ({"Content-Type": "multipart/report; report-type=disposition-notification"},
         None, None, "auto_reply", "прочтении"),
        # vacation subjects
        ({}, "Автоответ: Re: Расписание", None, "auto_reply", "тема «Автоответ"),
        ({}, "Автоматический ответ: Изменение расписания 8Б", None, "auto_reply", "отсутствии"),
        ({}, "Out of Office: консультация", None, "auto_reply", "Out of Office"),
        ({}, "Automatic reply: consultation", None, "auto_reply", "Automatic reply"),
        ({}, "Я в отпуске до 17 февраля", None, "auto_reply", "в отпуске"),
        ({}, "Re: консультация [нахожусь в отпуске]", None, "auto_reply", "в отпуске"),
        ({}, "Сын в отпуске с нами, пропустит уроки", None, None, ""),  # a parent's letter
        ({}, "Вопрос про автоответчик в Дневник.ру", None, None, ""),
    ],
)
def test_synthetic_signs(headers, subject, from_addr, kind, words):
    sample = letter(headers, subject or "Вопрос по алгебре", from_addr or "parent@mail.test")
    got_kind, reason = machine_kind(sample)
    assert got_kind == kind, reason
    assert words in reason


def test_bounce_wins_over_auto_submitted():
    sample = letter({"Auto-Submitted": "auto-replied",
                     "Content-Type": "multipart/report; report-type=delivery-status; boundary=b"})
    assert machine_kind(sample)[0] == "bounce"


def test_auto_reply_wins_over_bulk_precedence():
    sample = letter({"Precedence": "bulk"}, subject="Out of Office")
    assert machine_kind(sample)[0] == "auto_reply"
    sample = letter({"Precedence": "bulk", "X-Autoreply": "yes"})
    assert machine_kind(sample)[0] == "auto_reply"


def test_delivery_status_attachment_marks_a_bounce():
    report = Attachment("delivery-status.txt", "message/delivery-status", 10, b"Action: failed")
    assert machine_kind(letter(attachments=[report]))[0] == "bounce"


def test_ordinary_letter_is_not_machine():
    assert machine_kind(letter({"X-Mailer": "Mail.Ru Mailer 1.0", "Precedence": ""})) == (None, "")
