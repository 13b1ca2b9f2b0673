#!/usr/bin/env python3
"""The baselines: bare scripts doing only the mail I/O no helpdesk can avoid.

Run as their own processes (as `helpdesk run --once` is), timed from start to exit:

    bare.py fetch HOST PORT USER PASSWORD [--batch 200]
        SEARCH ALL, FETCH BODY.PEEK[] in batches with imapclient, parse each letter
        with mail-parser (mailparser.parse_from_bytes); prints the count.
    bare.py send HOST PORT FILE
        send the (mail_from, recipients, raw) items pickled in FILE with aiosmtplib
        over one connection; prints the count.
"""
from __future__ import annotations

import argparse
import asyncio
import pickle
import sys


def fetch(host: str, port: int, user: str, password: str, batch: int) -> int:
    import mailparser
    from imapclient import IMAPClient

    parsed = 0
    with IMAPClient(host, port=port, ssl=False) as client:
        client.login(user, password)
        client.select_folder("INBOX", readonly=True)
        uids = client.search(["ALL"])
        for i in range(0, len(uids), batch):
            for item in client.fetch(uids[i:i + batch], ["BODY.PEEK[]"]).values():
                mailparser.parse_from_bytes(item[b"BODY[]"])
                parsed += 1
    return parsed


def send(host: str, port: int, path: str) -> int:
    import aiosmtplib

    with open(path, "rb") as f:
        items = pickle.load(f)

    async def loop() -> int:
        client = aiosmtplib.SMTP(hostname=host, port=port)
        await client.connect()
        for mail_from, recipients, raw in items:
            await client.sendmail(mail_from, recipients, raw)
        await client.quit()
        return len(items)

    return asyncio.run(loop())


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="what", required=True)
    f = sub.add_parser("fetch")
    f.add_argument("host")
    f.add_argument("port", type=int)
    f.add_argument("user")
    f.add_argument("password")
    f.add_argument("--batch", type=int, default=200)
    s = sub.add_parser("send")
    s.add_argument("host")
    s.add_argument("port", type=int)
    s.add_argument("file")
    args = parser.parse_args(argv)
    if args.what == "fetch":
        print(fetch(args.host, args.port, args.user, args.password, args.batch))
    else:
        print(send(args.host, args.port, args.file))
    return 0


if __name__ == "__main__":
    sys.exit(main())
