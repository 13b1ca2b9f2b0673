"""A backlog is streamed: thousands of letters APPENDed to the real Dovecot are
taken in FETCH by FETCH, each batch stored before the next is fetched, and the
stored letters are read for processing a page at a time (SQLite and PostgreSQL)."""
from __future__ import annotations

from collections import Counter

import pytest

from helpdesk.ingest.imap import FETCH_BATCH, ImapSettings, Mailbox
from helpdesk.ingest.runner import ingest
from tests.conftest import SCHOOL, letter

LETTERS = 2000


def append_backlog(stack, count: int) -> list[str]:
    """``count`` letters APPENDed to the school's INBOX (MULTIAPPEND, 500 a command)."""
    ids, client = [], stack.imap(SCHOOL)
    try:
        for start in range(0, count, 500):
            batch = []
            for n in range(start, min(count, start + 500)):
                msg = letter(f"student{n % 40}@mail.test", f"вопрос {n}",
                             f"Здравствуйте! Вопрос номер {n} по расписанию.\n" + "текст " * 200)
                ids.append(msg["Message-ID"])
                batch.append(msg.as_bytes())
            client.multiappend("INBOX", batch)
    finally:
        client.logout()
    return ids


class FetchSpy:
    """Wraps the real IMAP client's ``fetch``: records, for every FETCH of letter
    bodies, how many UIDs it asked for and how many letters were stored by then."""

    def __init__(self, client) -> None:
        self.client = client
        self.real = client.fetch
        self.calls: list[tuple[int, int]] = []  # (UIDs asked for, letters stored before)
        client.fetch = self

    def __call__(self, uids, data, *args, **kwargs):
        from helpdesk.store.models import Letter

        if any("BODY" in item for item in data):
            self.calls.append((len(uids), Letter.select().count()))
        return self.real(uids, data, *args, **kwargs)


@pytest.fixture
def backlog_mailbox(stack):
    settings = ImapSettings(host=stack.host, port=stack.imap_port, security="none",
                            username=SCHOOL, password=stack.password(SCHOOL))
    with Mailbox(settings) as mailbox:
        yield mailbox


def test_a_backlog_is_fetched_and_stored_batch_by_batch(db, stack, backlog_mailbox):
    from helpdesk.store.models import Letter

    ids = append_backlog(stack, LETTERS)
    backlog_mailbox.refresh()
    spy = FetchSpy(backlog_mailbox.client)

    got = ingest(backlog_mailbox)

    assert (got.stored, got.duplicates) == (LETTERS, 0)
    stored = Counter(m for (m,) in Letter.select(Letter.message_id).tuples())
    assert set(stored) == set(ids) and set(stored.values()) == {1}
    # Bounded FETCHes, and each batch was stored before the next one was asked for.
    sizes = [n for n, _ in spy.calls]
    assert max(sizes) <= FETCH_BATCH and sum(sizes) == LETTERS
    assert len(sizes) >= LETTERS // FETCH_BATCH
    assert [before for _, before in spy.calls] == [sum(sizes[:i]) for i in range(len(sizes))]
    # Nothing new the second time.
    assert ingest(backlog_mailbox).stored == 0


def test_pending_letters_are_read_a_page_at_a_time(db, stack, backlog_mailbox):
    from helpdesk.pipeline import pending_letter_ids
    from helpdesk.store.models import Letter

    append_backlog(stack, 450)
    backlog_mailbox.refresh()
    ingest(backlog_mailbox)
    everything = [i for (i,) in Letter.select(Letter.id).order_by(Letter.id).tuples()]
    pages = pending_letter_ids(batch=100)
    seen = [next(pages) for _ in range(100)]
    # Letters done elsewhere meanwhile (another daemon) are not handed out later.
    done_elsewhere = everything[150:160]
    Letter.update(status="processed").where(Letter.id.in_(done_elsewhere)).execute()
    seen += list(pages)
    assert seen == [i for i in everything if i not in done_elsewhere]
