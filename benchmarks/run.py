#!/usr/bin/env python3
"""Throughput of `helpdesk run --once` on a backlog, against a bare baseline.

Both sides run in this process on the same real mail stack (Dovecot + SMTP front):
- baseline: fetch every letter with imapclient (BODY.PEEK[]) and send the same
  number of letters helpdesk sends (two per appeal) with a bare aiosmtplib loop
  over one connection: the mail I/O that no helpdesk can avoid;
- helpdesk: `run --once` on the same backlog with SQLite (ingest, understand,
  route, store in transactions, render templates, send).
Printed as letters per second and as the ratio helpdesk / baseline.

    python benchmarks/run.py [--letters 1000]
"""
from __future__ import annotations

import argparse
import asyncio
import json
import sys
import tempfile
import time
from email.message import EmailMessage
from email.utils import make_msgid
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import aiosmtplib  # noqa: E402
from imapclient import IMAPClient  # noqa: E402

from helpdesk.cli import main as helpdesk  # noqa: E402
from helpdesk.roster.reader import read_roster  # noqa: E402
from helpdesk.testing.mailstack import MailStack  # noqa: E402

ROSTER = ROOT / "tests" / "data" / "letters-dev" / "roster"
SCHOOL = "lyceum21@lyceum21-edu.test"
BODIES = [
    ("алгебра", "не понимаю как решать квадратные уравнения через дискриминант"),
    ("физика", "помогите с задачей на закон Ома, не сходится ответ"),
    ("не могу войти", "не получается войти в Сферум, пишет неверный пароль"),
    ("консультация", "можно ли записаться на консультацию по геометрии"),
    ("расписание", "когда сдавать проект и как его отправить?"),
]


def backlog(roster, count: int) -> list[tuple[str, EmailMessage]]:
    letters = []
    students = roster.students
    for i in range(count):
        student = students[i % len(students)]
        subject, body = BODIES[i % len(BODIES)]
        msg = EmailMessage()
        msg["From"] = student.email
        msg["To"] = SCHOOL
        msg["Subject"] = f"{subject} {i}"
        msg["Message-ID"] = make_msgid(domain="bench.test")
        msg.set_content(f"Здравствуйте! {body}. {student.full_name}, {student.class_name}")
        letters.append((student.email, msg))
    return letters


def deliver(stack: MailStack, letters) -> float:
    started = time.perf_counter()

    async def send_all():
        client = aiosmtplib.SMTP(hostname=stack.host, port=stack.smtp_port)
        await client.connect()
        for sender, msg in letters:
            await client.send_message(msg, sender=sender, recipients=[SCHOOL])
        await client.quit()

    asyncio.run(send_all())
    return time.perf_counter() - started


def baseline(stack: MailStack, sends: int, roster) -> float:
    started = time.perf_counter()
    with IMAPClient(stack.host, port=stack.imap_port, ssl=False) as client:
        client.login(SCHOOL, "x")
        client.select_folder("INBOX", readonly=True)
        uids = client.search(["ALL"])
        for i in range(0, len(uids), 200):
            client.fetch(uids[i:i + 200], ["BODY.PEEK[]", "INTERNALDATE"])

    async def send_all():
        client = aiosmtplib.SMTP(hostname=stack.host, port=stack.smtp_port)
        await client.connect()
        for i in range(sends):
            to = roster.students[i % len(roster.students)].email
            msg = EmailMessage()
            msg["From"] = SCHOOL
            msg["To"] = to
            msg["Subject"] = f"baseline {i}"
            msg.set_content("Ваше обращение получено. " * 20)
            await client.sendmail(SCHOOL, [to], msg.as_bytes())
        await client.quit()

    asyncio.run(send_all())
    return time.perf_counter() - started


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--letters", type=int, default=1000)
    args = parser.parse_args()
    roster = read_roster(ROSTER)
    users = {SCHOOL: "x"}
    users.update({p.email: "x" for p in (*roster.staff, *roster.students)})
    stack = MailStack.start(users=users)
    try:
        letters = backlog(roster, args.letters)
        took = deliver(stack, letters)
        print(f"delivered {len(letters)} letters into Dovecot in {took:.1f} s")
        work = Path(tempfile.mkdtemp(prefix="hd-bench-"))
        config = work / "config.toml"
        config.write_text(
            f'[school]\nname = "Лицей"\naddress = "{SCHOOL}"\ntimezone = "Europe/Moscow"\n\n'
            f'[imap]\nhost = "127.0.0.1"\nport = {stack.imap_port}\nsecurity = "none"\n'
            f'username = "{SCHOOL}"\npassword = "x"\nprocessed_flag = ""\n\n'
            f'[smtp]\nhost = "127.0.0.1"\nport = {stack.smtp_port}\nsecurity = "none"\n\n'
            f'[database]\nurl = "sqlite:///{work}/bench.sqlite3"\n\n[hours]\nstart = "08:00"\nend = "17:00"\n'
            # Thirty letters per student within a minute: the loop guard would hold acks back.
            '\n[outbox]\nack_limit_per_hour = 0\n\n[digest]\nenabled = false\n',
            encoding="utf-8",
        )
        assert helpdesk(["--config", str(config), "roster", "import", str(ROSTER)]) == 0

        base = baseline(stack, 2 * args.letters, roster)
        stack.clear()
        deliver(stack, letters)
        started = time.perf_counter()
        assert helpdesk(["--config", str(config), "run", "--once"]) == 0
        ours = time.perf_counter() - started

        from helpdesk.store.models import Appeal, Outgoing

        appeals = Appeal.select().count()
        sent = Outgoing.select().where(Outgoing.status == "sent").count()
        result = {
            "letters": args.letters,
            "appeals": appeals,
            "sent": sent,
            "baseline_seconds": round(base, 2),
            "helpdesk_seconds": round(ours, 2),
            "baseline_letters_per_s": round(args.letters / base, 1),
            "helpdesk_letters_per_s": round(args.letters / ours, 1),
            "ratio_helpdesk_to_baseline": round(base / ours, 3),
        }
        print("\n| benchmark | baseline | helpdesk | ratio |\n|---|---|---|---|")
        print(f"| run --once, {args.letters} letters -> {appeals} appeals, {sent} letters sent "
              f"| {base:.2f} s | {ours:.2f} s | {base / ours:.2f} |")
        print(json.dumps(result))
        return 0
    finally:
        stack.stop()


if __name__ == "__main__":
    sys.exit(main())
