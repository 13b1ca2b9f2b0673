"""Rendering outgoing letters from the jinja2 templates into RFC 5322 bytes.

Pure apart from reading templates: the store stage calls ``Composer.build`` and
keeps the bytes, so what the outbox sends later is exactly what was decided now.
Every letter is multipart/alternative (plain text first, HTML second), UTF-8,
threaded with In-Reply-To/References and tagged ``[№ N]`` in the subject.
"""
from __future__ import annotations

import re
import secrets
from dataclasses import dataclass
from datetime import datetime
from email.headerregistry import Address
from email.message import EmailMessage
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
        msg = EmailMessage()
        msg["From"] = Address(from_name or self.school.name, addr_spec=self.school.address)
        msg["To"] = ", ".join(to)
        msg["Subject"] = subject
        msg["Date"] = format_datetime(now or datetime.now().astimezone())
        message_id = self.new_message_id(template, number)
        msg["Message-ID"] = message_id
        if reply_to:
            msg["Reply-To"] = reply_to
        if in_reply_to:
            msg["In-Reply-To"] = in_reply_to
        refs = [r for r in dict.fromkeys(references) if r]
        if refs:
            msg["References"] = " ".join(refs)
        if template != "relay":
            # RFC 3834: notices are automatic, so vacation responders stay quiet. A relay
            # carries a teacher's own words and is not marked.
            msg["Auto-Submitted"] = "auto-generated"
        msg["X-Helpdesk-Appeal"] = str(number or "")
        msg.set_content(text, cte="quoted-printable")
        msg.add_alternative(html, subtype="html", cte="quoted-printable")
        for att in attachments:
            ctype, *params = (att.content_type or "application/octet-stream").split(";")
            maintype, _, subtype = ctype.strip().partition("/")
            msg.add_attachment(
                att.payload, maintype=maintype, subtype=subtype or "octet-stream",
                filename=att.filename or "attachment",
                params=dict(
                    (k.strip().lower(), v.strip().strip('"'))
                    for k, _, v in (p.partition("=") for p in params) if k.strip()
                ),
            )
        return Rendered(message_id=message_id, raw=msg.as_bytes(), recipients=tuple(to))
