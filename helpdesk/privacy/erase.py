"""Erasure: a student or parent removed from the roster, wiped from every table.

``plan_erasure(email)`` finds what holds the person's data; ``erase(plan)``
replaces it, in one transaction:

- their appeals (as sender, or as the student concerned): the address, the
  name and the subject line become "удалено"; dates, class, subject, category,
  assignee and status stay, so the statistics are unchanged;
- their own letters: every letter of those appeals, every incoming letter from
  the address (any case) and every outgoing letter to it: the bytes become
  ``REMOVED_RAW``. An unprocessed letter from them is marked ignored; an unsent
  letter of theirs is cancelled (failed);
- then every text column of every table (found generically, so new tables are
  covered) has the address and the names replaced;
- a letter the school sent that belongs to no appeal (a digest, a notice) and
  still names them is removed too, once sent or failed;
- any other stored letter that mentions them (another person's letter or appeal,
  a letter not yet sent or processed) is left as it is and listed in the result,
  for the operator to decide: it is someone else's data too;
- their roster rows (the inactive person, parent links) are deleted.

What "mentions" means (``Scrubber``): the address as a whole token, in any case
(``joann@x`` is not ``ann@x``); the full name from the roster and display names
of their letters, only when they have at least two words, as whole words in any
case, in the written form (declined Russian forms are not found). In a stored
letter only the decoded headers and the decoded text parts are read, never the
raw bytes nor attachments.

An event "erased" records that it happened and how much, without the data.
"""
from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from email import message_from_bytes
from typing import Iterator

from peewee import BlobField, CharField, Model, TextField, fn

from ..understand.parse import decode_bytes, decode_header_value
from ..store.models import ALL_MODELS, Appeal, BaseModel, Event, Letter, Meta, Outgoing, Parent, Person, database, utcnow
from . import MARKER, REMOVED_RAW, flush_journal, overwrite_freed_space

FINISHED = ("answered", "closed")
MIN_NAME_WORDS = 2  # a single word ("Max", "Лев") would match other people: never used alone
# Meta: facts about the database itself. Person and Parent: the roster, where the
# person's own rows are deleted; a namesake's row must not be touched.
SKIPPED_MODELS = (Meta, Person, Parent)


class ErasureRefused(Exception):
    """The person is still on the active roster or has open appeals (without --force)."""


@dataclass
class ErasePlan:
    email: str
    names: tuple[str, ...]  # full names to wipe everywhere
    on_roster: list[str] = field(default_factory=list)  # why they are still active, if they are
    appeals: list[int] = field(default_factory=list)
    open_appeals: list[int] = field(default_factory=list)


@dataclass
class EraseResult:
    appeals: int = 0
    closed: int = 0  # open appeals closed because of --force
    letters: int = 0
    unprocessed: int = 0  # of those, letters still waiting: marked ignored
    outgoing: int = 0
    cancelled: int = 0  # of those, letters not yet sent: cancelled
    rows: int = 0  # rows of any table whose text had the address or a name
    roster_rows: int = 0
    # Other people's letters that mention them, left untouched: [letter id, appeal number or None]
    kept_letters: list[list] = field(default_factory=list)
    kept_outgoing: list[list] = field(default_factory=list)

    @property
    def empty(self) -> bool:
        return not any(vars(self).values())

    def summary(self) -> str:
        if self.empty:
            return "nothing stored about this address: nothing erased"
        text = (f"erased: {self.appeals} appeals ({self.closed} open ones closed), {self.letters} incoming "
                f"letters ({self.unprocessed} unprocessed, now ignored), {self.outgoing} outgoing letters "
                f"({self.cancelled} unsent, now cancelled), {self.rows} other rows rewritten, "
                f"{self.roster_rows} roster rows deleted")
        kept = len(self.kept_letters) + len(self.kept_outgoing)
        if kept:
            text += (f"\nleft untouched, for you to review: {kept} letters of other people that mention them"
                     f"{_listing('incoming', self.kept_letters)}{_listing('outgoing', self.kept_outgoing)}")
        return text


def _listing(what: str, rows: list[list]) -> str:
    if not rows:
        return ""
    items = ", ".join(f"{i}" + (f" (appeal {n})" if n is not None else " (no appeal)") for i, n in rows)
    return f"; {what} letter ids: {items}"


def all_models() -> list[type[Model]]:
    """Every table of the schema: the base models and those of every migration."""
    from ..digest.models import DIGEST_MODELS
    from ..routing.models import ROUTING_MODELS
    from ..sla.models import SLA_MODELS

    found: list[type[Model]] = [*ALL_MODELS, *SLA_MODELS, *ROUTING_MODELS, *DIGEST_MODELS]
    stack = list(BaseModel.__subclasses__())
    while stack:  # tables added later (other modules' models) are covered too
        model = stack.pop()
        stack.extend(model.__subclasses__())
        if model not in found and database.table_exists(model._meta.table_name):
            found.append(model)
    return [m for m in found if m not in SKIPPED_MODELS]


def plan_erasure(email: str) -> ErasePlan:
    email = email.strip().lower()
    names: set[str] = set()
    on_roster: list[str] = []
    for person in Person.select().where(fn.LOWER(Person.email) == email):
        names.add(person.full_name)
        if person.active:
            on_roster.append(f"{email} is an active {person.kind} on the roster")
    for parent in Parent.select(Parent, Person).join(Person).where(fn.LOWER(Parent.email) == email):
        if parent.student.active:
            on_roster.append(f"{email} is a parent of {parent.student.full_name}, who is on the roster")
    rows = list(Appeal.select(Appeal.number, Appeal.status, Appeal.sender, Appeal.sender_name)
                .where((fn.LOWER(Appeal.sender) == email) | (fn.LOWER(Appeal.student) == email))
                .order_by(Appeal.number))
    names.update(a.sender_name for a in rows if a.sender.lower() == email and a.sender_name)
    return ErasePlan(
        email=email,
        names=tuple(sorted({" ".join(n.split()) for n in names if n and len(n.split()) >= MIN_NAME_WORDS},
                           key=len, reverse=True)),
        on_roster=on_roster,
        appeals=[a.number for a in rows],
        open_appeals=[a.number for a in rows if a.status not in FINISHED],
    )


class Scrubber:
    """Finds and replaces the address and the names with the marker.

    The address only as a whole token (not inside ``joann@x`` or ``ann@x.ru.evil``),
    the names only as whole words; both in any case. A name is also looked for as
    ``json.dumps`` (ensure_ascii) writes it, bounded so that it is not part of a
    longer escaped word."""

    def __init__(self, email: str, names: tuple[str, ...]):
        parts = []
        if email:
            parts.append(r"(?<![\w.+-])" + re.escape(email) + r"(?![\w-]|\.[\w-])")  # a full stop may end it
        for name in sorted(set(names), key=len, reverse=True):
            words = name.split()
            if len(words) < MIN_NAME_WORDS:
                continue
            parts.append(r"(?<!\w)" + r"\s+".join(map(re.escape, words)) + r"(?!\w)")
            escaped = json.dumps(" ".join(words))[1:-1]
            if escaped != " ".join(words):
                parts.append(r"(?<!\w)" + re.escape(escaped).replace(r"\ ", " ").replace(" ", r"\s+")
                             + r"(?!\w|\\u)")
        self.pattern = re.compile("|".join(parts), re.IGNORECASE) if parts else None

    def found(self, text: str | None) -> bool:
        return bool(text) and self.pattern is not None and self.pattern.search(text) is not None

    def __call__(self, text: str) -> str:
        return self.pattern.sub(MARKER, text) if self.pattern is not None else text

    def in_letter(self, raw: bytes) -> bool:
        """Whether the letter's decoded headers or decoded text parts mention the person."""
        if raw == REMOVED_RAW:
            return False
        return any(self.found(text) for text in letter_texts(raw))


def letter_texts(raw: bytes) -> Iterator[str]:
    """The letter's decoded headers and text parts, decoded as the understanding step
    decodes them (RFC 2047, base64, QP, mislabelled charsets); never the raw bytes
    (base64 of an attachment may hold any short string) nor attachments."""
    try:
        msg = message_from_bytes(raw)  # compat32: much faster than policy.default here
        for _name, value in msg.items():
            yield decode_header_value(str(value))
        for part in msg.walk():
            if part.get_content_maintype() != "text" or part.get_content_disposition() == "attachment":
                continue
            yield decode_bytes(part.get_payload(decode=True) or b"", part.get_content_charset())[0]
    except Exception:  # noqa: BLE001 - a letter that cannot be parsed at all: nothing to read
        return


def refusal(plan: ErasePlan, force: bool = False) -> str | None:
    """Why the erasure must not go ahead without --force (None: it may)."""
    if force:
        return None
    if plan.on_roster:
        return ("; ".join(plan.on_roster) + ": remove them from the roster first "
                "(helpdesk roster import), or give --force")
    if plan.open_appeals:
        return (f"{plan.email} has open appeals ({', '.join(map(str, plan.open_appeals))}): "
                "let them be answered first, or give --force (they are closed)")
    return None


def erase(plan: ErasePlan, *, force: bool = False) -> EraseResult:
    why = refusal(plan, force)
    if why:
        raise ErasureRefused(why)
    scrub = Scrubber(plan.email, plan.names)
    result = EraseResult(appeals=len(plan.appeals))
    now = utcnow()
    overwrite_freed_space()
    with database.atomic():
        if plan.open_appeals:
            result.closed = _close(plan.open_appeals, now)
        letter_ids = _erase_letters(plan, result)
        _erase_outgoing(plan, letter_ids, result)
        if plan.appeals:
            mine = Appeal.number.in_(plan.appeals)
            Appeal.update(title=MARKER, updated_at=now).where(mine).execute()
            Appeal.update(sender=MARKER, sender_name=MARKER).where(
                mine & (fn.LOWER(Appeal.sender) == plan.email)).execute()
            Appeal.update(student=MARKER).where(mine & (fn.LOWER(Appeal.student) == plan.email)).execute()
        result.rows = _scrub_all_tables(scrub)
        _other_letters(scrub, result)
        result.roster_rows = _delete_roster_rows(plan.email)
        if result.empty:
            return result
        Event.create(
            kind="erased",
            message=("Персональные данные одного человека стёрты по запросу (helpdesk erase): "
                     f"обращений {result.appeals}, входящих писем {result.letters}, исходящих "
                     f"{result.outgoing}; статистика обращений сохранена."),
            data=json.dumps(vars(result), ensure_ascii=False),
        )
    flush_journal()
    return result


def _close(numbers: list[int], now) -> int:
    from ..sla.models import CANCELLED, PENDING, SlaStep

    SlaStep.update(state=CANCELLED, done_at=now, note="обращение закрыто: данные стёрты").where(
        SlaStep.appeal.in_(numbers) & (SlaStep.state == PENDING)).execute()
    return Appeal.update(status="closed", closed_at=now, updated_at=now).where(
        Appeal.number.in_(numbers) & Appeal.status.not_in(FINISHED)).execute()


def _erase_letters(plan: ErasePlan, result: EraseResult) -> list[int]:
    where = fn.LOWER(Letter.sender) == plan.email  # not lower-cased at ingest
    if plan.appeals:
        where |= Letter.appeal.in_(plan.appeals)
    ids = [i for (i,) in Letter.select(Letter.id).where(where).tuples()]
    if not ids:
        return ids
    result.unprocessed = Letter.update(status="ignored", reason="данные стёрты (helpdesk erase)").where(
        Letter.id.in_(ids) & (Letter.status == "new")).execute()
    result.letters = Letter.update(raw=REMOVED_RAW, title=MARKER).where(Letter.id.in_(ids)).execute()
    return ids


def _addressed_to(recipients: str | None, email: str) -> bool:
    try:
        listed = json.loads(recipients or "[]")
    except ValueError:
        listed = []
    return isinstance(listed, list) and any(isinstance(r, str) and r.strip().lower() == email for r in listed)


def _erase_outgoing(plan: ErasePlan, letter_ids: list[int], result: EraseResult) -> None:
    """Their outgoing letters: of their appeals, caused by their letters, or addressed to them."""
    ids = set()
    if plan.appeals:
        ids |= {i for (i,) in Outgoing.select(Outgoing.id).where(Outgoing.appeal.in_(plan.appeals)).tuples()}
    if letter_ids:
        ids |= {i for (i,) in Outgoing.select(Outgoing.id).where(Outgoing.letter.in_(letter_ids)).tuples()}
    for row_id, recipients in Outgoing.select(Outgoing.id, Outgoing.recipients).where(
            Outgoing.recipients.contains(plan.email)).tuples():  # LIKE: case-insensitive enough to narrow
        if _addressed_to(recipients, plan.email):
            ids.add(row_id)
    _remove_outgoing(sorted(ids), result)


def _remove_outgoing(ids: list[int], result: EraseResult) -> None:
    if not ids:
        return
    result.cancelled += Outgoing.update(status="failed", last_error="отменено: данные адресата стёрты "
                                        "(helpdesk erase)").where(
        Outgoing.id.in_(ids) & Outgoing.status.in_(("queued", "sending"))).execute()
    result.outgoing += Outgoing.update(raw=REMOVED_RAW).where(Outgoing.id.in_(ids)).execute()


def _text_fields(model: type[Model]) -> list:
    return [f for f in model._meta.sorted_fields
            if isinstance(f, (CharField, TextField)) and not f.primary_key]


def _scrub_all_tables(scrub: Scrubber) -> int:
    changed = 0
    for model in all_models():
        fields = _text_fields(model)
        pk = model._meta.primary_key
        if not fields or pk is None:
            continue
        updates = []
        for row in model.select(pk, *fields).tuples().iterator():
            new = {f: scrub(v) for f, v in zip(fields, row[1:]) if scrub.found(v)}
            if new:
                updates.append((row[0], new))
        for key, new in updates:
            model.update(new).where(pk == key).execute()
        changed += len(updates)
    return changed


def _mentions(model: type[Model], scrub: Scrubber, *columns) -> list[tuple]:
    """Rows (id, *columns) whose stored letter (any BLOB column) still mentions the person."""
    blobs = [f for f in model._meta.sorted_fields if isinstance(f, BlobField)]
    found = []
    for row in model.select(model._meta.primary_key, *columns, *blobs).tuples().iterator():
        if any(value is not None and scrub.in_letter(bytes(value)) for value in row[1 + len(columns):]):
            found.append(row[:1 + len(columns)])
    return found


def _other_letters(scrub: Scrubber, result: EraseResult) -> None:
    """Letters not theirs that still mention them. Only a letter the school sent that belongs
    to no appeal (a digest, a notice), already sent or failed, is removed; every other one
    (another person's letter or appeal, an unsent or unprocessed letter) is only listed."""
    result.kept_letters = [[i, appeal] for i, appeal in _mentions(Letter, scrub, Letter.appeal)]
    remove = []
    for i, appeal, status in _mentions(Outgoing, scrub, Outgoing.appeal, Outgoing.status):
        if appeal is None and status in ("sent", "failed"):
            remove.append(i)
        else:
            result.kept_outgoing.append([i, appeal])
    if remove:
        result.outgoing += Outgoing.update(raw=REMOVED_RAW).where(Outgoing.id.in_(remove)).execute()


def _delete_roster_rows(email: str) -> int:
    parents = Parent.delete().where(fn.LOWER(Parent.email) == email).execute()
    people = Person.select(Person.id).where(fn.LOWER(Person.email) == email)
    parents += Parent.delete().where(Parent.student.in_(people)).execute()
    return parents + Person.delete().where(fn.LOWER(Person.email) == email).execute()
