"""A small cache of objects built for one roster (and lexicon): the classifier's and
the router's indexes take a while to build, and the daemon keeps one roster for long."""
from __future__ import annotations

import threading
from typing import Callable, Generic, TypeVar

T = TypeVar("T")


class RosterCache(Generic[T]):
    def __init__(self, build: Callable[..., T], size: int = 8) -> None:
        self._build = build
        self._size = size
        self._lock = threading.Lock()
        self._items: dict[tuple[int, int], tuple[object, object, T]] = {}

    def get(self, roster, lexicon=None) -> T:
        """The object for this roster object and lexicon, built on first use. Keyed by
        identity (and checked, since ids are reused), so an edited roster is a new entry."""
        key = (id(roster), id(lexicon))
        hit = self._items.get(key)
        if hit and hit[0] is roster and hit[1] is lexicon:
            return hit[2]
        built = self._build(roster, lexicon)
        with self._lock:
            if len(self._items) >= self._size:
                self._items.pop(next(iter(self._items)))
            self._items[key] = (roster, lexicon, built)
        return built
