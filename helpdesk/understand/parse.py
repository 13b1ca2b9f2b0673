"""Raw letter bytes -> ParsedLetter: headers, readable text, attachments.

mail-parser builds the MIME tree (``mailparser.parse_from_bytes`` wraps the stdlib
parser with a guard against pathological nesting). Its decoded fields fall short
for a Russian school's mail, so fields are read from that tree with the stdlib
``email`` package instead:

* an 8-bit header in windows-1251 comes out of mail-parser as escape sequences,
  and a quoted encoded word in a display name ("=?utf-8?B?...?=" <a@b>, as Outlook
  writes it) stays encoded;
* a body labelled us-ascii (or unlabelled) but written in windows-1251 or KOI8-R
  becomes U+FFFD replacement characters;
* the text of a message/rfc822 attachment is merged into the letter's own body;
* attachment payloads are base64 text, and a nameless attachment gets a random name;
* its Date is converted to UTC, losing the sender's offset.

Charsets are decoded by ``decode_bytes``: the declared charset when it fits, else a
guess (see ``_guess``). Survivable problems are listed in ``ParsedLetter.defects``
as short English strings; ``UnparseableLetter`` is raised only when no sender can
be found or the bytes are not a letter at all.
"""
from __future__ import annotations

import binascii
import codecs
import email
import email.utils
import mimetypes
import re
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from email import policy
from email.message import Message

import mailparser
from mailparser.exceptions import MailParserError, MailParserRecursionError

from helpdesk.domain import Attachment, ParsedLetter
from helpdesk.understand.html import html_to_text

__all__ = ["parse_letter", "UnparseableLetter", "decode_bytes", "decode_header_value"]


class UnparseableLetter(Exception):
    """The bytes cannot be made into a letter; ``reason`` says why, in Russian."""

    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason


# --------------------------------------------------------------------------- #
# Charsets
# --------------------------------------------------------------------------- #

# Labels Python does not know, as Russian mail software writes them.
_CHARSET_ALIASES = {
    "win-1251": "cp1251",
    "win1251": "cp1251",
    "x-cp1251": "cp1251",
    "cp-1251": "cp1251",
    "windows-1251r": "cp1251",
    "x-koi8-r": "koi8-r",
    "koi8": "koi8-r",
    "x-ibm866": "cp866",
    "dos-866": "cp866",
    "x-mac-cyrillic": "mac-cyrillic",
    "x-unicode20utf8": "utf-8",
    "unicode-1-1-utf-8": "utf-8",
}

# Labels that say nothing about 8-bit data: 8-bit bytes under them are mislabelled.
_NO_LABEL = frozenset(
    {"ascii", "us-ascii", "ansi_x3.4-1968", "iso646-us", "unknown-8bit", "x-unknown",
     "unknown", "default", "none", "8bit", "x-user-defined", "charset"}
)

# Codecs whose every byte decodes to something, so a wrong label never fails.
_SINGLE_BYTE = re.compile(r"^(?:cp\d+|iso8859-\d+|koi8-[ru]|mac-\w+|latin-?1|tis-620)$")

# Candidates for 8-bit text with no usable label, most common first (wins ties).
_GUESSES = ("cp1251", "koi8-r", "cp866")

# Russian letters by frequency: 3 for the eight most frequent, 1 for the rarest.
_LETTER_WEIGHT = {
    **dict.fromkeys("оеаинтср", 3),
    **dict.fromkeys("влкмдпуяыьгз", 2),
    **dict.fromkeys("бчйхжшюцщэфъё", 1),
}
# Non-ASCII characters normal in Russian text that are not letters.
_TYPOGRAPHY = frozenset("«»—–…№“”„‘’•°\u00a0\u202f")


def _codec(label: str | None) -> str | None:
    """Python codec name for a MIME charset label, or None if unknown or meaningless."""
    if not label:
        return None
    label = label.strip().strip("\"'").lower()
    label = _CHARSET_ALIASES.get(label, label)
    if label in _NO_LABEL:
        return None
    try:
        name = codecs.lookup(label).name
    except LookupError:
        return None
    return None if name == "ascii" else name


def _plausibility(text: str) -> float:
    """How much a decoding looks like Russian text; higher is better.

    A wrong Cyrillic code page gives itself away in two ways, and both are counted:
    letters turn into symbols, box drawing or Latin-1 letters (each costs 4), and
    letter case flips, because KOI8-R and windows-1251 keep lower- and upper-case
    letters in opposite halves, so "привет" read in the wrong one is "пРИВЕТ" (an
    upper-case letter right after a lower-case one costs 5). Letters score by how
    frequent they are in Russian. Whole lines are told apart reliably; a lone
    short word or an all-caps line ("ОГЭ") may still be guessed wrong.
    """
    score = 0.0
    prev = " "
    for ch in text:
        low = ch.lower()
        weight = _LETTER_WEIGHT.get(low)
        if weight is not None:
            if ch == low:
                score += weight
            elif prev in _LETTER_WEIGHT:
                score -= 5  # "пРИВЕТ": an upper-case letter right after a lower-case one
            elif prev.isalpha():
                score += weight - 1  # inside an all-caps word: ОГЭ, СРОЧНО
            else:
                score += 1  # a capital starting a word
        elif not (ch.isascii() or ch in _TYPOGRAPHY):
            score -= 4
        prev = ch
    return score


def _guess(data: bytes) -> tuple[str, str]:
    """(codec, text) for 8-bit bytes with no usable label.

    Candidates are UTF-8 (when the bytes are valid UTF-8), windows-1251, KOI8-R
    and cp866; the most plausible wins, the earlier one on a tie. Cyrillic in a
    single-byte code page almost never forms valid UTF-8, and when it does by
    chance (a few cp866 words) the result is rare CJK characters that score low.
    """
    candidates = []
    try:
        candidates.append(("utf-8", data.decode("utf-8")))
    except UnicodeDecodeError:
        pass
    candidates += [(name, data.decode(name, "replace")) for name in _GUESSES]
    return max(candidates, key=lambda pair: _plausibility(pair[1]))


def decode_bytes(data: bytes, declared: str | None) -> tuple[str, str | None]:
    """Decode text bytes: (text, defect or None).

    The declared charset is used when it decodes the bytes, except that valid
    UTF-8 labelled with a single-byte charset is read as UTF-8. A missing,
    meaningless (us-ascii) or unknown label, or one that fails, leads to ``_guess``.
    """
    if not data:
        return "", None
    codec = _codec(declared)
    if data.isascii() and (codec is None or not codec.startswith(("utf-16", "utf-32"))):
        return data.decode("ascii"), None
    label = (declared or "none").strip().lower()
    if codec:
        try:
            text = data.decode(codec)
        except UnicodeDecodeError:
            name, text = _guess(data)
            return text, f"charset {label} does not fit the bytes, decoded as {name}"
        if _SINGLE_BYTE.match(codec):
            try:
                return data.decode("utf-8"), f"charset {label} mislabels utf-8 text"
            except UnicodeDecodeError:
                pass
        return text, None
    name, text = _guess(data)
    return text, f"8-bit text labelled {label}, decoded as {name}"


# --------------------------------------------------------------------------- #
# Headers
# --------------------------------------------------------------------------- #

_ENCODED_WORD = re.compile(r"=\?([^?\s]+)\?([bBqQ])\?([^?\s]*)\?=")
_FOLD = re.compile(r"\r?\n(?=[ \t])")


def _unfold(value: str) -> str:
    return _FOLD.sub("", value).replace("\r", "").replace("\n", " ")


def _raw_bytes(value: str) -> bytes | None:
    """The original bytes of an 8-bit header (stdlib keeps them as surrogate escapes)."""
    try:
        value.encode("ascii")
        return None
    except UnicodeEncodeError:
        return value.encode("utf-8", "surrogateescape")


def _word_bytes(encoding: str, payload: str) -> bytes | None:
    try:
        if encoding in "bB":
            payload = payload.rstrip("=")
            return binascii.a2b_base64(payload + "=" * (-len(payload) % 4))
        return binascii.a2b_qp(payload.encode("ascii"), header=True)
    except (binascii.Error, ValueError, UnicodeEncodeError):
        return None


def decode_header_value(raw: str, defects: list[str] | None = None, name: str = "header") -> str:
    """A header value as text: unfolded, 8-bit bytes and RFC 2047 words decoded.

    Adjacent encoded words in the same charset are joined as bytes before
    decoding, so a character split between two words (as some mailers do) comes
    out whole. A word whose charset is wrong falls back to ``decode_bytes``'s guess.
    Both stdlib decoders decode each word with its declared charset only, so they
    cannot do that fallback, nor handle raw 8-bit bytes around encoded words.
    """
    value = _unfold(str(raw))
    raw_bytes = _raw_bytes(value)
    if raw_bytes is not None:
        value, defect = decode_bytes(raw_bytes, None)
        # Raw UTF-8 in headers is legal (RFC 6532); anything else is worth noting.
        if defect and not defect.endswith("decoded as utf-8") and defects is not None:
            defects.append(f"{name}: {defect}")
    pieces: list[list] = []  # ["text", str] or ["word", charset, bytes]
    pos = 0
    for m in _ENCODED_WORD.finditer(value):
        literal = value[pos : m.start()]
        between_words = pieces and pieces[-1][0] == "word" and not literal.strip()
        if literal and not between_words:
            pieces.append(["text", literal])
        data = _word_bytes(m.group(2), m.group(3))
        charset = m.group(1).split("*", 1)[0].lower()  # RFC 2231 language suffix
        if data is None:
            pieces.append(["text", m.group(0)])
            if defects is not None:
                defects.append(f"{name}: broken encoded word left as is")
        elif pieces and pieces[-1][0] == "word" and pieces[-1][1] == charset:
            pieces[-1][2] += data
        else:
            pieces.append(["word", charset, data])
        pos = m.end()
    tail = value[pos:]
    if tail:
        pieces.append(["text", tail])
    out = []
    for piece in pieces:
        if piece[0] == "text":
            out.append(piece[1])
            continue
        text, defect = decode_bytes(piece[2], piece[1])
        if defect and defects is not None:
            defects.append(f"{name}: {defect}")
        out.append(text)
    return "".join(out).strip()


def _raw_headers(msg: Message) -> list[tuple[str, str]]:
    return [(k.strip().lower(), str(v)) for k, v in msg.raw_items()]


def _first(raw: list[tuple[str, str]], name: str) -> str | None:
    return next((v for k, v in raw if k == name), None)


def _all(raw: list[tuple[str, str]], name: str) -> list[str]:
    return [v for k, v in raw if k == name]


# --------------------------------------------------------------------------- #
# Addresses, identifiers, date
# --------------------------------------------------------------------------- #


def _bare(address: str) -> str:
    address = address.strip().strip("<>").strip()
    raw = _raw_bytes(address)
    if raw is not None:  # an internationalised (RFC 6531) address
        address = raw.decode("utf-8", "replace")
    return address.lower()


def _addresses(values: list[str]) -> list[tuple[str, str]]:
    """(raw display name, bare lower-case address) pairs from address headers."""
    unfolded = [_unfold(v) for v in values]
    pairs = email.utils.getaddresses(unfolded)
    return [(name, _bare(addr)) for name, addr in pairs if addr.strip()]


_MSGID = re.compile(r"<([^<>]+)>")


_MSGID_JUNK = re.compile(r"[\s\x00-\x1f\x7f\ud800-\udfff]")


def _msgid(value: str | None) -> str | None:
    if not value:
        return None
    value = _unfold(value)
    m = _MSGID.search(value)
    inner = m.group(1) if m else (value.split() or [""])[0]
    inner = _MSGID_JUNK.sub("", inner)
    return f"<{inner}>" if inner else None


def _references(value: str | None) -> tuple[str, ...]:
    if not value:
        return ()
    value = _unfold(value)
    ids = [f"<{''.join(i.split())}>" for i in _MSGID.findall(value)]
    if not ids:
        ids = [f"<{token}>" for token in value.split()]
    return tuple(dict.fromkeys(ids))


# Zone names: those the stdlib knows (its offsets are used), and those seen on
# Russian servers that it does not know (offset in hours).
_STDLIB_ZONES = frozenset("UT UTC GMT Z AST ADT EST EDT CST CDT MST MDT PST PDT".split())
_EXTRA_ZONES = {
    "MSK": 3, "MSD": 4, "SAMT": 4, "YEKT": 5, "OMST": 6, "NOVT": 7, "KRAT": 7, "VLAT": 10,
}
_DATE_ZONE = re.compile(r"\d{1,2}:\d{2}(?::\d{2})?\s*([+-]\d{4}|[A-Za-z]{1,5})?\b")


def _date(value: str | None, defects: list[str]) -> datetime | None:
    """The Date header as an aware datetime in the sender's own offset, or None.

    A date with no zone (or an unknown one) gives None rather than a naive value
    that would break comparisons later; the time the letter arrived is the better
    fallback there.
    """
    if not value:
        defects.append("no Date header")
        return None
    value = _unfold(value).strip()
    parsed = email.utils.parsedate_tz(value)  # reports a missing zone as +0000
    if parsed is None:
        try:
            result = datetime.fromisoformat(value)
        except ValueError:
            defects.append("unparseable Date header")
            return None
        if result.tzinfo is None:
            defects.append("Date header has no time zone")
            return None
        return result
    m = _DATE_ZONE.search(value)
    zone = (m.group(1) or "").upper() if m else ""
    if zone[:1] in ("+", "-") or zone in _STDLIB_ZONES:
        offset = parsed[9] or 0  # "-0000" is UTC with the local zone unknown (RFC 5322)
    elif zone in _EXTRA_ZONES:
        offset = _EXTRA_ZONES[zone] * 3600
    else:
        defects.append("Date header has no known time zone")
        return None
    try:
        return datetime(*parsed[:6], tzinfo=timezone(timedelta(seconds=offset)))
    except (ValueError, OverflowError):
        defects.append("unparseable Date header")
        return None


# --------------------------------------------------------------------------- #
# Body and attachments
# --------------------------------------------------------------------------- #

_BODY_TYPES = ("text/plain", "text/html")
_META_CHARSET = re.compile(rb"<meta[^>]+charset\s*=\s*[\"']?\s*([\w.:-]+)", re.IGNORECASE)

# Names for attachments that carry none.
_DEFAULT_NAMES = {
    "message/rfc822": "message.eml",
    "message/global": "message.eml",
    "message/delivery-status": "delivery-status.txt",
    "message/global-delivery-status": "delivery-status.txt",
    "message/disposition-notification": "disposition-notification.txt",
    "text/rfc822-headers": "headers.txt",
}
# The stdlib's own table only: the system's mime.types differ between machines.
_MIME_TYPES = mimetypes.MimeTypes()


@dataclass
class _Body:
    plain: list[str] = field(default_factory=list)
    html: list[str] = field(default_factory=list)
    attachments: list[Attachment] = field(default_factory=list)


def _filename(part: Message, defects: list[str]) -> str | None:
    """The attachment's file name: RFC 2231 and RFC 2047 decoded, 8-bit bytes guessed."""
    headers = []
    for name in ("content-type", "content-disposition"):
        value = next((str(v) for k, v in part.raw_items() if k.lower() == name), None)
        if value is None:
            continue
        value = _unfold(value)
        raw = _raw_bytes(value)
        if raw is not None:
            value, defect = decode_bytes(raw, None)
            if defect and not defect.endswith("decoded as utf-8"):
                defects.append(f"attachment name: {defect}")
        headers.append(f"{name}: {value}")
    if not headers:
        return None
    # policy.default decodes RFC 2231 parameters (continuations and charset) and
    # the RFC 2047 words that Outlook and Mail.ru put inside quoted file names.
    view = email.message_from_string("\n".join(headers) + "\n\n", policy=policy.default)
    try:
        name = view.get_filename()
    except Exception:  # a malformed parameter: fall back to the lenient parser
        name = part.get_filename()
    if not name:
        return None
    name = str(name)
    if "=?" in name:
        name = decode_header_value(name, defects, "attachment name")
    # No directories and no control characters: the name may end up on a disk.
    name = re.split(r"[/\\]", name)[-1]
    name = "".join(ch for ch in name if ch.isprintable()).strip()
    return name or None


def _payload_bytes(part: Message) -> bytes:
    """Decoded content of a leaf part, or the serialised content of a message/* part."""
    payload = part.get_payload()
    if isinstance(payload, list):
        chunks = []
        for sub in payload:
            try:
                chunks.append(sub.as_bytes())
            except Exception:  # a part the generator cannot write back
                chunks.append(str(sub).encode("utf-8", "surrogateescape"))
        return b"".join(chunks)
    data = part.get_payload(decode=True)
    return data if isinstance(data, bytes) else b""


def _attachment(part: Message, index: int, defects: list[str]) -> Attachment:
    ctype = part.get_content_type()
    name = _filename(part, defects)
    if not name:
        ext = _MIME_TYPES.guess_extension(ctype, strict=False) or ".bin"
        name = _DEFAULT_NAMES.get(ctype, f"attachment-{index}{ext}")
    payload = _payload_bytes(part)
    return Attachment(filename=name, content_type=ctype, size=len(payload), payload=payload)


def _is_body_text(part: Message, has_name: bool) -> bool:
    if part.get_content_type() not in _BODY_TYPES:
        return False
    disposition = part.get_content_disposition()
    if disposition == "attachment":
        return False
    return disposition == "inline" or not has_name


def _text_of(part: Message, defects: list[str]) -> str:
    data = part.get_payload(decode=True)
    data = data if isinstance(data, bytes) else b""
    declared = part.get_content_charset()
    if not declared and part.get_content_type() == "text/html":
        m = _META_CHARSET.search(data[:4096])
        declared = m.group(1).decode("ascii", "replace") if m else None
    text, defect = decode_bytes(data, declared)
    text = text.lstrip("\ufeff")  # a byte-order mark some Windows mailers leave
    if defect:
        defects.append(f"{part.get_content_type()} body: {defect}")
    return text


def _collect(msg: Message, defects: list[str]) -> _Body:
    """Walk the MIME tree in document order (iteratively).

    message/* parts are kept whole as attachments and never walked into, so a
    forwarded letter's text cannot replace the outer body.
    """
    body = _Body()
    stack: list[Message] = [msg]
    while stack:
        part = stack.pop()
        ctype = part.get_content_type()
        if part is not msg and part.get_content_maintype() == "message":
            body.attachments.append(_attachment(part, len(body.attachments) + 1, defects))
            continue
        if part.is_multipart():
            children = part.get_payload()
            stack.extend(reversed([c for c in children if isinstance(c, Message)]))
            continue
        if part.get_content_maintype() == "multipart":
            # Declared multipart but no boundary found: the stdlib keeps the text.
            defects.append(f"{ctype} without parts, kept as text")
            body.plain.append(_text_of(part, defects))
            continue
        if _is_body_text(part, has_name=bool(part.get_param("name") or part.get_filename())):
            target = body.html if ctype == "text/html" else body.plain
            target.append(_text_of(part, defects))
            continue
        body.attachments.append(_attachment(part, len(body.attachments) + 1, defects))
    return body


_UNSTORABLE = re.compile("[\x00\ud800-\udfff]")  # NUL and lone surrogates: no database keeps them


def _storable(text: str) -> str:
    """Text a database can hold: a stray NUL or an undecodable surrogate is dropped."""
    return _UNSTORABLE.sub("", text)


def _normalise_text(text: str) -> str:
    return _storable(text.replace("\r\n", "\n").replace("\r", "\n")).strip()


# --------------------------------------------------------------------------- #
# The letter
# --------------------------------------------------------------------------- #

_SENDER_FALLBACKS = ("sender", "reply-to", "return-path")
_MACHINE_SENDERS = frozenset({"mailer-daemon", "postmaster", "mail-daemon", "mailerdaemon"})


def _sender(raw: list[tuple[str, str]], defects: list[str]) -> tuple[str, str]:
    """(bare address, raw display name) of the author."""
    for header in ("from", *_SENDER_FALLBACKS):
        pairs = _addresses(_all(raw, header))
        # A mail system's bare local part ("MAILER-DAEMON") is usable; a display name
        # that getaddresses took for an address (a From cut by a stray line break) is not.
        pairs = [(n, a) for n, a in pairs if "@" in a or a.lower() in _MACHINE_SENDERS]
        if not pairs:
            continue
        with_domain = [p for p in pairs if "@" in p[1]]
        name, address = (with_domain or pairs)[0]
        if header != "from":
            defects.append(f"no From address, sender taken from {header}")
        if "@" not in address:
            defects.append("sender address has no domain")
        return address, name
    raise UnparseableLetter("нет адреса отправителя: заголовок From отсутствует или пуст")


def _mime_defects(msg: Message) -> list[str]:
    found = []
    for part in msg.walk():
        for defect in part.defects:
            found.append(f"mime: {type(defect).__name__} in {part.get_content_type()}")
    return found


def _message_tree(raw: bytes, defects: list[str]) -> Message:
    """The MIME tree, from mail-parser; from the stdlib parser if mail-parser trips.

    mail-parser post-processes the tree (epilogue recovery, Received parsing) and
    that step can fail on malformed input the stdlib parser itself accepted.
    """
    try:
        return mailparser.parse_from_bytes(raw).message
    except MailParserRecursionError:
        raise
    except Exception as exc:  # a mail-parser bug must not lose the letter
        defects.append(f"mail-parser failed ({type(exc).__name__}), stdlib parser used")
        return email.message_from_bytes(raw)


def _is_tnef(attachment: Attachment) -> bool:
    """Outlook's rich-text wrapper (winmail.dat), which other clients cannot open."""
    return (attachment.content_type.split(";")[0].strip().lower() == "application/ms-tnef"
            or attachment.filename.lower() == "winmail.dat")


def _parse(raw: bytes) -> ParsedLetter:
    if isinstance(raw, str):
        raw = raw.encode("utf-8", "surrogateescape")
    raw = bytes(raw)
    if not raw.strip():
        raise UnparseableLetter("пустое письмо: нет ни заголовков, ни текста")
    defects: list[str] = []
    msg = _message_tree(raw, defects)
    raw_headers = _raw_headers(msg)
    if not raw_headers:
        raise UnparseableLetter("не похоже на письмо: не найдено ни одного заголовка")

    from_addr, raw_name = _sender(raw_headers, defects)
    from_name = decode_header_value(raw_name, defects, "from") if raw_name else ""
    if from_name.lower() == from_addr:
        from_name = ""
    recipients = _addresses(_all(raw_headers, "to") + _all(raw_headers, "cc"))
    to = tuple(dict.fromkeys(a for _, a in recipients if "@" in a))

    headers: dict[str, str] = {}
    for name, value in raw_headers:
        if name not in headers:
            headers[name] = decode_header_value(value, defects if name == "subject" else None, name)
    subject = _storable(headers.get("subject", ""))

    if "mime-version" not in headers:
        defects.append("no MIME-Version header")
    date = _date(_first(raw_headers, "date"), defects)
    message_id = _msgid(_first(raw_headers, "message-id"))
    if message_id is None:
        defects.append("no Message-ID")

    body = _collect(msg, defects)
    if any(_is_tnef(a) for a in body.attachments):
        defects.append("TNEF attachment (winmail.dat): Outlook's own format, passed on undecoded")
    html = "\n".join(body.html) if body.html else None
    plain = "\n\n".join(t.strip("\r\n") for t in body.plain if t.strip())
    text = plain if plain.strip() else (html_to_text(html) if html else "")

    defects.extend(_mime_defects(msg))
    return ParsedLetter(
        message_id=message_id,
        in_reply_to=_msgid(_first(raw_headers, "in-reply-to")),
        references=_references(_first(raw_headers, "references")),
        from_addr=from_addr,
        from_name=_storable(from_name),
        to=to,
        subject=subject,
        date=date,
        text=_normalise_text(text),
        html=html,
        headers=headers,
        attachments=tuple(body.attachments),
        defects=tuple(dict.fromkeys(defects)),
    )


def parse_letter(raw: bytes) -> ParsedLetter:
    """Parse one raw RFC 5322 letter.

    Raises UnparseableLetter (with a Russian ``reason``) when the bytes are empty,
    have no header at all, or name no sender in From, Sender, Reply-To or
    Return-Path. Anything else that is wrong but survivable ends up in ``defects``.
    """
    try:
        return _parse(raw)
    except UnparseableLetter:
        raise
    except (MailParserError, RecursionError) as exc:
        raise UnparseableLetter("письмо слишком глубоко вложено, разобрать нельзя") from exc
    except Exception as exc:  # one bad letter must not stop the ingest loop
        raise UnparseableLetter(
            f"ошибка разбора письма ({type(exc).__name__}: {exc})"
        ) from exc
