#!/usr/bin/env python3
"""`make demo`: the main job of helpdesk on a real local mail stack with SQLite.

1. starts Dovecot (IMAP + LMTP) and an SMTP front on 127.0.0.1, in a temporary
   directory, with mailboxes for the school, its staff, students and parents;
2. `helpdesk init` + `helpdesk roster import demo/roster` into ./demo-run/;
3. starts the daemon (`helpdesk run`, IMAP IDLE) and sends letters from students,
   a parent, a stranger and a vacation auto-responder;
4. a teacher answers from her "mail client" (a reply with a quote and a signature);
5. stops the daemon with SIGTERM and prints what happened: the appeals, and who
   received which letter.
"""
from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from email import message_from_bytes, policy
from email.message import EmailMessage
from email.utils import make_msgid
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from helpdesk.roster.reader import read_roster  # noqa: E402
from helpdesk.testing.mailstack import MailStack  # noqa: E402

RUN = ROOT / "demo-run"
ROSTER = ROOT / "demo" / "roster"
SCHOOL = "lyceum21@lyceum21-edu.test"
# The checkout's package first, whether or not it is installed.
ENV = dict(os.environ, PYTHONPATH=str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""))


def helpdesk(*args: str, check: bool = True) -> str:
    cmd = [sys.executable, "-m", "helpdesk", "--config", str(RUN / "config.toml"), *args]
    done = subprocess.run(cmd, capture_output=True, text=True, cwd=RUN, env=ENV)
    if check and done.returncode != 0:
        sys.exit(f"demo: {' '.join(args)} failed:\n{done.stdout}{done.stderr}")
    return done.stdout


def letter(sender: str, subject: str, body: str, **headers: str) -> EmailMessage:
    msg = EmailMessage()
    msg["From"] = sender
    msg["To"] = SCHOOL
    msg["Subject"] = subject
    msg["Message-ID"] = make_msgid(domain=sender.split("@")[1])
    for name, value in headers.items():
        msg[name.replace("_", "-")] = value
    msg.set_content(body)
    return msg


def plain(raw: bytes):
    msg = message_from_bytes(raw, policy=policy.default)
    return msg, msg.get_body(preferencelist=("plain",)).get_content()


def section(title: str) -> None:
    print(f"\n=== {title} " + "=" * max(0, 66 - len(title)))


def main() -> int:
    if RUN.exists():
        shutil.rmtree(RUN)
    RUN.mkdir()
    roster = read_roster(ROSTER)
    users = {SCHOOL: "school-secret", "stranger@mail.test": "x"}
    for person in (*roster.staff, *roster.students):
        users[person.email] = "x"
    for student in roster.students:
        users.update({p: "x" for p in student.parent_emails})

    section("1. a real mail stack on 127.0.0.1")
    t0 = time.monotonic()
    stack = MailStack.start(users=users)
    print(f"Dovecot IMAP :{stack.imap_port}, SMTP :{stack.smtp_port} -> LMTP :{stack.lmtp_port}, "
          f"{len(users)} mailboxes, started in {time.monotonic() - t0:.1f} s ({stack.workdir})")
    daemon = None
    try:
        section("2. helpdesk init, roster import")
        (RUN / "config.toml").write_text(
            f"""[school]
name = "МАОУ «Лицей №21»"
address = "{SCHOOL}"
timezone = "Europe/Moscow"

[imap]
host = "127.0.0.1"
port = {stack.imap_port}
security = "none"
username = "{SCHOOL}"
password_file = "imap-password"
folder = "INBOX"
poll_interval = 30

[smtp]
host = "127.0.0.1"
port = {stack.smtp_port}
security = "none"

[database]
url = "sqlite:///helpdesk.sqlite3"

[hours]
start = "08:00"
end = "17:00"
""", encoding="utf-8")
        (RUN / "imap-password").write_text("school-secret\n")
        print(helpdesk("init").strip())
        print(helpdesk("roster", "import", str(ROSTER)).strip())
        print(helpdesk("check").strip())

        section("3. the daemon runs; letters arrive")
        log = open(RUN / "daemon.log", "w")
        daemon = subprocess.Popen(
            [sys.executable, "-m", "helpdesk", "--config", str(RUN / "config.toml"), "run"],
            cwd=RUN, stdout=log, stderr=subprocess.STDOUT, env=ENV,
        )
        time.sleep(1.5)  # let it connect and enter IDLE
        sent = [
            ("lev.kuzmin@lyceum21-edu.test", "по алгебре",
             "здравствуйте, не понимаю как решать квадратные уравнения через дискриминант, "
             "задали номер 212. лев кузьмин 7в"),
            ("baranova.elena@yandex.test", "Не заходит в Сферум",
             "Добрый день! Сын, Баранов Святослав (7А), третий день не может войти в Сферум: "
             "пишет «неверный пароль». Что делать?"),
            ("stranger@mail.test", "вопрос",
             "Здравствуйте, я бабушка Ситникова Глеба. У нас нет интернета на даче, можно ли "
             "получить задания на бумаге?"),
            ("sitnikova.m@bk.test", "Автоответ: Re: расписание",
             "Я в отпуске до 10 декабря, отвечу после возвращения."),
        ]
        started = time.monotonic()
        for sender, subject, body in sent:
            headers = {"Auto_Submitted": "auto-replied"} if subject.startswith("Автоответ") else {}
            stack.send(letter(sender, subject, body, **headers), sender, [SCHOOL])
            print(f"  {sender:32} -> school: «{subject}»")
        stack.wait_for("lev.kuzmin@lyceum21-edu.test", 1, timeout=20)
        print(f"first acknowledgement in the student's mailbox after {time.monotonic() - started:.1f} s")
        stack.wait_for("a.saveliev@lyceum21-edu.test", 1, timeout=20)
        stack.wait_for("m.shubina@lyceum21-edu.test", 1, timeout=20)

        section("4. the teacher answers from her mail client")
        teacher = "d.karpenko@lyceum21-edu.test"
        to_teacher, text = plain(stack.wait_for(teacher, 1, timeout=20)[0])
        print(f"  {teacher} received: «{to_teacher['Subject']}»")
        quoted = "\n".join("> " + line for line in text.splitlines())
        reply = letter(
            teacher, "Re: " + to_teacher["Subject"],
            "Лев, сначала найди дискриминант D = b² − 4ac, потом корни по формуле "
            "x = (−b ± √D) / 2a. В номере 212 D = 49, корни 2 и −5.\n\n"
            "С уважением,\nДмитрий Анатольевич\nОтправлено с iPhone\n\n"
            f"вс, 29 нояб. 2026 г. в 10:00, МАОУ «Лицей №21» <{SCHOOL}>:\n{quoted}\n",
            In_Reply_To=to_teacher["Message-ID"], References=to_teacher["Message-ID"],
        )
        stack.send(reply, teacher, [SCHOOL])
        relay, relay_text = plain(stack.wait_for("lev.kuzmin@lyceum21-edu.test", 2, timeout=20)[1])
        print(f"  the student received «{relay['Subject']}» from {relay['From'].addresses[0].addr_spec}:")
        for line in relay_text.strip().splitlines():
            print(f"    | {line}")

        print("\nhelpdesk status (what an operator or a monitoring check sees):")
        print(helpdesk("status", check=False).rstrip())

        daemon.send_signal(signal.SIGTERM)
        code = daemon.wait(timeout=20)
        print(f"\ndaemon stopped on SIGTERM with exit code {code}")
        daemon = None

        section("5. what happened")
        print(helpdesk("appeals", "list"))
        rows = [json.loads(x) for x in helpdesk("letters", "list", "--json").splitlines()]
        print("incoming letters:")
        for row in rows:
            print(f"  #{row['id']} {row['status']:9} {str(row['kind']):13} appeal {row['appeal'] or '-':>3}  "
                  f"{row['sender'][:40]}")
        print("\nwho got which letter (mailboxes on the Dovecot server):")
        for address in sorted(users):
            if address == SCHOOL:
                continue
            for raw in stack.messages(address):
                msg = message_from_bytes(raw, policy=policy.default)
                print(f"  {address:34} «{msg['Subject']}»")
        print("\nwhy appeal 1 went where it did:")
        print(helpdesk("appeals", "show", "1"))
        print(f"database and logs: {RUN}")
        return 0
    finally:
        if daemon is not None:
            daemon.kill()
        stack.stop()


if __name__ == "__main__":
    sys.exit(main())
