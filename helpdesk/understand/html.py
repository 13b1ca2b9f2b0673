"""HTML bodies of letters: readable plain text, and quote stripping for replies.

Pure functions over strings, built on BeautifulSoup with the stdlib ``html.parser``
backend (no lxml). Both walk the tree iteratively, so a deeply nested newsletter
cannot exhaust the recursion limit.
"""
from __future__ import annotations

import re
from typing import Iterable, Iterator

from bs4 import BeautifulSoup, NavigableString, Tag
from bs4.element import Comment, Declaration, Doctype, ProcessingInstruction

__all__ = ["html_to_text", "strip_html_quotes", "has_quote_markup"]

# Elements whose content is never shown to a reader.
_DROPPED_TAGS = ("script", "style", "head", "title", "noscript", "template", "svg", "object")

# Elements that start and end a line of their own.
_BLOCK_TAGS = frozenset(
    "address article aside blockquote body center dd details dir div dl dt fieldset "
    "figcaption figure footer form h1 h2 h3 h4 h5 h6 header hr html li main menu nav ol "
    "p pre section summary table tbody tfoot thead tr ul caption".split()
)

# Non-content nodes that BeautifulSoup keeps as strings.
_SKIPPED_STRINGS = (Comment, Declaration, Doctype, ProcessingInstruction)

# Invisible characters that only get in the way of text matching.
_INVISIBLE = dict.fromkeys(map(ord, "\u200b\u200c\u200d\u2060\ufeff\u00ad"), None)
_WHITESPACE = re.compile(r"\s+")


def _soup(html: str) -> BeautifulSoup:
    return BeautifulSoup(html or "", "html.parser")


# --------------------------------------------------------------------------- #
# HTML -> text
# --------------------------------------------------------------------------- #


class _Lines:
    """Collects rendered lines; a block boundary ends a line only when it has text."""

    def __init__(self) -> None:
        self.lines: list[str] = []
        self.current = ""
        self.visible = False  # the current line has something a browser would show

    def text(self, chunk: str, visible: bool | None = None) -> None:
        if chunk.startswith(" ") and (not self.current or self.current.endswith(" ")):
            chunk = chunk[1:]
        self.current += chunk
        self.visible = self.visible or bool(chunk.strip()) or bool(visible)

    def soft_break(self) -> None:
        """A block boundary: <div>, <p>, <li>, <tr> ... ends a line that shows something.

        An empty block makes no line, but a block holding only &nbsp; (the way
        Outlook and Yandex write an empty line) makes a blank one, as in a browser.
        """
        if self.visible:
            self.hard_break()

    def hard_break(self) -> None:
        """A <br>: always ends the line, so <br><br> leaves a blank line."""
        self.lines.append(self.current.strip())
        self.current = ""
        self.visible = False

    def finish(self) -> list[str]:
        self.soft_break()
        return _tidy(self.lines)


def _tidy(lines: list[str]) -> list[str]:
    """Drop leading/trailing blank lines and squeeze runs of blank lines to one."""
    out: list[str] = []
    for line in lines:
        if not line and (not out or not out[-1]):
            continue
        out.append(line)
    while out and not out[-1]:
        out.pop()
    return out


def _link_suffix(tag: Tag) -> str:
    """" (URL)" after a link whose text does not already show where it goes."""
    href = (tag.get("href") or "").strip()
    if not re.match(r"https?://", href, re.I):
        return ""
    shown = tag.get_text(" ", strip=True)
    if not shown:
        return ""
    shows_url = href.rstrip("/") in shown or ("." in shown and shown.rstrip("/") in href)
    return "" if shows_url else f" ({href})"


class _Renderer:
    """Walks the tree in document order, emitting text into a stack of _Lines.

    A <blockquote> that quotes a letter gets its own _Lines; when it closes, its
    lines are added to the parent prefixed with "> ", the way mail clients quote
    plain text. A writer's own <blockquote> (a citation) is an ordinary block.
    """

    def __init__(self, quote_ids: set[int]) -> None:
        self.stack = [_Lines()]
        self.list_counters: list[int | None] = []
        self.pre_depth = 0
        self.quote_ids = quote_ids  # blockquotes that quote a letter

    @property
    def out(self) -> _Lines:
        return self.stack[-1]

    def open(self, tag: Tag) -> None:
        name = tag.name
        if name == "br":
            self.out.hard_break()
        elif name == "blockquote" and id(tag) in self.quote_ids:
            self.out.soft_break()
            self.stack.append(_Lines())
        elif name in ("ul", "ol", "menu", "dir"):
            self.out.soft_break()
            self.list_counters.append(0 if name == "ol" else None)
        elif name == "li":
            self.out.soft_break()
            counter = self.list_counters[-1] if self.list_counters else None
            if counter is None:
                self.out.text("- ")
            else:
                self.list_counters[-1] = counter + 1
                self.out.text(f"{counter + 1}. ")
        elif name in ("td", "th"):
            if self.out.current.strip():
                self.out.text(" ")
        elif name == "img":
            alt = (tag.get("alt") or "").strip()
            if alt and len(alt) < 80:
                self.out.text(f" {alt} ")
        elif name == "pre":
            self.out.soft_break()
            self.pre_depth += 1
        elif name in _BLOCK_TAGS:
            self.out.soft_break()

    def close(self, tag: Tag) -> None:
        name = tag.name
        if name == "blockquote" and id(tag) in self.quote_ids and len(self.stack) > 1:
            quoted = self.stack.pop().finish()
            self.out.soft_break()
            self.out.lines.extend(f"> {line}" if line else ">" for line in quoted)
        elif name in ("ul", "ol", "menu", "dir"):
            if self.list_counters:
                self.list_counters.pop()
            self.out.soft_break()
        elif name == "a":
            self.out.text(_link_suffix(tag))
        elif name == "pre":
            self.pre_depth = max(0, self.pre_depth - 1)
            self.out.soft_break()
        elif name in _BLOCK_TAGS:
            self.out.soft_break()

    def string(self, node: NavigableString) -> None:
        if isinstance(node, _SKIPPED_STRINGS):
            return
        text = str(node).translate(_INVISIBLE)
        if self.pre_depth:
            first, *rest = text.replace("\r\n", "\n").split("\n")
            self.out.text(first.replace("\xa0", " "))
            for line in rest:
                self.out.hard_break()
                self.out.text(line.replace("\xa0", " "))
            return
        self.out.text(_WHITESPACE.sub(" ", text), visible="\xa0" in text)

    def result(self) -> str:
        while len(self.stack) > 1:  # an unclosed <blockquote> in broken markup
            quoted = self.stack.pop().finish()
            self.out.soft_break()
            self.out.lines.extend(f"> {line}" if line else ">" for line in quoted)
        return "\n".join(self.out.finish())


def _events(root: Tag) -> Iterator[tuple[str, object]]:
    """("open", tag) / ("close", tag) / ("text", string) in document order, iteratively."""
    open_tags: list[Tag] = [root]
    for node in root.descendants:
        while len(open_tags) > 1 and open_tags[-1] is not node.parent:
            yield "close", open_tags.pop()
        if isinstance(node, Tag):
            yield "open", node
            open_tags.append(node)
        else:
            yield "text", node
    while len(open_tags) > 1:
        yield "close", open_tags.pop()


def html_to_text(html: str) -> str:
    """Readable plain text of an HTML body.

    Scripts, styles and <head> are dropped; <br>, <p>, <div>, <li>, <tr> and the
    other block elements break lines; entities are decoded; runs of whitespace
    become one space and runs of blank lines one blank line; a link keeps its text
    (followed by the URL in brackets when the text does not show it); list items
    get "- " or "1. "; the content of a quoted letter (see strip_html_quotes for
    how one is recognised) is prefixed with "> ".
    """
    soup = _soup(html)
    for tag in soup.find_all(_DROPPED_TAGS):
        tag.decompose()
    tags = soup.find_all(True)
    renderer = _Renderer({id(t) for t in _quote_elements(tags) if t.name == "blockquote"})
    for kind, node in _events(soup):
        if kind == "open":
            renderer.open(node)  # type: ignore[arg-type]
        elif kind == "close":
            renderer.close(node)  # type: ignore[arg-type]
        else:
            renderer.string(node)  # type: ignore[arg-type]
    return renderer.result()


# --------------------------------------------------------------------------- #
# Quote stripping
# --------------------------------------------------------------------------- #

# Markers after which the whole rest of the letter is the quoted original
# (Outlook and Outlook on the web: the reply header block follows them).
_CUT_AFTER_IDS = frozenset({"appendonsend", "divrplyfwdmsg", "x_divrplyfwdmsg", "x_appendonsend"})

# Class names of quote containers, by client.
_QUOTE_CLASSES = frozenset(
    {
        "gmail_quote",  # Gmail (div.gmail_quote > div.gmail_attr + blockquote.gmail_quote)
        "gmail_quote_container",  # Gmail, newer markup
        "gmail_extra",  # Gmail, older markup wrapping the quote
        "yahoo_quoted",  # Yahoo
        "mail-quote-collapse",  # Mail.ru (wraps its quote blockquote)
        "moz-cite-prefix",  # Thunderbird's "... wrote:" line before blockquote[type=cite]
        "moz-forward-container",  # Thunderbird forward
    }
)

# Attributes that mark a quote whatever the element (Mail.ru's newer markup).
_QUOTE_ATTRS = ("data-o-mail-quote-node",)

# An attribution line ("27.11.2026, 10:00, "Имя" <a@b>:", "... пишет:") is short,
# ends with a colon and names an address or a verb of writing ("Встреча в 15:00:"
# introducing a writer's own citation is not one).
_ATTRIBUTION_MAX = 300
_ATTRIBUTION_SIGN = re.compile(r"@|пишет|писал|wrote|writes", re.I)


def _classes(tag: Tag) -> set[str]:
    value = tag.get("class") or ()
    if isinstance(value, str):
        value = value.split()
    return {c.lower() for c in value}


def _is_cut_marker(tag: Tag) -> bool:
    """Outlook's reply header: the marker itself and everything after it is quoted."""
    if (tag.get("id") or "").lower() in _CUT_AFTER_IDS:
        return True
    # Outlook desktop: <div style="border:none;border-top:solid #E1E1E1 1.0pt..."> around
    # the "From:/От:" block.
    style = (tag.get("style") or "").replace(" ", "").lower()
    if tag.name == "div" and "border-top:solid" in style and "border:none" in style:
        head = tag.get_text(" ", strip=True)[:40].lower()
        return head.startswith(("from:", "от:", "отправитель:"))
    return False


def _is_marked_quote(tag: Tag) -> bool:
    """A quote by its markup alone: blockquote[type=cite], client classes, Mail.ru attributes."""
    if tag.name == "blockquote" and (tag.get("type") or "").lower() == "cite":
        return True
    if _classes(tag) & _QUOTE_CLASSES:
        return True
    return any(tag.has_attr(a) for a in _QUOTE_ATTRS)


def _opens_with_attribution(tag: Tag) -> bool:
    """Mail.ru puts its "..., 10:00 +03:00 от Имя <a@b>:" line inside the blockquote."""
    first = next((line for line in tag.get_text("\n").split("\n") if line.strip()), "")
    return _looks_like_attribution(first)


def _outermost(tags: Iterable[Tag]) -> list[Tag]:
    """Drop tags nested inside another tag of the list, keeping document order."""
    chosen: list[Tag] = []
    ids: set[int] = set()
    for tag in tags:
        if any(id(parent) in ids for parent in tag.parents):
            continue
        chosen.append(tag)
        ids.add(id(tag))
    return chosen


def _looks_like_attribution(text: str) -> bool:
    text = " ".join(text.split())
    return (
        0 < len(text) <= _ATTRIBUTION_MAX
        and text.endswith(":")
        and bool(_ATTRIBUTION_SIGN.search(text))
    )


def _attribution_before(quote: Tag) -> list:
    """The nodes of the "... wrote:" line right before a quote, or []."""
    run: list = []
    for sib in quote.previous_siblings:
        if not isinstance(sib, Tag):  # text, whitespace or a comment
            run.append(sib)
            continue
        if sib.name == "br":
            if any(_node_text(n).strip() for n in run):
                break
            run.append(sib)
            continue
        if sib.name in _BLOCK_TAGS:
            if any(_node_text(n).strip() for n in run):
                break
            return [sib, *run] if _looks_like_attribution(sib.get_text(" ")) else []
        run.append(sib)  # inline element, e.g. <a href="mailto:...">
    text = "".join(_node_text(n) for n in reversed(run))
    return run if _looks_like_attribution(text) else []


def _node_text(node) -> str:
    if isinstance(node, Tag):
        return node.get_text(" ")
    if isinstance(node, _SKIPPED_STRINGS):
        return ""
    return str(node)


def _quote_nodes(soup: BeautifulSoup) -> tuple[list[Tag], Tag | None]:
    """(outermost quote elements, the first Outlook cut marker or None).

    Yandex and older Mail.ru quote with a plain <blockquote>, which a writer may
    also use for a citation of their own. Plain blockquotes count as quotes only
    when one of them comes with an attribution line ("27.11.2026, 10:00, Имя
    <a@b>:") before it or at its top; then all of them do (in an inline answer
    only the first quote has one).
    """
    tags = soup.find_all(True)
    quotes = _outermost(_quote_elements(tags))
    cut = next((t for t in tags if _is_cut_marker(t)), None)
    return quotes, cut


def _quote_elements(tags: list[Tag]) -> list[Tag]:
    """Every element that is a mail quote (nested ones included), in document order."""
    marked = {id(t) for t in tags if _is_marked_quote(t)}
    plain = [t for t in tags if t.name == "blockquote" and id(t) not in marked]
    if any(_attribution_before(t) or _opens_with_attribution(t) for t in plain):
        marked |= {id(t) for t in plain}
    return [t for t in tags if id(t) in marked]


def has_quote_markup(html: str) -> bool:
    """True when the HTML carries quote markup that strip_html_quotes would act on."""
    if not html:
        return False
    quotes, cut = _quote_nodes(_soup(html))
    return bool(quotes) or cut is not None


def _is_interleaved(soup: BeautifulSoup, quotes: list[Tag], attributions: set[int]) -> bool:
    """New text between two quotes, or new text both before and after a quote.

    Such inline answers refer to the quoted questions; stripping the quotes would
    leave answers without their questions, so they are kept whole.
    """
    quote_ids = {id(q) for q in quotes} | attributions
    runs: list[str] = []
    for node in soup.descendants:
        if not isinstance(node, NavigableString) or isinstance(node, _SKIPPED_STRINGS):
            continue
        if not node.strip():
            continue
        inside = id(node) in quote_ids or any(id(p) in quote_ids for p in node.parents)
        kind = "Q" if inside else "N"
        if not runs or runs[-1] != kind:
            runs.append(kind)
    # Patterns Q N Q and N Q N are inline answers; N Q (top-posting) and Q N
    # (bottom-posting) are not.
    return len(runs) >= 3


def _remove_from(marker: Tag) -> None:
    """Remove a node and everything after it in document order."""
    node: Tag | None = marker
    while node is not None and node.parent is not None:
        for sib in list(node.next_siblings):
            sib.extract()
        parent = node.parent
        if node is marker:
            node.extract()
        node = parent if parent.name != "[document]" else None


def strip_html_quotes(html: str) -> str:
    """The HTML with the quoted original removed (for extracting a reply).

    Removed: blockquote[type=cite] with Thunderbird's div.moz-cite-prefix line;
    div.gmail_quote; Yandex and Mail.ru quote blockquotes (div.mail-quote-collapse,
    plain <blockquote>) together with the "... wrote:" line right before them;
    Outlook's div#appendonsend / div#divRplyFwdMsg / bordered "From:" block and
    everything after it. Inline answers (new text between quotes) are returned
    unchanged: their quotes give the answers their meaning.
    """
    if not html:
        return html or ""
    soup = _soup(html)
    quotes, cut = _quote_nodes(soup)
    if not quotes and cut is None:
        return html
    if cut is not None:
        _remove_from(cut)
        quotes = [q for q in quotes if q.parent is not None and _attached(q, soup)]
    attributions = {id(n): n for q in quotes for n in _attribution_before(q)}
    if quotes and _is_interleaved(soup, quotes, set(attributions)):
        return str(soup) if cut is not None else html
    for node in attributions.values():
        node.extract()
    for quote in quotes:
        quote.decompose()
    return str(soup)


def _attached(tag: Tag, soup: BeautifulSoup) -> bool:
    """Whether a tag is still part of the document after removals."""
    return any(parent is soup for parent in tag.parents)
