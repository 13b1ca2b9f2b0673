"""The new text of a reply: quotes, quote headers and signatures removed.

A teacher answers from an ordinary mail client, which adds the quoted appeal, a
quote header ("пт, 27 нояб. 2026 г. в 10:00, Имя <a@b>:") and a signature. Only
the new text is relayed to the student.

The text is read as a sequence of lines, each one classified as new text, a
">"-quoted line or a quote header. All patterns live in the tables below; the
algorithm is in ``_extract``:

1. An inline answer (new text between quoted lines) is returned whole.
2. Otherwise the letter is cut at the first quote header; the part before it,
   without trailing ">" lines, is the answer. When that part is empty the writer
   answered below the quote (bottom-posting), and the answer is the unquoted text
   after it.
3. A signature is cut off the answer.
4. If nothing is left, the original text (stripped) is returned: never empty when
   the letter had text.
"""
from __future__ import annotations

import re
from dataclasses import dataclass

from helpdesk.understand.html import has_quote_markup, html_to_text, strip_html_quotes

__all__ = ["extract_reply"]


@dataclass(frozen=True)
class _Pattern:
    client: str  # which client writes it (documentation only)
    regex: re.Pattern[str]
    quotes_unprefixed: bool = False  # True: the original follows without ">" prefixes


def _p(client: str, pattern: str, unprefixed: bool = False) -> _Pattern:
    return _Pattern(client, re.compile(pattern, re.IGNORECASE), unprefixed)


_TIME = r"\d{1,2}:\d{2}"
_EMAIL = r"[^\s<>@]+@[^\s<>@]+"

# Quote headers: the line that introduces the quoted original. Matched against a
# stripped line with any leading ">" removed, and against a line joined with the
# next one (Gmail wraps long header lines in text/plain).
QUOTE_HEADERS: tuple[_Pattern, ...] = (
    # Gmail, Russian: "пт, 27 нояб. 2026 г. в 10:00, Имя <a@b>:"
    _p("gmail-ru", rf"^[а-яё]{{2}},\s+\d{{1,2}}\s+[а-яё]{{3,8}}\.?\s+\d{{4}}\s*г\.?,?\s+в\s+{_TIME}.*:$"),
    # Gmail / Apple Mail / Thunderbird, English: "On Fri, Nov 27, 2026 at 10:00 AM Name <a@b> wrote:"
    _p("gmail-en", r"^On\s.{4,}\s(?:wrote|writes):$"),
    # Yandex: "27.11.2026, 10:00, "Имя" <a@b>:"
    _p("yandex", rf"^\d{{1,2}}\.\d{{1,2}}\.\d{{2,4}},?\s+{_TIME},\s+.+:$"),
    # Mail.ru: "Пятница, 27 ноября 2026, 10:00 +03:00 от Имя <a@b>:"
    _p("mailru", rf"^[а-яё]+,\s+\d{{1,2}}\s+[а-яё]+\s+\d{{4}},\s+{_TIME}(?:\s+[+-]\d{{2}}:?\d{{2}})?\s+от\s+.+:$"),
    # Outlook: "-----Исходное сообщение-----" / "-----Original Message-----"
    _p(
        "outlook",
        r"^-{2,}\s*(?:исходное сообщение|original message|пересылаемое сообщение"
        r"|forwarded message|перенаправленное сообщение)\s*-{2,}$",
        unprefixed=True,
    ),
    # Apple Mail / Outlook.com, Russian: "... Имя <a@b> написал(а):"
    _p("apple-ru", r"^.{0,250}\sнаписал\(а\):$"),
    # Thunderbird and others: "27.11.2026 10:00, Имя пишет:" / "Name <a@b> wrote:".
    # A bare "пишет:" is common in ordinary text, so a time or an address is required.
    _p(
        "writes",
        rf"^(?=.{{0,250}}(?:{_TIME}|@)).{{0,250}}\b(?:пишет|(?:на)?писал(?:\(а\)|а)?|wrote|writes):$",
    ),
    # Any client: a line with a time and an address in angle brackets, ending with ":"
    _p("dated-address", rf"^.{{0,200}}{_TIME}.{{0,200}}<{_EMAIL}>\s*:$"),
)

# The Outlook header block without a separator line:
#   От: Имя <a@b> / Отправлено: ... / Кому: ... / Тема: ...
_OUTLOOK_FROM = re.compile(r"^(?:от|from|отправитель):\s*\S", re.IGNORECASE)
_OUTLOOK_FIELDS = re.compile(
    r"^(?:отправлено|sent|дата|date|кому|to|копия|cc|тема|subject):\s*", re.IGNORECASE
)
_OUTLOOK_FIELDS_NEEDED = 2  # of the fields after "От:", within the next lines
_OUTLOOK_BLOCK_LINES = 6
_SEPARATOR = re.compile(r"^\s*(?:_{8,}|-{8,}|={8,})\s*$")

# Signatures: the marker line and everything after it is dropped.
SIGNATURE_DELIMITER = re.compile(r"^--\s*$")  # RFC 3676 "-- " (the space is often lost)
SIGNATURE_MARKERS: tuple[re.Pattern[str], ...] = tuple(
    re.compile(p, re.IGNORECASE)
    for p in (
        r"^с\s+уважением\b[\s,.!]*.{0,60}$",
        r"^с\s+наилучшими\s+пожеланиями\b.{0,60}$",
        r"^(?:best|kind|warm)\s+regards\b.{0,60}$",
        r"^regards,?$",
        r"^sincerely,?.{0,60}$",
        # "Отправлено с iPhone", "Отправлено из мобильной Почты Mail.ru",
        # "Отправлено из Mail.ru для Android", "Sent from my iPhone"
        r"^(?:отправлено|послано|sent|получено)\s+(?:с|со|из|from|via|with|using)\s+.{1,60}$",
        r"^(?:get|получите)\s+outlook\s+(?:for|для)\s+\S+$",
    )
)
# Closing phrases and mobile footers count only near the end of the answer, so a
# sentence that happens to start with "Отправлено из ..." early on is kept.
_SIGNATURE_ZONE = 10  # last non-blank lines

_QUOTED = re.compile(r"^\s*>")


def _normalize(text: str) -> str:
    return (text or "").replace("\r\n", "\n").replace("\r", "\n")


def _header_text(line: str) -> str:
    """A line as quote-header patterns see it: no ">" prefix, single spaces."""
    return " ".join(line.lstrip(" >").split())


def _matches_header(candidate: str) -> _Pattern | None:
    if not candidate or len(candidate) > 500:
        return None
    return next((p for p in QUOTE_HEADERS if p.regex.match(candidate)), None)


@dataclass(frozen=True)
class _Header:
    start: int  # first line of the header (a separator line above it included)
    end: int  # first line after it
    unprefixed: bool  # the quoted original that follows has no ">" prefixes


def _outlook_block(lines: list[str], i: int) -> _Header | None:
    if not _OUTLOOK_FROM.match(_header_text(lines[i])):
        return None
    fields = 0
    j = i + 1
    while j < len(lines) and j <= i + _OUTLOOK_BLOCK_LINES:
        text = _header_text(lines[j])
        if _OUTLOOK_FIELDS.match(text):
            fields += 1
        elif text and fields >= _OUTLOOK_FIELDS_NEEDED:
            break
        j += 1
    if fields < _OUTLOOK_FIELDS_NEEDED:
        return None
    start = i
    k = i - 1
    while k >= 0 and not lines[k].strip():
        k -= 1
    if k >= 0 and _SEPARATOR.match(lines[k]):
        start = k  # Outlook on the web draws a line of underscores above the block
    return _Header(start, j, True)


def _find_header(lines: list[str]) -> _Header | None:
    for i, line in enumerate(lines):
        text = _header_text(line)
        if not text:
            continue
        pattern = _matches_header(text)
        if pattern:
            return _Header(i, i + 1, pattern.quotes_unprefixed)
        if i + 1 < len(lines) and not text.endswith(":"):
            joined = f"{text} {_header_text(lines[i + 1])}"
            pattern = _matches_header(joined)
            if pattern and not _matches_header(_header_text(lines[i + 1])):
                return _Header(i, i + 2, pattern.quotes_unprefixed)
        block = _outlook_block(lines, i)
        if block:
            return block
    return None


def _signature_index(lines: list[str]) -> int:
    """Index of the line a signature starts at, or len(lines) when there is none."""
    nonblank_after = [0] * (len(lines) + 1)  # non-blank lines from i to the end
    for i in range(len(lines) - 1, -1, -1):
        nonblank_after[i] = nonblank_after[i + 1] + (1 if lines[i].strip() else 0)
    for i, line in enumerate(lines):
        if line.startswith("--") and SIGNATURE_DELIMITER.match(line):
            return i
        if nonblank_after[i] <= _SIGNATURE_ZONE:
            text = " ".join(line.split())
            if any(p.match(text) for p in SIGNATURE_MARKERS):
                return i
    return len(lines)


def _runs(lines: list[str], header: _Header | None) -> list[str]:
    """Line kinds in order, blank lines skipped and repeats merged: "N" new, "Q" quoted.

    A quote header counts as quoted; a signature ends the scan (what follows it is
    not an answer); an Outlook-style header ends it too, because the original after
    it carries no ">" prefixes.
    """
    runs: list[str] = []
    signature = _signature_index(lines)
    for i, line in enumerate(lines):
        if header and header.unprefixed and i >= header.start:
            break
        if not line.strip():
            continue
        if header and header.start <= i < header.end:
            kind = "Q"
        elif _QUOTED.match(line):
            kind = "Q"
        elif i >= signature:
            break
        else:
            kind = "N"
        if not runs or runs[-1] != kind:
            runs.append(kind)
    return runs


def _has_text(lines: list[str]) -> bool:
    return any(line.strip() for line in lines)


def _trim(lines: list[str]) -> list[str]:
    """Drop trailing blank, ">"-quoted and separator lines, and leading blank lines."""
    end = len(lines)
    while end and (not lines[end - 1].strip() or _QUOTED.match(lines[end - 1])
                   or _SEPARATOR.match(lines[end - 1])):
        end -= 1
    start = 0
    while start < end and not lines[start].strip():
        start += 1
    return lines[start:end]


def _extract(text: str) -> str:
    text = _normalize(text)
    lines = [line.rstrip() for line in text.split("\n")]
    header = _find_header(lines)
    runs = _runs(lines, header)
    if len(runs) >= 3:  # Q N Q or N Q N: an inline answer, kept whole
        return text.strip()
    head = lines[: header.start] if header else lines
    answer = _trim(head)
    if not _has_text(answer):
        # Bottom-posting: skip the quote, keep the unquoted text that follows it.
        after = lines[header.end:] if header and not header.unprefixed else lines
        answer = _trim([line for line in after if not _QUOTED.match(line)])
    answer = _trim(answer[: _signature_index(answer)])
    return "\n".join(answer).strip()


def extract_reply(text: str, html: str | None = None) -> str:
    """Only the new text of a reply.

    ``text`` is the text/plain body, ``html`` the HTML part if any. When the plain
    text is empty or the HTML carries quote markup, quotes are stripped on the
    HTML side first (its markup is more reliable than quote headers), then the
    converted text goes through the same line rules as plain text.
    """
    text = _normalize(text)
    if html and (not text.strip() or has_quote_markup(html)):
        from_html = _extract(html_to_text(strip_html_quotes(html)))
        if from_html:
            return from_html
    if text.strip():
        return _extract(text)
    return _extract(html_to_text(html)) if html else ""
