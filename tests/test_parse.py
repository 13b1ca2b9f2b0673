"""parse_letter on the development corpus and on synthetic letters built with `email`."""
from __future__ import annotations

import base64
import json
import random
import re
from datetime import datetime, timedelta, timezone
from email import message_from_bytes, policy
from email.message import EmailMessage
from pathlib import Path

import pytest

from helpdesk.domain import ParsedLetter
from helpdesk.understand.parse import UnparseableLetter, parse_letter

CORPUS = Path("/work/shared/corpus/letters-dev")
CASES = json.loads((CORPUS / "cases.json").read_text(encoding="utf-8"))
ENGLISH_ONLY = {"letter_038.eml"}  # Exim's DSN: the only letter with no Russian text

CYRILLIC = re.compile(r"[А-Яа-яЁё]")
# What Russian text looks like after a wrong decoding: UTF-8 read as latin-1
# ("Ð", "Ñ"), UTF-8 read as windows-1251 ("Рѕ", "СЃ", "вЂ"), replacement characters.
MOJIBAKE = re.compile(r"[ÐÑÃ\ufffd]|вЂ|Рѕ|Рµ|Р°|Рё|СЃ|С‚|Ð¾")

SCHOOL = "lyceum21@lyceum21-edu.test"


def load(name: str) -> ParsedLetter:
    return parse_letter((CORPUS / "cases" / name).read_bytes())


# --------------------------------------------------------------------------- #
# Corpus
# --------------------------------------------------------------------------- #


@pytest.mark.parametrize("name", [c["file"] for c in CASES])
def test_corpus_letter_parses(name):
    letter = load(name)
    assert letter.from_addr and letter.from_addr == letter.from_addr.lower()
    assert "<" not in letter.from_addr and " " not in letter.from_addr
    assert letter.text or letter.attachments
    assert letter.message_id and letter.message_id.startswith("<") and letter.message_id.endswith(">")
    assert letter.date is not None and letter.date.utcoffset() == timedelta(hours=3)
    assert SCHOOL in letter.to or letter.to  # every letter has a recipient
    for field in (letter.text, letter.subject, letter.from_name):
        assert not MOJIBAKE.search(field), (name, field[:200])
    if name not in ENGLISH_ONLY:
        assert CYRILLIC.search(letter.text), name


def test_windows_1251_body_and_encoded_headers():
    letter = load("letter_005.eml")  # charset=windows-1251, 8bit
    assert letter.subject == "Консультация по истории"
    assert letter.from_name == "Демидова Е.С."
    assert letter.from_addr == "demidova.es@mail.test"
    assert "Моя дочь, Демидова Владислава (11Б), готовится к ЕГЭ по истории." in letter.text
    assert letter.defects == ()


def test_koi8r_8bit_body_and_koi8r_encoded_subject():
    letter = load("letter_017.eml")
    assert letter.subject == "опыт с яйцом"
    assert letter.from_name == "Мирослава"
    assert letter.text.startswith("Здравствуйте. Нам сказали сделать опыт по физике")
    assert letter.text.endswith("6Б")


def test_koi8r_quoted_printable_and_base64():
    assert load("letter_003.eml").text.startswith("Добрый день!\nПодскажите, пожалуйста")
    assert load("letter_013.eml").text.startswith("Здравствуйте. Мой сын заканчивает 9 класс")


def test_html_only_letter_becomes_readable_text():
    letter = load("letter_011.eml")
    assert letter.html and letter.html.startswith("<div")
    assert letter.text.splitlines() == [
        "Здравствуйте!",
        "Подскажите, пожалуйста, в каком виде нужно сдавать домашние задания в 5В: фото "
        "тетради в Дневник.ру или файлом на почту учителю? И до какого времени их нужно "
        "отправить, чтобы засчитали?",
        "Спасибо!",
        "Ольга Лукина, мама Артура",
    ]
    assert "<" not in load("letter_039.eml").text  # base64 HTML newsletter


def test_multipart_alternative_prefers_plain_and_keeps_html():
    letter = load("letter_030.eml")
    assert letter.subject == "Русский язык 4Б, упражнение"  # RFC 2047, base64
    assert letter.html is not None and "<" not in letter.text
    assert letter.text.startswith("Добрый вечер, Людмила Васильевна!\n\nЗлата Орехова")


def test_display_name_split_over_two_encoded_words():
    letter = load("letter_035.eml")
    assert letter.from_name == "Служба доставки Яндекс"
    assert letter.subject == "Ваше письмо не доставлено"
    assert letter.from_addr == "mailer-daemon@yandex.test"


def test_attachment_from_corpus():
    letter = load("letter_010.eml")
    (attachment,) = letter.attachments
    assert attachment.filename == "Screenshot_20250204-090312.png"
    assert attachment.content_type == "image/png"
    assert attachment.payload.startswith(b"\x89PNG\r\n\x1a\n")
    assert attachment.size == len(attachment.payload)
    assert letter.text.startswith("здравствуйте я не могу войти в сферум")


def test_dsn_parts_are_attachments_not_body():
    letter = load("letter_038.eml")
    assert letter.text.startswith("This message was created automatically")
    types = [a.content_type for a in letter.attachments]
    assert types == ["message/delivery-status", "text/rfc822-headers"]
    assert b"Status: 5.0.0" in letter.attachments[0].payload


def test_identifiers_date_and_headers():
    letter = load("letter_012.eml")
    assert letter.in_reply_to == "<20250203141955.3c10@lyceum21-edu.test>"
    assert letter.references == ("<20250203141955.3c10@lyceum21-edu.test>",)
    assert letter.date == datetime(2025, 2, 3, 14, 22, 10, tzinfo=timezone(timedelta(hours=3)))
    assert letter.headers["auto-submitted"] == "auto-replied"
    assert letter.headers["from"] == "Виктор Миронов <mironov.viktor@mail.test>"
    assert letter.to == (SCHOOL,)


# --------------------------------------------------------------------------- #
# Synthetic letters
# --------------------------------------------------------------------------- #

TEXT = "Здравствуйте! Не получается решить задачу про поезда, объясните, пожалуйста."


def headers_only(**headers: str | None) -> bytes:
    """A header block; non-ASCII values are encoded by the email package (policy.SMTP)."""
    defaults = {"From": "Ученица <Student@Mail.Test>", "To": SCHOOL, "Subject": "вопрос",
                "Date": "Fri, 27 Nov 2026 10:00:00 +0300", "Message-ID": "<x1@mail.test>",
                "MIME-Version": "1.0"}
    lines = []
    for name, value in {**defaults, **{k.replace("_", "-"): v for k, v in headers.items()}}.items():
        if value is None:
            continue
        if value.isascii():
            lines.append(f"{name}: {value}\r\n".encode("ascii"))
        else:
            header = policy.SMTP.header_factory(name, value)
            lines.append(header.fold(policy=policy.SMTP).encode("ascii"))
    return b"".join(lines)


def with_body(body: bytes, **headers: str) -> bytes:
    raw = headers_only(**headers)
    return raw.rstrip(b"\n") + b"\n\n" + body


@pytest.mark.parametrize("charset", ["cp1251", "koi8-r", "cp866"])
@pytest.mark.parametrize("label", ["us-ascii", None])
def test_mislabelled_8bit_body_is_guessed(charset, label):
    ctype = f"text/plain; charset={label}" if label else "text/plain"
    raw = with_body(TEXT.encode(charset), Content_Type=ctype, Content_Transfer_Encoding="8bit")
    letter = parse_letter(raw)
    assert letter.text == TEXT
    assert any(charset in d for d in letter.defects), letter.defects


def test_mislabelled_base64_body_built_with_email_package():
    msg = EmailMessage()
    msg["From"] = "parent@mail.test"
    msg["Subject"] = "test"
    msg.set_content(base64.encodebytes(TEXT.encode("cp1251")).decode("ascii"))
    msg.replace_header("Content-Type", "text/plain; charset=us-ascii")
    msg.replace_header("Content-Transfer-Encoding", "base64")
    letter = parse_letter(msg.as_bytes())
    assert letter.text == TEXT
    assert "text/plain body: 8-bit text labelled us-ascii, decoded as cp1251" in letter.defects


def test_utf8_labelled_as_windows_1251_is_read_as_utf8():
    raw = with_body(TEXT.encode("utf-8"), Content_Type="text/plain; charset=windows-1251",
                    Content_Transfer_Encoding="8bit")
    letter = parse_letter(raw)
    assert letter.text == TEXT
    assert any("mislabels utf-8" in d for d in letter.defects)


def test_declared_charset_that_fails_falls_back_to_guess():
    raw = with_body(TEXT.encode("koi8-r"), Content_Type="text/plain; charset=utf-8",
                    Content_Transfer_Encoding="8bit")
    assert parse_letter(raw).text == TEXT


def test_cp866_body_quoted_printable():
    msg = EmailMessage()
    msg["From"] = "Старый Клиент <old@dos.test>"
    msg["Subject"] = "DOS"
    msg.set_content(TEXT.encode("cp866"), maintype="text", subtype="plain", cte="quoted-printable")
    msg.set_param("charset", "cp866")
    letter = parse_letter(msg.as_bytes())
    assert letter.text == TEXT
    assert not any("body" in d for d in letter.defects)


def test_ibm866_label_is_understood():
    raw = with_body(TEXT.encode("cp866"), Content_Type="text/plain; charset=IBM866",
                    Content_Transfer_Encoding="8bit")
    assert parse_letter(raw).text == TEXT


def split_encoded_words(text: str, cut: int, encoding: str = "B") -> str:
    data = text.encode("utf-8")
    parts = [data[:cut], data[cut:]]
    if encoding == "B":
        words = [base64.b64encode(p).decode("ascii") for p in parts]
    else:
        words = ["".join(f"={b:02X}" for b in p) for p in parts]
    return " ".join(f"=?UTF-8?{encoding}?{w}?=" for w in words)


@pytest.mark.parametrize("encoding", ["B", "Q"])
def test_encoded_word_split_in_the_middle_of_a_character(encoding):
    subject = "Домашнее задание по алгебре"
    cut = 3  # "Д" is 2 bytes, so byte 3 is the middle of "о"
    raw = headers_only(Subject=split_encoded_words(subject, cut, encoding),
                       From=f'{split_encoded_words("Анна Петрова", 5, encoding)} <anna@mail.test>')
    letter = parse_letter(raw + b"\n")
    assert letter.subject == subject
    assert letter.from_name == "Анна Петрова"


def test_encoded_word_with_unknown_charset_is_guessed():
    word = base64.b64encode("Оценки за четверть".encode("cp1251")).decode("ascii")
    letter = parse_letter(headers_only(Subject=f"=?x-unknown?B?{word}?="))
    assert letter.subject == "Оценки за четверть"
    assert any(d.startswith("subject:") for d in letter.defects)


def test_raw_8bit_headers_in_windows_1251():
    raw = (
        b"From: " + "Петрова Анна".encode("cp1251") + b" <Anna@Mail.Test>\r\n"
        b"To: " + SCHOOL.encode() + b"\r\n"
        b"Subject: " + "Расписание консультаций".encode("cp1251") + b"\r\n"
        b"Date: Fri, 27 Nov 2026 10:00:00 MSK\r\n\r\n" + TEXT.encode("cp1251")
    )
    letter = parse_letter(raw)
    assert (letter.from_name, letter.from_addr) == ("Петрова Анна", "anna@mail.test")
    assert letter.subject == "Расписание консультаций"
    assert letter.text == TEXT
    assert letter.date == datetime(2026, 11, 27, 10, 0, tzinfo=timezone(timedelta(hours=3)))
    assert "no MIME-Version header" in letter.defects


def test_quoted_encoded_word_in_display_name_is_decoded():
    name = base64.b64encode("Иванова, Мария".encode()).decode()
    letter = parse_letter(headers_only(From=f'"=?utf-8?B?{name}?=" <M.Ivanova@School.Test>'))
    assert (letter.from_name, letter.from_addr) == ("Иванова, Мария", "m.ivanova@school.test")


def test_rfc2231_filename():
    msg = EmailMessage()
    msg["From"] = "student@mail.test"
    msg["Subject"] = "работа"
    msg.set_content("Прикрепляю работу.")
    msg.add_attachment(b"%PDF-1.4 ...", maintype="application", subtype="pdf",
                       filename=("utf-8", "ru", "Домашнее задание №5 по алгебре (Иванов, 7Б).pdf"))
    raw = msg.as_bytes()
    assert b"filename*" in raw  # really RFC 2231 on the wire
    letter = parse_letter(raw)
    (att,) = letter.attachments
    assert att.filename == "Домашнее задание №5 по алгебре (Иванов, 7Б).pdf"
    assert (att.content_type, att.size, att.payload) == ("application/pdf", 12, b"%PDF-1.4 ...")
    assert letter.text == "Прикрепляю работу."


@pytest.mark.parametrize(
    "disposition",
    [
        'attachment; filename="=?UTF-8?B?0JTQvtC80LDRiNC60LAuZG9jeA==?="',  # Outlook, Mail.ru
        "attachment; filename*=windows-1251''%C4%EE%EC%E0%F8%EA%E0.docx",
        "attachment;\r\n filename*0*=utf-8''%D0%94%D0%BE%D0%BC%D0%B0;\r\n filename*1*=%D1%88%D0%BA%D0%B0.docx",
    ],
)
def test_encoded_filenames(disposition):
    boundary = "b1"
    raw = (
        headers_only(Content_Type=f'multipart/mixed; boundary="{boundary}"').rstrip(b"\n")
        + b"\n\n--b1\nContent-Type: text/plain; charset=utf-8\n\n"
        + "см. файл".encode()
        + b"\n--b1\nContent-Type: application/octet-stream\nContent-Transfer-Encoding: base64\n"
        + b"Content-Disposition: " + disposition.encode() + b"\n\nAAEC\n--b1--\n"
    )
    letter = parse_letter(raw)
    assert [a.filename for a in letter.attachments] == ["Домашка.docx"]
    assert letter.attachments[0].payload == b"\x00\x01\x02"
    assert letter.text == "см. файл"


def test_8bit_filename_in_windows_1251():
    raw = (
        headers_only(Content_Type='multipart/mixed; boundary="b1"').rstrip(b"\n")
        + b"\n\n--b1\nContent-Type: text/plain; charset=utf-8\n\nfile\n--b1\n"
        + b'Content-Type: application/msword; name="' + "Реферат.doc".encode("cp1251") + b'"\n'
        + b"Content-Disposition: attachment\n\nDOC\n--b1--\n"
    )
    assert parse_letter(raw).attachments[0].filename == "Реферат.doc"


def test_nested_message_rfc822_is_an_attachment_and_keeps_outer_body():
    inner = EmailMessage()
    inner["From"] = "Классный руководитель <teacher@lyceum21-edu.test>"
    inner["Subject"] = "Расписание на неделю"
    inner.set_content("ВНУТРЕННИЙ ТЕКСТ: расписание уроков")
    outer = EmailMessage()
    outer["From"] = "Мама <mama@mail.test>"
    outer["To"] = SCHOOL
    outer["Subject"] = "Fwd: Расписание"
    outer.set_content("Пересылаю письмо, у нас не открывается ссылка.")
    outer.add_attachment(inner)  # message/rfc822, no file name
    letter = parse_letter(outer.as_bytes())
    assert letter.text == "Пересылаю письмо, у нас не открывается ссылка."
    (att,) = letter.attachments
    assert (att.filename, att.content_type) == ("message.eml", "message/rfc822")
    forwarded = message_from_bytes(att.payload, policy=policy.default)
    assert forwarded["Subject"] == "Расписание на неделю"
    assert "ВНУТРЕННИЙ ТЕКСТ" in forwarded.get_content()


def test_forward_only_letter_has_empty_text_not_the_inner_one():
    inner = EmailMessage()
    inner["From"] = "a@b.test"
    inner["Subject"] = "inner"
    inner.set_content("ВНУТРЕННИЙ ТЕКСТ")
    outer = EmailMessage()
    outer["From"] = "mama@mail.test"
    outer.set_content(inner)  # the whole letter is a message/rfc822
    outer.make_mixed()
    letter = parse_letter(outer.as_bytes())
    assert letter.text == ""
    assert [a.content_type for a in letter.attachments] == ["message/rfc822"]


def test_empty_plain_alternative_falls_back_to_html():
    msg = EmailMessage()
    msg["From"] = "parent@mail.test"
    msg.set_content("\n")
    msg.add_alternative("<p>Добрый день!<br>Вопрос&nbsp;по&nbsp;расписанию.</p>", subtype="html")
    letter = parse_letter(msg.as_bytes())
    assert letter.text == "Добрый день!\nВопрос по расписанию."


def test_html_charset_from_meta_tag():
    html = '<html><head><meta charset="windows-1251"></head><body>Привет</body></html>'
    raw = with_body(html.encode("cp1251"), Content_Type="text/html")
    letter = parse_letter(raw)
    assert letter.text == "Привет"
    assert letter.defects == ()


def test_identifiers_are_normalised():
    letter = parse_letter(
        headers_only(**{
            "Message-ID": "  abc@host.test ",
            "In-Reply-To": "<parent@host.test> (comment)",
            "References": "<a@h.test>\n <b@h.test> <a@h.test>",
            "To": "Учитель <T@School.TEST>, other@x.test",
            "Cc": "copy@x.test",
        })
    )
    assert letter.message_id == "<abc@host.test>"
    assert letter.in_reply_to == "<parent@host.test>"
    assert letter.references == ("<a@h.test>", "<b@h.test>")
    assert letter.to == ("t@school.test", "other@x.test", "copy@x.test")


@pytest.mark.parametrize(
    "date, expected",
    [
        ("Fri, 27 Nov 2026 10:00:00 +0500", datetime(2026, 11, 27, 10, tzinfo=timezone(timedelta(hours=5)))),
        ("Fri, 27 Nov 2026 10:00:00 -0000", datetime(2026, 11, 27, 10, tzinfo=timezone.utc)),
        ("Fri, 27 Nov 2026 10:00:00", None),
        ("27.11.2026 10:00", None),
    ],
)
def test_date(date, expected):
    letter = parse_letter(headers_only(Date=date))
    assert letter.date == expected
    if expected is None:
        assert any("Date" in d for d in letter.defects)


def test_sender_falls_back_to_reply_to():
    letter = parse_letter(headers_only(From="Иван Петров", Reply_To="Ivan@Mail.Test"))
    assert letter.from_addr == "ivan@mail.test"
    assert "no From address, sender taken from reply-to" in letter.defects


def test_bare_mailer_daemon_is_accepted():
    letter = parse_letter(headers_only(From="MAILER-DAEMON"))
    assert letter.from_addr == "mailer-daemon"
    assert "sender address has no domain" in letter.defects


@pytest.mark.parametrize(
    "raw",
    [
        b"",
        b"   \r\n",
        b"\x00\xff\xfe garbage\n\nmore",
        bytes(random.Random(21).randrange(256) for _ in range(4000)),
        b"just some words, not a letter\nand another line\n",
        headers_only(From=None) + b"\ntext without a sender",
        headers_only(From="Иван Петров") + b"\n",
        b"From: a@b.test\nContent-Type: multipart/mixed; boundary=zz\n\n--zz\n\xff\xfe\x00--zz",
        b"From: a@b.test\nContent-Type: multipart/mixed\n\nno boundary at all \xd0\x9f",
        b"From: a@b.test\nContent-Type: text/plain; charset=\xff\xfe\nContent-Transfer-Encoding: base64\n\n!!!",
        b"From: =?utf-8?B?####?= <a@b.test>\nSubject: =?koi8-r?Q?=ZZ?=\n\nx",
        b"From: a@b.test\nContent-Type: multipart/mixed; boundary=a\n\n" + b"--a\nContent-Type: multipart/mixed; boundary=a\n\n" * 300,
    ],
    ids=["empty", "blank", "binary", "random", "prose", "no-from", "from-no-address",
         "bad-multipart", "no-boundary", "bad-charset", "bad-encoded-words", "deep-nesting"],
)
def test_garbage_never_raises_anything_else(raw):
    try:
        letter = parse_letter(raw)
    except UnparseableLetter as exc:
        assert exc.reason and isinstance(exc.reason, str)
        assert str(exc) == exc.reason
    else:
        assert letter.from_addr
        assert isinstance(letter.text, str)


@pytest.mark.parametrize(
    "raw, words",
    [
        (b"", "пустое"),
        (b"\x00\xff\xfe garbage\n\nmore", "заголов"),
        (headers_only(From=None) + b"\ntext", "отправителя"),
    ],
)
def test_unparseable_reasons_are_clear(raw, words):
    with pytest.raises(UnparseableLetter) as info:
        parse_letter(raw)
    assert words in info.value.reason


def test_broken_multipart_keeps_what_it_can():
    letter = parse_letter(b"From: a@b.test\nContent-Type: multipart/mixed\n\nno boundary at all \xd0\x9f")
    assert letter.text == "no boundary at all П"
    assert any("multipart" in d for d in letter.defects)


def test_mail_parser_failure_falls_back_to_stdlib_parser():
    # The same boundary reused by nested parts trips mail-parser's epilogue recovery.
    raw = (b"From: a@b.test\nContent-Type: multipart/mixed; boundary=a\n\n"
           + b"--a\nContent-Type: multipart/mixed; boundary=a\n\n" * 5)
    letter = parse_letter(raw)
    assert letter.from_addr == "a@b.test"
    assert any(d.startswith("mail-parser failed") for d in letter.defects)


def test_tnef_winmail_dat_is_recognised():
    from email.message import EmailMessage

    msg = EmailMessage()
    msg["From"] = "teacher@school.test"
    msg["To"] = "school@school.test"
    msg["Subject"] = "задание"
    msg.set_content("Задание во вложении.")
    msg.add_attachment(b"\x78\x9f\x3e\x22" + b"\x00" * 64, maintype="application", subtype="ms-tnef",
                       filename="winmail.dat")
    letter = parse_letter(msg.as_bytes())
    assert [a.filename for a in letter.attachments] == ["winmail.dat"]
    assert any("TNEF" in d for d in letter.defects)
