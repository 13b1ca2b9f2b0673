"""Teachers' mail commands: lines starting with ``#`` in a reply (pure).

    #закрыть [заметка]                    close without a reply to the student
    #переназначить email / #передать email hand the appeal over to a colleague
    #консультация 2026-12-02 15:00 Сферум  invite the student (an .ics file is attached)
    #ждём                                  the teacher asked the student a question: pause

Words are matched by their stem, so "#Закрыто", "#передаю", "#ждем" and
"#консультации" work as well; an unknown word is reported so the teacher gets
a short help letter. Only lines of the teacher's own new text are read (the
caller passes the extracted reply, quotes already removed).
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date, datetime, time

HELP = """Команды пишутся в начале отдельной строки ответа:
  #закрыть [заметка] — закрыть обращение без ответа ученику (например, ответили по телефону);
  #передать адрес@школы — передать обращение коллеге (или #переназначить адрес@школы);
  #консультация 2026-12-02 15:00 Сферум — пригласить ученика на консультацию (придёт файл календаря);
  #ждём — вы задали ученику вопрос: срок приостановлен до его ответа.
Остальной текст письма уходит ученику как ваш ответ."""

_COMMAND_LINE = re.compile(r"^\s*#\s*([A-Za-zА-Яа-яЁё-]+)\s*(.*)$")
_EMAIL = re.compile(r"[\w.+-]+@[\w-]+(?:\.[\w-]+)+")
# Stems, checked in order; the value is the command's canonical name.
_STEMS = (
    ("закры", "close"),
    ("закро", "close"),
    ("переназнач", "reassign"),
    ("переда", "reassign"),
    ("консульт", "consultation"),
    ("жд", "wait"),
    ("жёд", "wait"),
    ("ожида", "wait"),
)
_DATE_FORMATS = ("%Y-%m-%d", "%d.%m.%Y", "%d.%m.%y", "%d.%m")
_TIME = re.compile(r"^(\d{1,2})[:.](\d{2})$")


@dataclass(frozen=True)
class Command:
    name: str  # close | reassign | consultation | wait | unknown
    word: str  # as written, for messages
    argument: str = ""
    email: str | None = None
    when: datetime | None = None  # naive, school-local
    place: str = ""
    error: str = ""  # why the command cannot be carried out, in Russian


@dataclass(frozen=True)
class ParsedReply:
    commands: tuple[Command, ...]
    text: str  # the reply without command lines


def _canonical(word: str) -> str:
    w = word.lower().replace("ё", "е")
    for stem, name in _STEMS:
        if w.startswith(stem.replace("ё", "е")):
            return name
    return "unknown"


def _parse_when(argument: str, today: date) -> tuple[datetime | None, str, str]:
    """'2026-12-02 15:00 Сферум' -> (datetime, place, error)."""
    parts = argument.split()
    if len(parts) < 2:
        return None, "", "укажите дату и время, например: #консультация 2026-12-02 15:00 Сферум"
    day = None
    for fmt in _DATE_FORMATS:
        try:
            parsed = datetime.strptime(parts[0], fmt)
        except ValueError:
            continue
        day = parsed.date().replace(year=today.year) if fmt == "%d.%m" else parsed.date()
        break
    m = _TIME.match(parts[1])
    if day is None or not m or int(m.group(1)) > 23 or int(m.group(2)) > 59:
        return None, "", f"не понял дату и время «{parts[0]} {parts[1]}»; пример: 2026-12-02 15:00"
    if day < today:
        if fmt == "%d.%m":  # "12.01" written in December: the coming January
            day = day.replace(year=today.year + 1)
        else:
            return None, "", f"дата {day:%d.%m.%Y} уже прошла"
    when = datetime.combine(day, time(int(m.group(1)), int(m.group(2))))
    return when, " ".join(parts[2:]), ""


def _command(word: str, argument: str, today: date) -> Command:
    name = _canonical(word)
    argument = argument.strip()
    if name == "reassign":
        m = _EMAIL.search(argument)
        if not m:
            return Command(name, word, argument, error="укажите адрес коллеги: #передать адрес@школы")
        return Command(name, word, argument, email=m.group(0).lower())
    if name == "consultation":
        when, place, error = _parse_when(argument, today)
        return Command(name, word, argument, when=when, place=place, error=error)
    if name == "unknown":
        return Command(name, word, argument, error=f"неизвестная команда «#{word}»")
    return Command(name, word, argument)


def parse_reply(text: str, today: date) -> ParsedReply:
    """Split a teacher's new text into commands and the words for the student."""
    commands: list[Command] = []
    kept: list[str] = []
    for line in text.splitlines():
        m = _COMMAND_LINE.match(line)
        if m and not line.lstrip().startswith("##"):
            commands.append(_command(m.group(1), m.group(2), today))
        else:
            kept.append(line)
    return ParsedReply(tuple(commands), "\n".join(kept).strip())
