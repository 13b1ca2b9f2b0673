"""Latency from a student's letter to the acknowledgement in the student's mailbox.

The daemon (``helpdesk run``, a subprocess) waits in IMAP IDLE on a mail stack of its
own. Letters are sent one at a time through the SMTP front (which hands each to
Dovecot's LMTP before it answers 250: the moment the letter is accepted is the
moment it is in the school's mailbox). For each, the time from acceptance to the
acknowledgement being visible in the sender's INBOX (polled with STATUS every
``POLL`` seconds) is recorded; a first letter warms the daemon up and is not counted.

Baseline: the mail stack's own latency, a bare SMTP -> LMTP -> IMAP delivery of a
letter from the school to the same mailboxes, timed from the start of the SMTP
transaction to the letter being visible the same way. Dovecot tells IDLE clients
about new mail with a fixed ~0.5 s delay (see /work/shared/notes/mailstack.md): the
daemon pays that, the baseline does not.
"""
from __future__ import annotations

import signal
import smtplib
import statistics
import subprocess
import tempfile
import time
from email.message import EmailMessage
from email.utils import formataddr, make_msgid
from pathlib import Path

from benchmarks import common
from benchmarks.letters import SCHOOL, extra_texts, roster_people

TARGET_SECONDS = 1.0
POLL = 0.01
TIMEOUT = 20.0


def _letters(count: int) -> list[tuple[str, EmailMessage]]:
    """``count + 1`` letters from distinct roster people (the first is the warm-up)."""
    people = roster_people()
    texts = extra_texts()
    if count + 1 > len(people):
        raise ValueError(f"at most {len(people) - 1} latency letters (one per roster address)")
    found = []
    for i in range(count + 1):
        name, address = people[i]
        subject, text = texts[i % len(texts)]
        msg = EmailMessage()
        msg["From"] = formataddr((name, address)) if name else address
        msg["To"] = SCHOOL
        msg["Subject"] = subject
        msg["Message-ID"] = make_msgid(domain="bench.test")
        msg.set_content(text)
        found.append((address, msg))
    return found


def _exists(client) -> int:
    return client.folder_status("INBOX", ["MESSAGES"])[b"MESSAGES"]


def _wait_more(client, before: int, since: float) -> float:
    """Seconds from ``since`` until the INBOX holds more than ``before`` letters."""
    while True:
        if _exists(client) > before:
            return time.perf_counter() - since
        if time.perf_counter() - since > TIMEOUT:
            raise TimeoutError(f"nothing arrived within {TIMEOUT:g} s")
        time.sleep(POLL)


def _idle_wakeups(stack, letters) -> list[float]:
    """Seconds from SMTP acceptance of a letter to the school's bare IDLE client being
    told about it: the floor under any IDLE-driven daemon on this Dovecot."""
    client = stack.imap(SCHOOL)
    found = []
    try:
        client.select_folder("INBOX")
        with smtplib.SMTP(stack.host, stack.smtp_port, timeout=30) as smtp:
            for address, msg in letters:
                del msg["Message-ID"]
                msg["Message-ID"] = make_msgid(domain="bench.test")
                client.idle()
                smtp.send_message(msg, address, [SCHOOL])
                accepted = time.perf_counter()
                while not any(b"EXISTS" in r for r in client.idle_check(timeout=TIMEOUT)):
                    if time.perf_counter() - accepted > TIMEOUT:
                        raise TimeoutError("IDLE said nothing")
                found.append(time.perf_counter() - accepted)
                client.idle_done()
    finally:
        client.logout()
    return found


def _percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(share * len(ordered)) - 1))]


def run(count: int = 50, log=print) -> list[dict]:
    letters = _letters(count)
    with common.mail_stack() as stack, tempfile.TemporaryDirectory(prefix="hd-lat-") as tmp:
        config = common.write_config(Path(tmp), stack, f"sqlite:///{Path(tmp) / 'helpdesk.sqlite3'}")
        stderr = open(Path(tmp) / "daemon.log", "wb")
        daemon = subprocess.Popen(common.helpdesk_argv(config, "run"), stdin=subprocess.DEVNULL,
                                  stdout=stderr, stderr=stderr)
        clients = {}
        try:
            ours = []
            with smtplib.SMTP(stack.host, stack.smtp_port, timeout=30) as smtp:
                for i, (address, msg) in enumerate(letters):
                    client = clients.get(address) or clients.setdefault(address, stack.imap(address))
                    before = _exists(client)
                    smtp.send_message(msg, address, [SCHOOL])
                    accepted = time.perf_counter()
                    took = _wait_more(client, before, accepted)
                    if i:
                        ours.append(took)
                    else:
                        log(f"  latency: warm-up letter acknowledged in {took:.2f} s")
            base = []
            with smtplib.SMTP(stack.host, stack.smtp_port, timeout=30) as smtp:
                for address, msg in letters[1:]:
                    client = clients[address]
                    before = _exists(client)
                    reply = EmailMessage()
                    reply["From"], reply["To"] = SCHOOL, address
                    reply["Subject"] = "Re: " + str(msg["Subject"])
                    reply.set_content("Ваше обращение зарегистрировано. " * 20)
                    started = time.perf_counter()
                    smtp.send_message(reply, SCHOOL, [address])
                    base.append(_wait_more(client, before, started))
            idle = _idle_wakeups(stack, letters[1:11])
        finally:
            for client in clients.values():
                client.logout()
            daemon.send_signal(signal.SIGTERM)
            try:
                daemon.wait(30)
            except subprocess.TimeoutExpired:
                daemon.kill()
                daemon.wait()
            stderr.close()
    median, p95 = statistics.median(ours), _percentile(ours, 0.95)
    bmedian, bp95 = statistics.median(base), _percentile(base, 0.95)
    return [
        {"benchmark": f"latency letter -> ack, median of {count}", "unit": "s",
         "helpdesk": round(median, 3), "baseline": round(bmedian, 3),
         "ratio": round(median / bmedian, 1) if bmedian else None,
         "target": f"median < {TARGET_SECONDS:g} s", "met": median < TARGET_SECONDS},
        {"benchmark": f"latency letter -> ack, p95 of {count}", "unit": "s",
         "helpdesk": round(p95, 3), "baseline": round(bp95, 3),
         "ratio": round(p95 / bp95, 1) if bp95 else None, "target": "-", "met": None,
         "all_seconds": [round(x, 3) for x in ours]},
        {"benchmark": f"IDLE wake-up after SMTP acceptance (Dovecot), median of {len(idle)}",
         "unit": "s", "helpdesk": None, "baseline": round(statistics.median(idle), 3),
         "ratio": None, "target": "-", "met": None,
         "note": "bare imapclient IDLE on the school's INBOX: the floor under the latency above"},
    ]

