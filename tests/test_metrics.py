"""The optional Prometheus endpoint: a daemon with ``[metrics] enabled`` handles
real letters, and a scrape agrees with the database."""
from __future__ import annotations

import socket
import urllib.request

import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.conftest import ROSTER, SCHOOL, letter, write_config
from tests.daemon_kit import DaemonThread, wait_until

pytestmark = pytest.mark.mailstack


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def scrape(port: int) -> dict[tuple[str, tuple], float]:
    """(sample name, sorted labels) -> value."""
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as response:
        text = response.read().decode()
    return {(sample.name, tuple(sorted(sample.labels.items()))): sample.value
            for family in text_string_to_metric_families(text) for sample in family.samples}


def test_metrics_endpoint_agrees_with_the_database(stack, tmp_path, db_url, corpus_roster):
    from peewee import fn

    from helpdesk.cli import main
    from helpdesk.store.models import Appeal, Letter, MailboxState, Outgoing, as_aware

    port = free_port()
    config = write_config(tmp_path, stack, db_url, metrics__enabled="true", metrics__port=str(port),
                          outbox__retry_base="0.2")
    assert main(["--config", str(config), "roster", "import", str(ROSTER)]) == 0
    students = corpus_roster.students[15], corpus_roster.students[3]
    for n, who in enumerate(students):
        stack.send(letter(who.email, f"вопрос {n}", f"Не понимаю задачу {n} по алгебре.\n"
                          f"{who.full_name}"), who.email, [SCHOOL])
    stack.wait_for(SCHOOL, 2)
    refused_before = stack.refused
    stack.refuse_next(1)  # the first letter helpdesk sends is deferred once
    with DaemonThread(config):
        wait_until(lambda: _reachable(port), 60, what="the metrics endpoint")
        for who in students:
            stack.wait_for(who.email, 1, timeout=30)  # acknowledged
        # The counters are updated when the cycle that sent the acknowledgements ends.
        metrics = wait_until(lambda: (m := scrape(port)).get(("helpdesk_letters_sent_total", ()), 0)
                             >= 2 and m, 30, what="the cycle to be counted")

    def gauge(name: str, **labels: str) -> float:
        return metrics[(name, tuple(sorted(labels.items())))]

    assert gauge("helpdesk_letters_ingested_total") == Letter.select().count() == 2
    assert gauge("helpdesk_letters_processed_total", outcome="appeal") == 2
    sent = Outgoing.select().where(Outgoing.status == "sent").count()
    assert gauge("helpdesk_letters_sent_total") == sent >= 2
    for state in ("open", "answered", "closed"):
        assert gauge("helpdesk_appeals", state=state) == \
            Appeal.select().where(Appeal.status == state).count()
    assert gauge("helpdesk_appeals", state="open") == 2
    queued = Outgoing.select().where(Outgoing.status.in_(("queued", "sending"))).count()
    assert gauge("helpdesk_outbox_queue_length") == queued
    assert gauge("helpdesk_database_up") == 1
    last_poll = as_aware(MailboxState.select(fn.MAX(MailboxState.last_poll_at)).scalar())
    assert gauge("helpdesk_last_poll_timestamp_seconds") <= last_poll.timestamp()
    assert gauge("helpdesk_imap_reconnects_total") == 0
    assert gauge("helpdesk_cycle_seconds_count") >= 1
    assert gauge("helpdesk_sla_sweep_seconds_count") >= 1
    assert stack.refused == refused_before + 1
    assert gauge("helpdesk_send_failures_total", kind="retry") == 1
    assert ("helpdesk_send_failures_total", (("kind", "failed"),)) not in metrics


def _reachable(port: int) -> bool:
    try:
        scrape(port)
    except OSError:
        return False
    return True


def test_metrics_are_off_by_default(stack, tmp_path):
    from helpdesk.config import load_config

    config = load_config(write_config(tmp_path, stack, f"sqlite:///{tmp_path / 'db.sqlite3'}"))
    assert config.metrics.enabled is False
    assert (config.metrics.listen, config.metrics.port) == ("127.0.0.1", 9464)
