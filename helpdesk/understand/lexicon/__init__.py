"""Subject and category lexicons: loading, merging and compiling to phrases.

The data lives in ``subjects.toml`` and ``categories.toml`` next to this file; a
school adds its own words with extra files of the same format::

    lex = load_lexicon(extra_paths=["/etc/helpdesk/our-subjects.toml"])

An extra file may hold ``[[subject]]`` entries, category tables, or both.
Compiling turns every phrase into per-word sets of match keys (pymorphy3 lemmas,
plus all inflected forms for words the dictionary does not know, such as slang),
so matching a letter is set intersection only.
"""
from __future__ import annotations

import re
import tomllib
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Iterable, Mapping

from helpdesk.domain import CATEGORIES
from helpdesk.understand import morph

HERE = Path(__file__).resolve().parent
SUBJECTS_FILE = HERE / "subjects.toml"
CATEGORIES_FILE = HERE / "categories.toml"
NAMES_FILE = HERE / "names.toml"

# One-word category cues at least this long are also found with a typo
# ("консультацыю"); shorter words have too many look-alikes.
CUE_TYPO_MIN_LENGTH = 7

# Weights of subject evidence by kind; topics weigh 1 per word (at most 3).
NAME_WEIGHT = 3.0
WEAK_WEIGHT = 1.5
_LIST_KINDS = ("names", "slang", "abbr", "weak", "topics")


@dataclass(frozen=True)
class Phrase:
    """One lexicon entry compiled for matching."""

    text: str  # as written in the lexicon
    keys: tuple[frozenset[str], ...]  # per word: the keys a text token must share
    target: str  # subject name or category
    kind: str  # names | slang | abbr | weak | topics | cue
    weight: float


@dataclass(frozen=True)
class SubjectInfo:
    name: str
    parent: str | None = None
    default_child: str | None = None
    refine_by_topics: bool = False
    names: tuple[str, ...] = ()
    slang: tuple[str, ...] = ()
    abbr: tuple[str, ...] = ()
    weak: tuple[str, ...] = ()
    topics: tuple[str, ...] = ()


@dataclass(frozen=True, eq=False)
class Lexicon:
    subjects: Mapping[str, SubjectInfo]
    category_labels: Mapping[str, str]
    subject_phrases: tuple[Phrase, ...]
    category_phrases: tuple[Phrase, ...]
    # single-word subject names and slang for typo tolerance: form -> subject
    spelling: Mapping[str, str] = field(default_factory=dict)
    # long single-word category cues for typo tolerance: form -> (category, weight)
    cue_spelling: Mapping[str, tuple[str, float]] = field(default_factory=dict)

    def children(self, subject: str) -> tuple[str, ...]:
        return tuple(s.name for s in self.subjects.values() if s.parent == subject)

    def parent(self, subject: str) -> str | None:
        info = self.subjects.get(subject)
        return info.parent if info else None

    def label(self, category: str) -> str:
        return self.category_labels.get(category, category)

    def canonical(self, subject_name: str) -> str | None:
        """The lexicon subject a roster subject name stands for, if any.

        Tried as written; then a remark in brackets or after a comma/dash that names
        a narrower subject wins ("Иностранный язык (английский)" -> "английский язык",
        "Второй иностранный язык (немецкий)" -> "немецкий язык"); any other remark is
        dropped ("Английский язык (1 группа)" -> "английский язык").
        """
        return self._canonical(morph.norm(subject_name).strip())

    def _lookup(self, candidate: str) -> str | None:
        for info in self.subjects.values():
            if candidate == morph.norm(info.name):
                return info.name
        for info in self.subjects.values():
            if candidate in {morph.norm(n) for n in info.names + info.slang + info.abbr}:
                return info.name
        return None

    @lru_cache(maxsize=4096)
    def _canonical(self, key: str) -> str | None:
        whole = self._lookup(key)
        if whole:
            return whole
        parts = re.split(r"\s*[(,]|\.\s+|\s+[-–—]\s+", key, maxsplit=1)
        head = self._lookup(parts[0].strip())
        remark = parts[1].strip(" )") if len(parts) > 1 else ""
        inner = self._lookup(remark) if remark else None
        if inner and (head is None or head == inner or self._is_part_of(inner, head)):
            return inner
        return head

    def _is_part_of(self, subject: str, wider: str) -> bool:
        seen = set()
        while subject and subject not in seen:
            seen.add(subject)
            subject = self.parent(subject)
            if subject == wider:
                return True
        return False


# --------------------------------------------------------------------------- loading

def _read(path: Path) -> dict:
    with open(path, "rb") as fh:
        return tomllib.load(fh)


def _merge_subjects(into: dict[str, dict], entries: Iterable[dict]) -> None:
    for entry in entries:
        name = entry["name"]
        cur = into.setdefault(name, {"name": name})
        for key, value in entry.items():
            if key in _LIST_KINDS:
                cur[key] = list(dict.fromkeys(list(cur.get(key, [])) + list(value)))
            else:
                cur[key] = value


def _merge_categories(into: dict[str, dict], data: Mapping) -> None:
    for cat, table in data.items():
        if cat == "subject" or not isinstance(table, Mapping):
            continue
        if cat not in CATEGORIES:
            raise ValueError(f"unknown category in lexicon: {cat!r}")
        cur = into.setdefault(cat, {"label": cat, "cues": {}})
        if "label" in table:
            cur["label"] = table["label"]
        for cue, weight in table.get("cues", {}).items():
            if weight:
                cur["cues"][cue] = float(weight)
            else:
                cur["cues"].pop(cue, None)


def load_lexicon(extra_paths: Iterable[str | Path] = ()) -> Lexicon:
    """The built-in lexicon, extended by the given files (in order)."""
    subjects: dict[str, dict] = {}
    categories: dict[str, dict] = {}
    _merge_subjects(subjects, _read(SUBJECTS_FILE).get("subject", []))
    _merge_categories(categories, _read(CATEGORIES_FILE))
    for path in extra_paths:
        data = _read(Path(path))
        _merge_subjects(subjects, data.get("subject", []))
        _merge_categories(categories, data)
    return _compile(subjects, categories)


@lru_cache(maxsize=1)
def default_lexicon() -> Lexicon:
    return load_lexicon()


# --------------------------------------------------------------------------- compiling

def word_keys(word: str, *, abbr: bool = False) -> frozenset[str]:
    """Keys for one lexicon word; a text token matches when its keys intersect."""
    if abbr:
        return frozenset({"@" + word})
    keys = set(morph.lemmas(word))
    if not morph.is_known(word) and not word.isascii():
        keys |= morph.forms(word)
    return frozenset(keys)


def compile_phrase(text: str, target: str, kind: str, weight: float) -> Phrase | None:
    words = [t.text for t in morph.tokens(text)]
    if not words:
        return None
    abbr = kind == "abbr"
    return Phrase(text, tuple(word_keys(w, abbr=abbr) for w in words), target, kind, weight)


def _subject_weight(kind: str, n_words: int) -> float:
    if kind == "weak":
        return WEAK_WEIGHT
    if kind == "topics":
        return float(min(n_words, 3))
    return NAME_WEIGHT


def _compile(subjects: dict[str, dict], categories: dict[str, dict]) -> Lexicon:
    infos: dict[str, SubjectInfo] = {}
    phrases: list[Phrase] = []
    spelling: dict[str, str] = {}
    for name, raw in subjects.items():
        info = SubjectInfo(
            name=name,
            parent=raw.get("parent"),
            default_child=raw.get("default_child"),
            refine_by_topics=bool(raw.get("refine_by_topics", False)),
            **{k: tuple(raw.get(k, ())) for k in _LIST_KINDS},
        )
        infos[name] = info
        for kind in _LIST_KINDS:
            for text in getattr(info, kind):
                n_words = len(morph.tokens(text))
                p = compile_phrase(text, name, kind, _subject_weight(kind, n_words))
                if p:
                    phrases.append(p)
                if kind in ("names", "slang") and n_words == 1 and len(text) >= 5:
                    for form in morph.forms(text):
                        spelling.setdefault(form, name)
    cat_phrases: list[Phrase] = []
    labels: dict[str, str] = {}
    cue_spelling: dict[str, tuple[str, float]] = {}
    for cat in CATEGORIES:
        table = categories.get(cat, {"label": cat, "cues": {}})
        labels[cat] = table["label"]
        for cue, weight in table["cues"].items():
            p = compile_phrase(cue, cat, "cue", weight)
            if p:
                cat_phrases.append(p)
                if len(p.keys) == 1 and len(cue) >= CUE_TYPO_MIN_LENGTH and not cue.isascii():
                    for form in morph.forms(cue):
                        cue_spelling.setdefault(form, (cat, float(weight)))
    return Lexicon(infos, labels, tuple(phrases), tuple(cat_phrases), spelling, cue_spelling)


# --------------------------------------------------------------------------- first names

def load_nicknames(extra_paths: Iterable[str | Path] = ()) -> Mapping[str, frozenset[str]]:
    """Short first-name forms -> the full names they stand for (normalised: lower
    case, ё as е), from ``names.toml`` and the given files of the same format."""
    out: dict[str, set[str]] = {}
    for path in (NAMES_FILE, *extra_paths):
        for short, full in _read(Path(path)).get("nicknames", {}).items():
            names = [full] if isinstance(full, str) else list(full)
            out.setdefault(morph.norm(short.strip()), set()).update(morph.norm(n.strip()) for n in names)
    return {k: frozenset(v) for k, v in out.items()}


@lru_cache(maxsize=1)
def default_nicknames() -> Mapping[str, frozenset[str]]:
    return load_nicknames()
