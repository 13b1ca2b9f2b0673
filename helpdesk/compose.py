"""Rendering outgoing letters from the jinja2 templates into RFC 5322 bytes.

Pure apart from reading templates: the store stage calls ``Composer.build`` and
keeps the bytes, so what the outbox sends later is exactly what was decided now.
Every letter is multipart/alternative (plain text first, HTML second), UTF-8,
threaded with In-Reply-To/References and tagged ``[№ N]`` in the subject.
"""
from __future__ import annotations

import binascii
import re
import secrets
from dataclasses import dataclass
from datetime import datetime
from email import encoders
from email import policy as email_policy
from email.header import Header
from email.headerregistry import Address
from email.mime.base import MIMEBase
from email.mime.multipart import MIMEMultipart
from email.mime.nonmultipart import MIMENonMultipart
from email.policy import Compat32
from email.utils import format_datetime
from pathlib import Path
from typing import Iterable, Sequence
from zoneinfo import ZoneInfo

import jinja2

from .domain import Attachment
from .sla.calendar import MONTHS_GENITIVE, WEEKDAY_NAMES

CATEGORY_NAMES = {
    "subject_help": "помощь по предмету",
    "consultation": "консультация",
    "organizational": "организационный вопрос",
    "paper_materials": "задания на бумаге",
    "technical": "техническая проблема",
    "complaint": "жалоба",
    "other": "другое",
}

ROLE_NAMES = {
    "teacher": "учитель",
    "deputy": "заместитель директора",
    "director": "директор",
    "it": "технический специалист",
    "student": "ученик",
    "parent": "родитель",
    "staff": "сотрудник школы",
    "unknown": "отправитель не из списков школы",
}


TAG_RE = re.compile(r"\[\s*(?:№|N|No\.?|#)\s*(\d+)\s*\]", re.I)


def appeal_tag(number: int) -> str:
    return f"[№ {number}]"


def tag_number(subject: str) -> int | None:
    """The appeal number from a ``[№ N]`` tag in a subject line, if any."""
    m = TAG_RE.search(subject or "")
    return int(m.group(1)) if m else None


def format_local(moment: datetime, tz: str) -> str:
    """'среда, 10 декабря 2026, 15:00' in the school's time zone."""
    local = moment.astimezone(ZoneInfo(tz))
    return (
        f"{WEEKDAY_NAMES[local.weekday()]}, {local.day} {MONTHS_GENITIVE[local.month - 1]} "
        f"{local.year}, {local:%H:%M}"
    )


def greeting_name(full_name: str, role: str) -> str:
    """How a letter addresses a person: a student by first name, an adult by name and
    patronymic ("Фамилия Имя Отчество" in the roster). Empty when the name is unknown."""
    parts = full_name.split()
    if len(parts) < 2 or "@" in full_name:
        return ""
    if role == "student":
        return parts[1]
    return " ".join(parts[1:3])


# Reply and forward prefixes of the common clients, in Russian and English, with a
# counter ("RE[2]:", "Re^2:") or a dot ("Пересл.:"), any number of times.
_PREFIXES = re.compile(
    r"^(?:\s*(?:re|aw|fwd?|fw|ответ|отв|пересл|переслано|пер)\.?\s*(?:\[\d+\]|\^\d+|\(\d+\))?\s*:\s*)+",
    re.I,
)


def is_female(full_name: str) -> bool:
    """By the patronymic of a roster name ("Фамилия Имя Отчество"): -вна, -чна, -кызы."""
    parts = full_name.split()
    return len(parts) >= 3 and parts[2].lower().endswith(("вна", "чна", "кызы"))


def reply_subject(title: str, number: int) -> str:
    """'Re: <original> [№ N]' without piling up Re: and tags."""
    base = TAG_RE.sub("", title or "").strip()
    base = _PREFIXES.sub("", base)
    base = short_title(base) or "Ваше обращение"
    return f"Re: {base} {appeal_tag(number)}"


def short_title(title: str, limit: int = 150) -> str:
    """A subject line short enough that the appeal tag after it survives every client
    (and header folding stays cheap): cut at a word boundary, with an ellipsis."""
    title = " ".join((title or "").split())
    if len(title) <= limit:
        return title
    cut = title[:limit].rsplit(" ", 1)[0] or title[:limit]
    return cut + "…"


@dataclass(frozen=True)
class SchoolIdentity:
    name: str
    address: str
    domain: str
    timezone: str
    show_teacher_address: bool = False
    attachment_limit_mb: float = 10.0


class _LetterPolicy(Compat32):
    """How composed letters are serialised: by the legacy (compat32) generator, several
    times cheaper than ``email.policy.default``'s, for the header lines this module
    writes (ASCII addresses, dates, Message-IDs; ``Header`` objects for Russian text,
    RFC 2047-encoded in lines of at most 78 characters). A header value that the legacy
    folding cannot keep correct, one with non-ASCII text in a plain string (an address
    from a roster) or a word too long for a line (an attachment's RFC 2231 file name),
    is folded by ``email.policy.default`` as before."""

    _modern = email_policy.default

    def _folded(self, name: str, value) -> str | None:
        if not isinstance(value, str):
            return None  # a Header: compat32 encodes and folds it
        if not value.isascii() or max(map(len, value.split()), default=0) > 76 - len(name):
            return self._modern.header_factory(name, value).fold(policy=self._modern)
        if len(name) + len(value) + 2 <= self.max_line_length and "\n" not in value:
            return f"{name}: {value}{self.linesep}"  # fits a line as it is
        return None

    def fold(self, name, value):
        return self._folded(name, value) or super().fold(name, value)

    def fold_binary(self, name, value):
        folded = self._folded(name, value)
        return folded.encode("ascii") if folded is not None else super().fold_binary(name, value)


_POLICY = _LetterPolicy()
_NEWLINES = re.compile(r"\r\n?")


def _checked(name: str, value: str) -> str:
    if "\r" in value or "\n" in value:  # as email.policy.default refuses them
        raise ValueError(f"header {name}: values may not contain linefeed or carriage return characters")
    return value


def _text(name: str, value: str) -> str | Header:
    """Free text (a subject, a display name): RFC 2047-encoded unless it is ASCII."""
    _checked(name, value)
    return value if value.isascii() else Header(value, "utf-8", header_name=name)


def _from(name: str, address: str) -> str | Header:
    """'Name <address>': an ASCII name quoted where RFC 5322 needs it, any other
    RFC 2047-encoded (an encoded word needs no quoting)."""
    if name.isascii():
        return _checked("From", str(Address(display_name=name, addr_spec=address)))
    header = _text("From", name)
    header.append(f" <{address}>", "us-ascii")
    return header


def _boundary() -> str:
    # Made here, so that the generator need not search the parts for it: "==" never
    # occurs in quoted-printable text ("=" starts "=XX" or a soft line break) and "==="
    # never in base64, the only encodings these letters use. Short enough for the
    # Content-Type line to fit in 78 characters.
    return f"==={secrets.token_hex(8)}==="


def _text_part(content: str, subtype: str) -> MIMENonMultipart:
    """A UTF-8 text part, quoted-printable (7-bit safe on any relay, readable anywhere),
    its lines ending in one newline each, the last one included."""
    part = MIMENonMultipart("text", subtype, policy=_POLICY, charset="utf-8")
    del part["MIME-Version"]
    part["Content-Transfer-Encoding"] = "quoted-printable"
    content = _NEWLINES.sub("\n", content)
    if not content.endswith("\n"):
        content += "\n"
    part.set_payload(binascii.b2a_qp(content.encode("utf-8"), istext=True).decode("ascii"))
    return part


def _attachment_part(att: Attachment) -> MIMEBase:
    ctype, *params = (att.content_type or "application/octet-stream").split(";")
    maintype, _, subtype = ctype.strip().partition("/")
    part = MIMEBase(
        maintype, subtype or "octet-stream", policy=_POLICY,
        **dict((k.strip().lower(), v.strip().strip('"'))
               for k, _, v in (p.partition("=") for p in params) if k.strip()),
    )
    del part["MIME-Version"]
    part.set_payload(att.payload)
    encoders.encode_base64(part)
    part.add_header("Content-Disposition", "attachment", filename=att.filename or "attachment")
    return part


@dataclass(frozen=True)
class Rendered:
    message_id: str
    raw: bytes
    recipients: tuple[str, ...]


class Composer:
    def __init__(self, templates_dir: str | Path, school: SchoolIdentity) -> None:
        self.school = school
        loader = jinja2.FileSystemLoader(str(templates_dir))
        self._text = jinja2.Environment(
            loader=loader, autoescape=False, keep_trailing_newline=True,
            undefined=jinja2.StrictUndefined,
        )
        self._html = jinja2.Environment(
            loader=loader, autoescape=True, undefined=jinja2.StrictUndefined,
        )

    def new_message_id(self, kind: str, number: int | None) -> str:
        token = secrets.token_hex(6)
        return f"<helpdesk.{number or 0}.{kind}.{token}@{self.school.domain}>"

    def render(self, template: str, context: dict) -> tuple[str, str]:
        ctx = {"school": self.school, **context}
        text = self._text.get_template(f"{template}.txt.j2").render(ctx)
        html = self._html.get_template(f"{template}.html.j2").render(ctx)
        return text, html

    def build(
        self,
        template: str,
        context: dict,
        *,
        to: Sequence[str],
        subject: str,
        number: int | None,
        from_name: str | None = None,
        reply_to: str | None = None,
        in_reply_to: str | None = None,
        references: Iterable[str] = (),
        attachments: Iterable[Attachment] = (),
        now: datetime | None = None,
    ) -> Rendered:
        text, html = self.render(template, {"subject": subject, **context})
        body = MIMEMultipart("alternative", boundary=_boundary(), policy=_POLICY)
        body.attach(_text_part(text, "plain"))
        body.attach(_text_part(html, "html"))
        attachments = list(attachments)
        if attachments:
            msg = MIMEMultipart("mixed", boundary=_boundary(), policy=_POLICY)
            del body["MIME-Version"]
            msg.attach(body)
            for att in attachments:
                msg.attach(_attachment_part(att))
        else:
            msg = body
        message_id = self.new_message_id(template, number)
        fields = [
            ("From", _from(from_name or self.school.name, self.school.address)),
            ("To", ", ".join(to)),
            ("Subject", _text("Subject", subject)),
            ("Date", format_datetime(now or datetime.now().astimezone())),
            ("Message-ID", message_id),
        ]
        if reply_to:
            fields.append(("Reply-To", reply_to))
        if in_reply_to:
            fields.append(("In-Reply-To", in_reply_to))
        refs = [r for r in dict.fromkeys(references) if r]
        if refs:
            fields.append(("References", " ".join(refs)))
        if template != "relay":
            # RFC 3834: notices are automatic, so vacation responders stay quiet. A relay
            # carries a teacher's own words and is not marked.
            fields.append(("Auto-Submitted", "auto-generated"))
        fields.append(("X-Helpdesk-Appeal", str(number or "")))
        for name, value in fields:
            msg[name] = value if isinstance(value, Header) else _checked(name, value)
        return Rendered(message_id=message_id, raw=msg.as_bytes(policy=_POLICY), recipients=tuple(to))
