"""Classification of an incoming letter: who wrote, which class, subject, category.

Pure: no I/O. ``classify(letter, roster)`` is the entry point; ``Classifier`` is the
reusable object (per-roster indexes are built once, in its constructor), and
``classify`` keeps one per roster object.

Every decision leaves a short Russian sentence in ``Classification.reasons`` so a
deputy head can see why the letter went where it went.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache
from typing import Iterable, Sequence

from helpdesk.cache import RosterCache
from helpdesk.domain import Classification, ParsedLetter, Roster, Student, normalize_class
from helpdesk.understand import morph
from helpdesk.understand.lexicon import (
    CUE_TYPO_MIN_LENGTH,
    Lexicon,
    Phrase,
    compile_phrase,
    default_lexicon,
    default_nicknames,
)

# Categories that need a class to be routed (policy table).
CLASS_DEPENDENT = frozenset({"subject_help", "consultation", "organizational", "paper_materials", "other"})
# Categories routed to the (class, subject) teacher.
SUBJECT_ROUTED = frozenset({"subject_help", "consultation"})
# When two categories score the same, the first of this order wins.
_TIE_ORDER = ("complaint", "technical", "paper_materials", "consultation", "organizational", "subject_help", "other")

SUBJECT_LINE_FACTOR = 1.5
MAX_GAP = 2  # other words allowed between the words of a phrase
FUZZY_WEIGHT = 2.5
LATIN_WEIGHT = 1.0
TEACHER_HINT_WEIGHT = 1.0
FUZZY_CUE_FACTOR = 0.8  # a category cue found with a typo counts a little less

_ORDINALS = {
    "первый": 1, "второй": 2, "третий": 3, "четвертый": 4, "пятый": 5, "шестой": 6,
    "седьмой": 7, "восьмой": 8, "девятый": 9, "десятый": 10, "одиннадцатый": 11,
}

# ---------------------------------------------------------------------------- text prep

# The local part is bounded (RFC 5321: 64 characters) so that a long run of word
# characters without "@" is rejected in linear time, not retried from every position.
_URL_OR_MAIL = re.compile(r"(?:https?://|www\.)\S+|[\w.+-]{1,64}@[\w-]+(?:\.[\w-]+)+")
_QUOTE_LINE = re.compile(r"^\s*(?:>|&gt;)")
_ATTRIBUTION = re.compile(r"(?:пишет|писал[аи]?|wrote|написал[аи]?)\s*:\s*$|<[^>]+@[^>]+>\s*:\s*$", re.I)
_CUT_MARKERS = re.compile(
    r"^\s*(?:-{2,}\s*(?:Original Message|Исходное сообщение|Пересылаемое сообщение|Forwarded message)"
    r"|Отправлено из\b|Отправлено с\b|Sent from my\b|Get Outlook for\b"
    r"|(?:От|From)\s*:.*[@<])",
    re.I,
)
_SENTENCE_BREAK = re.compile(r"[!?;…]|\n\s*\n")
_DOT_BREAK = re.compile(r"\.\s")  # a break only before a capital: "рус. яз" stays one phrase


def own_text(body: str) -> str:
    """The writer's own words: quoted replies, forwarded parts and mobile footers removed."""
    lines = (body or "").replace("\r\n", "\n").split("\n")
    kept: list[str] = []
    for line in lines:
        if _CUT_MARKERS.match(line):
            break
        if _QUOTE_LINE.match(line):
            if kept and _ATTRIBUTION.search(kept[-1]):
                kept.pop()
            continue
        kept.append(line)
    return _URL_OR_MAIL.sub(lambda m: " " * len(m.group()), "\n".join(kept))


@dataclass(frozen=True, slots=True)
class Tok:
    text: str
    norm: str
    start: int
    end: int
    keys: frozenset[str]
    brk: bool  # a sentence boundary lies before this token


@lru_cache(maxsize=100_000)
def _token_keys(word: str) -> frozenset[str]:
    keys = set(morph.lemmas(word))
    if "-" in word:
        keys |= morph.lemmas(word.rsplit("-", 1)[1])
    return frozenset(keys)


def _tokenize(text: str) -> list[Tok]:
    out: list[Tok] = []
    prev_end = 0
    for t in morph.tokens(text):
        keys = _token_keys(t.norm)
        if t.text.isupper() and len(t.text) <= 6:
            keys = keys | {"@" + t.text}
        sep = text[prev_end:t.start]
        brk = bool(out) and bool(_SENTENCE_BREAK.search(sep)
                                 or (_DOT_BREAK.search(sep) and (t.text[0].isupper() or t.text[0].isdigit())))
        out.append(Tok(t.text, t.norm, t.start, t.end, keys, brk))
        prev_end = t.end
    return out


@dataclass
class Field:
    name: str  # "subject" | "body"
    text: str
    toks: list[Tok]
    factor: float


def _fields(letter: ParsedLetter) -> list[Field]:
    subject = letter.subject or ""
    subject = re.sub(r"^\s*(?:(?:re|fw|fwd|ответ|пересл)\s*(?:\[\d+\])?\s*:\s*)+", "", subject, flags=re.I)
    body = own_text(letter.text or "")
    return [
        Field("subject", subject, _tokenize(subject), SUBJECT_LINE_FACTOR),
        Field("body", body, _tokenize(body), 1.0),
    ]


# ---------------------------------------------------------------------------- phrase matching

@dataclass(frozen=True)
class Match:
    phrase: Phrase
    field: str
    factor: float
    first: int  # token index of the first word
    positions: tuple[int, ...]
    quote: str  # the words as written in the letter

    @property
    def score(self) -> float:
        return self.phrase.weight * self.factor


class PhraseIndex:
    """Phrases indexed by the keys of their first word."""

    def __init__(self, phrases: Iterable[Phrase]):
        self.by_key: dict[str, list[Phrase]] = {}
        for p in phrases:
            for k in p.keys[0]:
                self.by_key.setdefault(k, []).append(p)

    def candidates(self, tok: Tok) -> list[Phrase]:
        seen: dict[int, Phrase] = {}
        for k in tok.keys:
            for p in self.by_key.get(k, ()):
                seen.setdefault(id(p), p)
        return list(seen.values())

    def find(self, fld: Field) -> list[Match]:
        """Non-overlapping matches, longest (then heaviest) phrases first."""
        toks = fld.toks
        found: list[tuple[Phrase, tuple[int, ...]]] = []
        for i, tok in enumerate(toks):
            for p in self.candidates(tok):
                pos = _match_rest(toks, i, p)
                if pos is not None:
                    found.append((p, pos))
        found.sort(key=lambda f: (-len(f[1]), -f[0].weight, f[1][0]))
        used: set[int] = set()
        out: list[Match] = []
        for p, pos in found:
            if used.intersection(pos):
                continue
            used.update(pos)
            quote = fld.text[toks[pos[0]].start:toks[pos[-1]].end]
            out.append(Match(p, fld.name, fld.factor, pos[0], pos, quote))
        return out


def _once_per_phrase(matches: Iterable[Match]) -> list[Match]:
    """A phrase repeated in one field counts once (its first occurrence)."""
    seen: dict[int, Match] = {}
    for m in sorted(matches, key=lambda m: m.first):
        seen.setdefault(id(m.phrase), m)
    return list(seen.values())


def _match_rest(toks: Sequence[Tok], i: int, p: Phrase) -> tuple[int, ...] | None:
    pos = [i]
    for keys in p.keys[1:]:
        j = pos[-1]
        nxt = None
        for k in range(j + 1, min(j + 2 + MAX_GAP, len(toks))):
            if toks[k].brk:
                break
            if toks[k].keys & keys:
                nxt = k
                break
        if nxt is None:
            return None
        pos.append(nxt)
    return tuple(pos)


def _quote_with_preposition(fld_text: str, toks: Sequence[Tok], m: Match) -> str:
    """«по алгебре» reads better than «алгебре» in a reason."""
    if m.first > 0:
        prev = toks[m.first - 1]
        if prev.norm in ("по", "на", "к", "с") and not toks[m.first].brk:
            return fld_text[prev.start:toks[m.positions[-1]].end]
    return m.quote


# ---------------------------------------------------------------------------- small helpers

def _short_name(full_name: str) -> str:
    parts = full_name.split()
    return " ".join(parts[:2]) if len(parts) >= 2 else full_name


def _is_female(student: Student) -> bool:
    parts = student.full_name.split()
    if len(parts) >= 3:
        return parts[2].lower().endswith(("вна", "чна", "кызы"))
    if len(parts) >= 2:
        return bool(morph.is_feminine_name(parts[1]))
    return False


def _pupil_word(student: Student) -> str:
    return "ученица" if _is_female(student) else "ученик"


def _quotes(items: Iterable[str], limit: int = 3) -> str:
    seen: dict[str, str] = {}
    for q in items:
        q = " ".join(q.split())
        if q:
            seen.setdefault(q.lower(), q)
    return ", ".join(f"«{q}»" for q in list(seen.values())[:limit])


def _levenshtein_at_most(a: str, b: str, limit: int) -> bool:
    if abs(len(a) - len(b)) > limit:
        return False
    prev = list(range(len(b) + 1))
    for i, ca in enumerate(a, 1):
        cur = [i] + [0] * len(b)
        best = cur[0]
        for j, cb in enumerate(b, 1):
            cur[j] = min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (ca != cb))
            best = min(best, cur[j])
        if best > limit:
            return False
        prev = cur
    return prev[-1] <= limit


# ---------------------------------------------------------------------------- evidence types

@dataclass
class SenderInfo:
    role: str
    student: Student | None
    class_name: str | None
    reasons: list[str]
    confidence: float = 1.0
    class_from_text: bool = False


@dataclass
class SubjectEvidence:
    subject: str
    strong: float = 0.0
    weak: float = 0.0
    topic: float = 0.0
    first: tuple[int, int] = (9, 10**9)  # (field order, token index) of first mention
    quotes: list[str] | None = None
    topic_quotes: list[str] | None = None
    exact: bool = False  # named without a typo at least once

    @property
    def fuzzy(self) -> bool:
        return self.strong > 0 and not self.exact

    def add(self, kind: str, score: float, quote: str, where: tuple[int, int]) -> None:
        if self.quotes is None:
            self.quotes, self.topic_quotes = [], []
        if kind == "topics":
            self.topic += score
            self.topic_quotes.append(quote)
        elif kind == "weak":
            self.weak += score
            self.quotes.append(quote)
        else:
            self.strong += score
            self.quotes.append(quote)
            self.exact = self.exact or kind != "fuzzy"
        self.first = min(self.first, where)


@dataclass
class SubjectResult:
    subject: str | None
    how: str  # names | weak | topics | fuzzy | latin | teacher | none
    reason: str
    confidence: float


# ---------------------------------------------------------------------------- classifier

class Classifier:
    """Classifies letters against one roster; build once, call ``classify`` many times."""

    def __init__(self, roster: Roster, lexicon: Lexicon | None = None):
        self.roster = roster
        self.lex = lexicon or default_lexicon()
        self.classes = frozenset(roster.classes())
        extra = []
        known = set(self.lex.subjects)
        for a in roster.assignments:
            if self.lex.canonical(a.subject) is None and a.subject not in known:
                known.add(a.subject)
                p = compile_phrase(a.subject, a.subject, "names", 3.0)
                if p:
                    extra.append(p)
        self.subject_index = PhraseIndex(self.lex.subject_phrases + tuple(extra))
        self.category_index = PhraseIndex(self.lex.category_phrases)
        self._cue_cache: dict[str, tuple[str, float] | None] = {}
        self._fuzzy_cache: dict[str, str | None] = {}
        self._build_name_index()

    # ------------------------------------------------------------------ names
    def _build_name_index(self) -> None:
        self.first_idx: dict[str, set[int]] = {}
        self.surname_idx: dict[str, set[int]] = {}
        for n, s in enumerate(self.roster.students):
            parts = s.full_name.split()
            if len(parts) < 2:
                continue
            for k in _person_keys(parts[1], "Name"):
                self.first_idx.setdefault(k, set()).add(n)
            for k in _person_keys(parts[0], "Surn"):
                self.surname_idx.setdefault(k, set()).add(n)
        self.staff_first: dict[str, set[int]] = {}
        self.staff_patr: dict[str, set[int]] = {}
        for n, m in enumerate(self.roster.staff):
            parts = m.full_name.split()
            if len(parts) < 3:
                continue
            for k in _person_keys(parts[1], "Name"):
                self.staff_first.setdefault(k, set()).add(n)
            for k in _person_keys(parts[2], "Patr"):
                self.staff_patr.setdefault(k, set()).add(n)

    def _students_named(self, fields: Sequence[Field], pool: Sequence[int] | None = None,
                        first_only: bool = False) -> list[tuple[int, str]]:
        """Students named in the text, in order of mention: (index, quote).

        A full mention is a first name with the surname within two words either side
        (any case form). ``first_only`` accepts a first name alone (used for a
        parent's own children, where the pool is tiny).
        """
        allowed = set(pool) if pool is not None else None
        out: list[tuple[int, str]] = []
        for fld in fields:
            toks = fld.toks
            for i, tok in enumerate(toks):
                if len(tok.norm) < 2:
                    continue
                nk = _first_name_keys(tok, i == 0 or tok.brk)
                hits = set().union(*(self.first_idx.get(k, ()) for k in nk)) if nk else set()
                if allowed is not None:
                    hits &= allowed
                if not hits:
                    continue
                if first_only:
                    for n in sorted(hits):
                        out.append((n, tok.text))
                    continue
                for j in range(max(0, i - 2), min(len(toks), i + 3)):
                    if j == i:
                        continue
                    sk = _text_name_keys(toks[j].norm)
                    both = hits & set().union(*(self.surname_idx.get(k, ()) for k in sk))
                    for n in sorted(both):
                        a, b = sorted((i, j))
                        out.append((n, fld.text[toks[a].start:toks[b].end]))
        seen: dict[int, str] = {}
        for n, q in out:
            seen.setdefault(n, q)
        return list(seen.items())

    def _staff_addressed(self, fields: Sequence[Field]) -> list[int]:
        """Staff addressed by first name and patronymic ("Константин Ильич")."""
        found: list[int] = []
        for fld in fields:
            toks = fld.toks
            for i in range(len(toks) - 1):
                a = set().union(*(self.staff_first.get(k, ()) for k in _text_name_keys(toks[i].norm)))
                if not a:
                    continue
                b = set().union(*(self.staff_patr.get(k, ()) for k in _text_name_keys(toks[i + 1].norm)))
                for n in sorted(a & b):
                    if n not in found:
                        found.append(n)
        return found

    # ------------------------------------------------------------------ classes in text
    def classes_in_text(self, fields: Sequence[Field]) -> list[tuple[str, str]]:
        """Classes of this school named in the text, in order: (class, quote)."""
        found: list[tuple[int, int, str, str]] = []
        for order, fld in enumerate(fields):
            for m in _CLASS_RE.finditer(fld.text):
                if not _class_match_ok(m):
                    continue
                cls = self._school_class(m.group("num"), m.group("let"))
                if cls:
                    found.append((order, m.start(), cls, m.group().strip()))
            for m in _ORD_NUM_RE.finditer(fld.text):
                cls = self._school_class(m.group("num"), m.group("let"))
                if cls:
                    found.append((order, m.start(), cls, m.group().strip()))
            toks = fld.toks
            for i in range(len(toks) - 1):
                num = next((_ORDINALS[k] for k in toks[i].keys if k in _ORDINALS), None)
                nxt = toks[i + 1]
                if num and len(nxt.text) == 1 and nxt.text.isalpha() and not nxt.brk:
                    cls = self._school_class(str(num), nxt.text)
                    if cls:
                        found.append((order, toks[i].start, cls, fld.text[toks[i].start:nxt.end]))
        found.sort()
        seen: dict[str, str] = {}
        for _, _, cls, quote in found:
            seen.setdefault(cls, quote)
        return list(seen.items())

    def _school_class(self, num: str, letter: str) -> str | None:
        variants = [num + letter]
        if letter.isascii() and letter.isupper():
            # "4B": a look-alike of В, or a transliteration of Б ("Distancionnoe obuchenie 4B")
            variants.append(num + letter.lower())
        for v in variants:
            cls = normalize_class(v)
            if cls in self.classes:
                return cls
        return None

    # ------------------------------------------------------------------ sender
    def _sender(self, letter: ParsedLetter, fields: Sequence[Field]) -> SenderInfo:
        addr = (letter.from_addr or "").lower()
        student = self.roster.student(addr)
        if student:
            return SenderInfo(
                "student", student, student.class_name,
                [f"Отправитель — {_pupil_word(student)} {student.class_name} "
                 f"{_short_name(student.full_name)} (по адресу из списка учеников)."],
            )
        children = self.roster.children_of(addr)
        if children:
            return self._parent(children, fields)
        member = self.roster.staff_member(addr)
        if member:
            info = SenderInfo("staff", None, None,
                              [f"Отправитель — сотрудник школы {member.full_name} (по адресу из списка сотрудников)."])
            self._class_from_text(info, fields)
            return info
        info = SenderInfo("unknown", None, None,
                          [f"Отправителя ({addr or 'без адреса'}) нет ни среди учеников, ни среди родителей, ни среди сотрудников."],
                          confidence=0.9)
        self._class_from_text(info, fields, with_names=True)
        return info

    def _parent(self, children: Sequence[Student], fields: Sequence[Field]) -> SenderInfo:
        if len(children) == 1:
            c = children[0]
            return SenderInfo("parent", c, c.class_name, [
                f"Отправитель — родитель (адрес указан у ребёнка в списке учеников); ребёнок — "
                f"{_pupil_word(c)} {c.class_name} {_short_name(c.full_name)}."])
        listing = "; ".join(f"{_short_name(c.full_name)}, {c.class_name}" for c in children)
        head = f"Отправитель — родитель нескольких учеников ({listing}) по адресу из списка учеников"
        index = {self.roster.students.index(c): c for c in children}
        named = self._students_named(fields, pool=list(index), first_only=True)
        if named:
            c = index[named[0][0]]
            conf = 1.0 if len(named) == 1 else 0.7
            extra = "" if len(named) == 1 else " (названы несколько детей — выбран первый упомянутый)"
            return SenderInfo("parent", c, c.class_name, [
                f"{head}; в письме назван ребёнок «{named[0][1]}» — {_short_name(c.full_name)}, {c.class_name}{extra}."],
                confidence=conf)
        mentioned = [cls for cls, _ in self.classes_in_text(fields)]
        for c in children:
            if c.class_name in mentioned:
                return SenderInfo("parent", c, c.class_name, [
                    f"{head}; в письме назван класс {c.class_name} — это {_short_name(c.full_name)}."],
                    confidence=0.85)
        return SenderInfo("parent", None, None, [
            f"{head}; в письме не назван ни ребёнок, ни его класс — класс не определён."], confidence=0.8)

    def _class_from_text(self, info: SenderInfo, fields: Sequence[Field], with_names: bool = False) -> None:
        classes = self.classes_in_text(fields)
        if with_names:
            named = self._students_named(fields)
            if classes:
                in_class = [(n, q) for n, q in named if self.roster.students[n].class_name == classes[0][0]]
                if len(in_class) == 1:
                    info.student = self.roster.students[in_class[0][0]]
            elif len(named) == 1:
                s = self.roster.students[named[0][0]]
                info.student, info.class_name, info.class_from_text = s, s.class_name, True
                info.reasons.append(
                    f"В письме назван ученик «{named[0][1]}» — в списке это {_short_name(s.full_name)}, {s.class_name}.")
                return
            elif len(named) > 1:
                who = "; ".join(f"{self.roster.students[n].full_name}, {self.roster.students[n].class_name}"
                                for n, _ in named)
                info.reasons.append(
                    f"Имя в письме ({_quotes(q for _, q in named)}) подходит нескольким ученикам ({who}) — "
                    f"класс не определён.")
                info.confidence *= 0.8
                return
        if len(classes) == 1:
            info.class_name, info.class_from_text = classes[0][0], True
            info.reasons.append(f"Класс {classes[0][0]} взят из текста письма: «{classes[0][1]}».")
        elif len(classes) > 1:
            info.reasons.append(
                f"В письме названо несколько классов ({', '.join(c for c, _ in classes)}) — класс не выбран.")
        else:
            bare = _BARE_GRADE_RE.findall(" ".join(f.text for f in fields))
            if bare:
                info.reasons.append(
                    f"Упоминание {_quotes(bare)} без буквы класса не указывает класс школы — класс не определён.")
            else:
                info.reasons.append("В письме не назван класс — класс не определён.")

    # ------------------------------------------------------------------ subject
    def _subject(self, fields: Sequence[Field]) -> tuple[SubjectResult, dict[str, SubjectEvidence]]:
        ev: dict[str, SubjectEvidence] = {}
        matched_positions: list[set[int]] = []
        for order, fld in enumerate(fields):
            matches = self.subject_index.find(fld)
            matched_positions.append({p for m in matches for p in m.positions})
            for m in _once_per_phrase(matches):
                quote = m.quote if m.phrase.kind == "topics" else _quote_with_preposition(fld.text, fld.toks, m)
                ev.setdefault(m.phrase.target, SubjectEvidence(m.phrase.target)).add(
                    m.phrase.kind, m.score, quote, (order, m.first))
        for order, fld in enumerate(fields):
            for i, tok in enumerate(fld.toks):
                if i in matched_positions[order]:
                    continue
                subj = self._fuzzy_subject(tok)
                if subj:
                    ev.setdefault(subj, SubjectEvidence(subj)).add(
                        "fuzzy", FUZZY_WEIGHT * fld.factor, tok.text, (order, i))
        return self._choose_subject(ev, fields), ev

    def _fuzzy_subject(self, tok: Tok) -> str | None:
        w = tok.norm
        if len(w) < 4 or not w.isalpha() or w.isascii() or morph.is_known(w):
            return None
        if w not in self._fuzzy_cache:
            if len(self._fuzzy_cache) > 50_000:
                self._fuzzy_cache.clear()
            self._fuzzy_cache[w] = self._misspelt_subject(w)
        return self._fuzzy_cache[w]

    def _misspelt_subject(self, w: str) -> str | None:
        limit = 1 if len(w) < 8 else 2
        for form, subj in self.lex.spelling.items():
            if len(w) == 4 and len(form) != 5:
                continue  # a four-letter word only as a five-letter name missing a letter ("хмия")
            if form[0] == w[0] and _levenshtein_at_most(w, form, limit):
                return subj
        return None

    def _fuzzy_cue(self, w: str) -> tuple[str, float] | None:
        """A long category cue word written with a typo ("консультацыю")."""
        if len(w) < CUE_TYPO_MIN_LENGTH or not w.isalpha() or w.isascii() or morph.is_known(w):
            return None
        if w not in self._cue_cache:
            if len(self._cue_cache) > 50_000:
                self._cue_cache.clear()
            limit = 1 if len(w) < 10 else 2
            self._cue_cache[w] = next(
                (hit for form, hit in self.lex.cue_spelling.items()
                 if form[0] == w[0] and _levenshtein_at_most(w, form, limit)), None)
        return self._cue_cache[w]

    def _choose_subject(self, ev: dict[str, SubjectEvidence], fields: Sequence[Field]) -> SubjectResult:
        strong = [e for e in ev.values() if e.strong > 0]
        if strong:
            best = min(strong, key=lambda e: (-e.strong, -(e.topic + e.weak), e.first))
            how = "fuzzy" if best.fuzzy else "names"
            detail = f"в письме {_quotes(best.quotes)}" + (" (с опечаткой)" if best.fuzzy else "")
            return self._refine(best, ev, how, detail, 0.85 if best.fuzzy else 1.0)
        rest = [e for e in ev.values() if e.weak + e.topic > 0]
        if rest:
            best = min(rest, key=lambda e: (-(e.weak + e.topic), e.first))
            parts = []
            if best.weak:
                parts.append(f"в письме {_quotes(best.quotes)}")
            if best.topic:
                parts.append(f"тема {_quotes(best.topic_quotes)}")
            how = "weak" if best.weak >= best.topic else "topics"
            return self._refine(best, ev, how, "; ".join(parts), 0.85 if how == "weak" else 0.8)
        return SubjectResult(None, "none", "Предмет в письме не назван.", 0.7)

    def _latin_hint(self, fields: Sequence[Field]) -> SubjectResult | None:
        """Several words in Latin letters in a study question: a foreign language."""
        latin = _latin_words(fields)
        if len(latin) < 3:
            return None
        return SubjectResult("иностранный язык", "latin",
                             f"Предмет: иностранный язык — в письме слова на латинице ({_quotes(latin)}).", 0.6)

    def _refine(self, best: SubjectEvidence, ev: dict[str, SubjectEvidence], how: str,
                detail: str, conf: float) -> SubjectResult:
        info = self.lex.subjects.get(best.subject)
        reason = f"Предмет: {best.subject} — {detail}."
        if info and info.refine_by_topics:
            kids = [ev[c] for c in self.lex.children(best.subject) if c in ev and ev[c].topic > 0]
            if kids:
                kid = min(kids, key=lambda e: (-e.topic, e.first))
                reason = (f"Предмет: {best.subject} — {detail}; по теме ({_quotes(kid.topic_quotes)}) "
                          f"это {kid.subject}.")
                return SubjectResult(kid.subject, how, reason, conf)
        return SubjectResult(best.subject, how, reason, conf)

    def _teacher_hint(self, fields: Sequence[Field], class_name: str | None) -> SubjectResult | None:
        """A letter addressed to a teacher by name and patronymic, who teaches exactly one
        subject in the class, is about that subject."""
        if not class_name:
            return None
        for n in self._staff_addressed(fields):
            member = self.roster.staff[n]
            subjects = [a.subject for a in self.roster.assignments
                        if a.class_name == class_name and a.teacher_email == member.email]
            subjects = list(dict.fromkeys(subjects))
            if len(subjects) == 1:
                first_patr = " ".join(member.full_name.split()[1:3])
                return SubjectResult(subjects[0], "teacher",
                                     f"Предмет: {subjects[0]} — письмо обращено к учителю «{first_patr}», "
                                     f"который ведёт в {class_name} только этот предмет.", 0.8)
        return None

    # ------------------------------------------------------------------ category
    def _category(self, fields: Sequence[Field], has_subject: bool) -> tuple[str, str, float]:
        scores: dict[str, float] = {}
        quotes: dict[str, list[tuple[float, str]]] = {}
        for fld in fields:
            matches = self.category_index.find(fld)
            for m in _once_per_phrase(matches):
                cat = m.phrase.target
                scores[cat] = scores.get(cat, 0.0) + m.score
                quotes.setdefault(cat, []).append((m.score, m.quote))
            used = {p for m in matches for p in m.positions}
            for i, tok in enumerate(fld.toks):
                hit = None if i in used else self._fuzzy_cue(tok.norm)
                if hit:
                    cat, weight = hit
                    score = weight * fld.factor * FUZZY_CUE_FACTOR
                    scores[cat] = scores.get(cat, 0.0) + score
                    quotes.setdefault(cat, []).append((score, f"{tok.text} (с опечаткой)"))
        if has_subject:
            scores["subject_help"] = scores.get("subject_help", 0.0) + 1.0
        ranked = sorted(scores.items(), key=lambda kv: (-kv[1], _TIE_ORDER.index(kv[0])))
        if not ranked or ranked[0][1] <= 1.0 and not quotes.get(ranked[0][0]):
            if has_subject:
                return ("subject_help",
                        f"Категория: {self.lex.label('subject_help')} — явных признаков других категорий нет, "
                        f"а предмет назван.", 0.6)
            return "other", f"Категория: {self.lex.label('other')} — признаков известных категорий нет.", 0.55
        cat, top = ranked[0]
        second = ranked[1][1] if len(ranked) > 1 else 0.0
        cues = [q for _, q in sorted(quotes.get(cat, []), key=lambda x: -x[0])]
        text = f"Категория: {self.lex.label(cat)} — {_quotes(cues) or 'назван предмет'}."
        if len(ranked) > 1 and second >= 0.6 * top and quotes.get(ranked[1][0]):
            alt = ranked[1][0]
            alt_q = [q for _, q in sorted(quotes[alt], key=lambda x: -x[0])]
            text += f" Есть и признаки категории «{self.lex.label(alt)}» ({_quotes(alt_q, 2)}), но их меньше."
        conf = 0.6 + 0.4 * ((top - second) / top if top else 0.0)
        return cat, text, conf

    # ------------------------------------------------------------------ entry point
    def classify(self, letter: ParsedLetter) -> Classification:
        fields = _fields(letter)
        sender = self._sender(letter, fields)
        subject, _ = self._subject(fields)
        category, cat_reason, cat_conf = self._category(fields, subject.subject is not None)
        if subject.subject is None and category in SUBJECT_ROUTED:
            hint = self._teacher_hint(fields, sender.class_name) or self._latin_hint(fields)
            if hint:
                subject = hint
        reasons = list(sender.reasons) + [subject.reason, cat_reason]
        confidence = sender.confidence * cat_conf
        if category in SUBJECT_ROUTED:
            confidence *= subject.confidence
        if category in CLASS_DEPENDENT and sender.class_name is None:
            confidence *= 0.5
        elif sender.class_from_text:
            confidence *= 0.9
        return Classification(
            sender_role=sender.role,
            student=sender.student,
            class_name=sender.class_name,
            subject=subject.subject,
            category=category,
            reasons=tuple(reasons),
            confidence=round(max(0.05, min(1.0, confidence)), 2),
        )


# ---------------------------------------------------------------------------- regexes & keys

_CLASS_RE = re.compile(
    r"(?<![\w.,@/№#])(?P<num>\d{1,2})(?P<sep>\s*[-–—]?\s*)(?P<q1>[«\"“„'])?\s*"
    r"(?P<let>[А-ЯЁа-яёA-Za-z])\s*(?P<q2>[»\"”'])?(?![\w])(?P<tail>\s*(?:класс\w*|кл\b\.?))?"
)
_ORD_NUM_RE = re.compile(
    r"(?<![\w.,@/№#])(?P<num>\d{1,2})\s*-?\s*(?:го|ой|ый|й|ом|м)\s+[«\"“]?(?P<let>[А-ЯЁа-яё])[»\"”]?(?![\w])"
)
_BARE_GRADE_RE = re.compile(r"(?<![\w.])\d{1,2}\s*-?\s*(?:[а-я]{1,2}\s+)?класс\w*", re.I)


def _class_match_ok(m: re.Match) -> bool:
    sep = m.group("sep")
    if "-" in sep or "–" in sep or "—" in sep or not sep:
        return True
    if m.group("q1") or m.group("q2") or m.group("tail"):
        return True
    return m.group("let").isupper()


@lru_cache(maxsize=50_000)
def _text_name_keys(word: str) -> frozenset[str]:
    return morph.name_lemmas(word) | {word}


@lru_cache(maxsize=50_000)
def _nickname_targets(word: str) -> frozenset[str]:
    """Full first names a short form stands for ("пете" -> {"петр"}), via names.toml."""
    table = default_nicknames()
    out: set[str] = set()
    for key in _text_name_keys(word):
        out |= table.get(key, frozenset())
    return frozenset(out)


def _first_name_keys(tok: Tok, sentence_start: bool) -> frozenset[str]:
    """Keys of a word read as a first name, short forms included ("Петя" -> "петр").

    A short form that is mostly an everyday word ("тема", "слава") counts only when
    capitalised and not opening a sentence, or written with "ё" ("Тёма")."""
    keys = _text_name_keys(tok.norm)
    full = _nickname_targets(tok.norm)
    if full and (morph.is_mainly_name(tok.norm)
                 or (tok.text[:1].isupper() and (not sentence_start or "ё" in tok.text.lower()))):
        keys = keys | full
    return keys


def _person_keys(name: str, tag: str) -> frozenset[str]:
    return morph.name_lemmas(name) | morph.forms(name, frozenset({tag}))


_PLATFORM_WORDS = frozenset({"zoom", "skype", "teams", "google", "classroom", "whatsapp", "telegram",
                             "android", "iphone", "ipad", "windows", "mail", "gmail", "yandex", "ok"})


def _latin_words(fields: Sequence[Field]) -> list[str]:
    words = []
    for fld in fields:
        for t in fld.toks:
            if (t.text.isascii() and t.text.isalpha() and t.text.islower() and len(t.text) >= 2
                    and t.norm not in _PLATFORM_WORDS):
                words.append(t.text)
    return list(dict.fromkeys(words))


# ---------------------------------------------------------------------------- module API

_CLASSIFIERS: RosterCache[Classifier] = RosterCache(Classifier)


def classifier_for(roster: Roster, lexicon: Lexicon | None = None) -> Classifier:
    """The cached Classifier for this roster object and lexicon (None: the built-in one)."""
    return _CLASSIFIERS.get(roster, lexicon)


def classify(letter: ParsedLetter, roster: Roster, lexicon: Lexicon | None = None) -> Classification:
    """Classify one letter. Per-roster indexes are built once and cached (keyed by the
    roster and lexicon objects), so pass the same objects on every call."""
    return classifier_for(roster, lexicon).classify(letter)
