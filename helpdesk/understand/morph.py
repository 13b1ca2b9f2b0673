"""A thin, cached wrapper over pymorphy3.

One ``MorphAnalyzer`` per process (it is created lazily on first use and takes
~0.1 s); every per-word answer is memoised, so a warm process lemmatises a
letter in well under a millisecond per word.

All strings handed out are *normalised*: lower case, ``ё`` written as ``е``.
"""
from __future__ import annotations

import re
import threading
from dataclasses import dataclass
from functools import lru_cache

import pymorphy3

_LOCK = threading.Lock()
_ANALYZER: pymorphy3.MorphAnalyzer | None = None

# A word: letters (Cyrillic or Latin) and digits, with inner hyphens or a dot
# between letters ("лит-ра", "онлайн-урок", "Дневник.ру" is split on the dot on
# purpose: "дневник", "ру").
_WORD_RE = re.compile(r"[0-9A-Za-zА-Яа-яЁё]+(?:[-‐][0-9A-Za-zА-Яа-яЁё]+)*")

NAME_TAGS = frozenset({"Name", "Surn", "Patr"})


def analyzer() -> pymorphy3.MorphAnalyzer:
    """The process-wide analyzer (thread-safe lazy creation)."""
    global _ANALYZER
    if _ANALYZER is None:
        with _LOCK:
            if _ANALYZER is None:
                _ANALYZER = pymorphy3.MorphAnalyzer()
    return _ANALYZER


def norm(word: str) -> str:
    """Lower case with ``ё`` -> ``е`` and typographic hyphens unified."""
    return word.lower().replace("ё", "е").replace("‐", "-")


@dataclass(frozen=True, slots=True)
class Token:
    text: str  # as written
    norm: str  # normalised (see ``norm``)
    start: int  # offsets into the source string
    end: int


def tokens(text: str) -> list[Token]:
    """Split ``text`` into word tokens with their offsets."""
    return [Token(m.group(), norm(m.group()), m.start(), m.end()) for m in _WORD_RE.finditer(text)]


@lru_cache(maxsize=100_000)
def lemmas(word: str) -> frozenset[str]:
    """Every normal form pymorphy3 considers for ``word``, plus the word itself.

    Taking all parses (not only the most probable) keeps recall high: "стоит"
    gives both "стоить" and "стоять"; matching against a lexicon then needs
    only a set intersection.
    """
    w = norm(word)
    out = {w}
    if not w or w.isdigit():
        return frozenset(out)
    for p in analyzer().parse(w):
        out.add(norm(p.normal_form))
    return frozenset(out)


@lru_cache(maxsize=20_000)
def forms(word: str, only_tags: frozenset[str] | None = None) -> frozenset[str]:
    """Every inflected form of every parse of ``word`` (normalised).

    Used for words pymorphy does not know (slang such as "англ", "матеша"): the
    guessed paradigm still yields the forms a writer would produce ("англу").
    With ``only_tags`` only parses carrying one of those grammemes are used
    (e.g. ``NAME_TAGS`` for people's names) when there are any.
    """
    w = norm(word)
    parses = analyzer().parse(w)
    if only_tags:
        tagged = [p for p in parses if only_tags & set(p.tag.grammemes)]
        parses = tagged or parses
    out = {w}
    for p in parses:
        try:
            out.update(norm(f.word) for f in p.lexeme)
        except (ValueError, IndexError):  # some guessed parses have no paradigm
            continue
    return frozenset(out)


@lru_cache(maxsize=100_000)
def is_known(word: str) -> bool:
    """True when the word is in the dictionary (not a guess)."""
    return analyzer().word_is_known(norm(word))


@lru_cache(maxsize=50_000)
def name_lemmas(word: str) -> frozenset[str]:
    """Normal forms of ``word`` read as a person's name (first name, surname).

    Parses tagged Name/Surn/Patr are preferred; when pymorphy has none (a rare
    surname read as an adjective, "Ситникова" -> "ситниковый"), all parses are used.
    """
    w = norm(word)
    parses = analyzer().parse(w)
    tagged = [p for p in parses if NAME_TAGS & set(p.tag.grammemes)]
    return frozenset({w} | {norm(p.normal_form) for p in (tagged or parses)})


@lru_cache(maxsize=50_000)
def is_mainly_name(word: str) -> bool:
    """True when pymorphy's most probable reading of ``word`` is a person's name
    ("Петя"), False for an everyday word that can also be a name ("тема", "слава")."""
    parses = analyzer().parse(norm(word))
    return bool(parses) and bool(NAME_TAGS & set(parses[0].tag.grammemes))


@lru_cache(maxsize=20_000)
def is_feminine_name(first_name: str) -> bool | None:
    """Grammatical gender of a first name, or None if pymorphy cannot tell."""
    for p in analyzer().parse(norm(first_name)):
        if "Name" in p.tag.grammemes:
            if "femn" in p.tag.grammemes:
                return True
            if "masc" in p.tag.grammemes:
                return False
    return None


def warm_up() -> None:
    """Create the analyzer now (for daemons that want no first-letter delay)."""
    lemmas("проверка")
