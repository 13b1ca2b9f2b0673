"""Realistic letters for the benchmarks (pure: bytes in memory, no servers).

Two pools, used in turn:

- the development corpus (tests/data/letters-dev): forty real-shaped letters to
  МАОУ «Лицей №21» in UTF-8, windows-1251 and KOI8-R, 8bit, quoted-printable and
  base64, HTML-only and multipart/alternative, a few with attachments, from the
  roster's students and parents, unknown senders and machines (auto-replies, a
  bounce, a mailing list). Each copy gets a Message-ID of its own;
- the extra corpus's texts (tests/data/letters-extra: slang, typos, diminutives),
  re-addressed to the same school from the letters-dev roster's students and
  parents and re-encoded in rotating shapes (charset x transfer encoding x
  plain/HTML-only/alternative), every seventh with a small attachment.
"""
from __future__ import annotations

import itertools
import json
import re
from dataclasses import dataclass
from email import message_from_bytes, policy
from email.message import EmailMessage
from email.utils import formataddr, format_datetime, getaddresses, make_msgid
from datetime import datetime, timedelta, timezone
from html import escape
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DEV = ROOT / "tests" / "data" / "letters-dev"
EXTRA = ROOT / "tests" / "data" / "letters-extra"
ROSTER = DEV / "roster"
SCHOOL = "lyceum21@lyceum21-edu.test"

_MSGID_LINE = re.compile(rb"^Message-ID:[^\r\n]*\r?\n(?:[ \t][^\r\n]*\r?\n)*", re.I | re.M)
# (charset, transfer encoding) shapes of the re-encoded letters
SHAPES = [
    ("utf-8", "8bit"), ("windows-1251", "quoted-printable"), ("koi8-r", "base64"),
    ("utf-8", "base64"), ("windows-1251", "8bit"), ("koi8-r", "quoted-printable"),
    ("utf-8", "quoted-printable"), ("windows-1251", "base64"),
]
ATTACHMENT = bytes(range(256)) * 48  # 12 KiB, a "scan" or a "document"


@dataclass(frozen=True)
class Letter:
    sender: str  # envelope sender (the From address)
    raw: bytes


def _text_of(raw: bytes) -> tuple[str, str]:
    """Subject and plain text of a corpus letter (HTML parts reduced to text)."""
    from bs4 import BeautifulSoup

    msg = message_from_bytes(raw, policy=policy.default)
    subject = str(msg.get("Subject", "") or "")
    part = msg.get_body(preferencelist=("plain", "html"))
    if part is None:
        return subject, ""
    text = part.get_content()
    if part.get_content_subtype() == "html":
        text = BeautifulSoup(text, "html.parser").get_text("\n")
    return subject, text.strip()


def roster_people() -> list[tuple[str, str]]:
    """(name, address) of the roster's students and parents, in a fixed order."""
    import csv

    people = []
    with open(ROSTER / "students.csv", encoding="utf-8") as f:
        for row in csv.DictReader(f):
            people.append((row["full_name"], row["email"]))
            for parent in filter(None, (p.strip() for p in row["parent_emails"].split(";"))):
                people.append(("", parent))
    return people


def _dev_templates() -> list[bytes]:
    cases = json.loads((DEV / "cases.json").read_text(encoding="utf-8"))
    return [(DEV / "cases" / c["file"]).read_bytes() for c in cases]


def extra_texts() -> list[tuple[str, str]]:
    cases = json.loads((EXTRA / "cases.json").read_text(encoding="utf-8"))
    texts = []
    for case in cases:
        if case["kind"] != "appeal":
            continue  # machine letters come from letters-dev
        subject, text = _text_of((EXTRA / "cases" / case["file"]).read_bytes())
        if text:
            texts.append((subject, text))
    return texts


def _with_message_id(raw: bytes, message_id: str) -> bytes:
    line = f"Message-ID: {message_id}\r\n".encode()
    if _MSGID_LINE.search(raw):
        return _MSGID_LINE.sub(lambda _: line, raw, count=1)
    return line + raw


def _sender(raw: bytes) -> str:
    head = raw.split(b"\r\n\r\n", 1)[0].split(b"\n\n", 1)[0]
    msg = message_from_bytes(head + b"\r\n\r\n", policy=policy.compat32)
    found = getaddresses([str(msg.get("From", ""))])
    return found[0][1] if found and found[0][1] else "mailer-daemon@lyceum21-edu.test"


def _fits(text: str, charset: str) -> bool:
    try:
        text.encode(charset)
        return True
    except UnicodeEncodeError:
        return False


def _compose(n: int, subject: str, text: str, person: tuple[str, str], sent: datetime) -> bytes:
    charset, cte = SHAPES[n % len(SHAPES)]
    try:
        text.encode(charset)
    except UnicodeEncodeError:  # e.g. an em dash has no place in KOI8-R
        charset = "windows-1251" if _fits(text, "windows-1251") else "utf-8"
    name, address = person
    msg = EmailMessage()
    msg["From"] = formataddr((name, address)) if name else address
    msg["To"] = SCHOOL
    msg["Subject"] = subject
    msg["Date"] = format_datetime(sent)
    msg["Message-ID"] = make_msgid(domain=address.split("@")[1])
    html = "<html><body>" + "".join(f"<p>{escape(p)}</p>" for p in text.split("\n") if p.strip()) \
        + "</body></html>"
    form = n % 5
    if form == 3:  # HTML only, as some webmail sends it
        msg.set_content(html, subtype="html", charset=charset, cte=cte)
    else:
        msg.set_content(text, charset=charset, cte=cte)
        if form == 4:
            msg.add_alternative(html, subtype="html", charset=charset, cte=cte)
    if n % 7 == 0:
        msg.add_attachment(ATTACHMENT, maintype="application", subtype="pdf",
                           filename="задание.pdf" if n % 2 else "scan.pdf")
    return msg.as_bytes(policy=policy.SMTP)


def build(count: int, seed_time: datetime | None = None) -> list[Letter]:
    """``count`` distinct letters to the school, alternating the two pools."""
    dev = _dev_templates()
    extra = extra_texts()
    people = roster_people()
    start = seed_time or datetime(2026, 12, 1, 9, 0, tzinfo=timezone(timedelta(hours=3)))
    letters = []
    dev_cycle, extra_cycle = itertools.cycle(dev), itertools.cycle(extra)
    for n in range(count):
        if n % 2 == 0:
            raw = _with_message_id(next(dev_cycle), f"<bench.{n}@bench.test>")
            letters.append(Letter(_sender(raw), raw))
        else:
            subject, text = next(extra_cycle)
            person = people[(n * 7) % len(people)]
            raw = _compose(n, subject, text, person, start + timedelta(seconds=n))
            letters.append(Letter(person[1], raw))
    return letters


def senders(letters: list[Letter]) -> set[str]:
    """Every address that may get a letter back (each must be a mailbox of the stack)."""
    return {l.sender.lower() for l in letters}
