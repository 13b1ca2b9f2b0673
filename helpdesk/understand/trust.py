"""May this staff letter answer or command this appeal? (pure)

A teacher's reply is trusted only when all of these hold:
- it answers a letter the daemon sent to this very address about this appeal:
  the In-Reply-To/References carry that letter's Message-ID, which holds a
  random part nobody else has seen (the token the daemon gave out);
- the sender is the appeal's assignee, or the administration (deputy,
  director); another teacher is made the assignee with ``#передать`` first;
- the receiving server's Authentication-Results, where present, do not report
  an SPF, DKIM or DMARC failure for the letter.
Anything else is "suspicious": not relayed to the student, sent to the deputy.
"""
from __future__ import annotations

import re

from ..domain import ParsedLetter, Roster

ADMIN_ROLES = frozenset({"deputy", "director"})
_AUTH_FAIL = re.compile(r"\b(spf|dkim|dmarc)\s*=\s*(fail|softfail|permerror)\b", re.I)


def authentication_failure(letter: ParsedLetter) -> str | None:
    """The failed check named by Authentication-Results (RFC 8601), if any."""
    value = letter.headers.get("authentication-results") or ""
    m = _AUTH_FAIL.search(str(value))
    if not m:
        return None
    return f"{m.group(1).upper()}={m.group(2).lower()}"


def is_admin(roster: Roster, address: str) -> bool:
    member = roster.staff_member(address)
    return bool(member and member.roles & ADMIN_ROLES)


def reply_problem(
    letter: ParsedLetter, roster: Roster, *, number: int, assignee: str, token_holders: frozenset[str]
) -> str | None:
    """Why this staff reply must not be trusted, in Russian; None when it may be."""
    sender = letter.from_addr
    failure = authentication_failure(letter)
    if failure:
        return (f"почтовый сервер школы не подтвердил отправителя ({failure} в заголовке "
                "Authentication-Results): адрес отправителя, вероятно, подделан")
    if sender not in token_holders:
        return (f"письмо не является ответом на письмо службы обращений, отправленное на адрес "
                f"{sender} по обращению № {number} (нет действующей метки в заголовках)")
    if sender != assignee and not is_admin(roster, sender):
        return (f"ответил не назначенный учитель ({roster.name_of(sender)}); передать обращение "
                "можно командой #передать в ответе назначенного учителя")
    return None
