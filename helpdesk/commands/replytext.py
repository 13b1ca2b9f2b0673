"""``helpdesk reply-text FILE.eml``: the new text the daemon takes from a reply."""
from __future__ import annotations

from datetime import date
from pathlib import Path


def cmd_reply_text(args) -> int:
    from ..cli import CliError
    from ..understand.commands import parse_reply
    from ..understand.parse import UnparseableLetter, parse_letter
    from ..understand.replytext import extract_reply

    for path in args.files:
        try:
            letter = parse_letter(Path(path).read_bytes())
        except OSError as exc:
            raise CliError(f"{path}: {exc.strerror}") from exc
        except UnparseableLetter as exc:
            raise CliError(f"{path}: cannot be parsed: {exc.reason}") from exc
        reply = parse_reply(extract_reply(letter.text, letter.html), date.today())
        if len(args.files) > 1:
            print(f"==> {path} <==")
        for command in reply.commands:
            detail = command.error or command.email or (command.when.isoformat(" ") if command.when else "")
            print(f"[command #{command.word}: {command.name}{' - ' + detail if detail else ''}]")
        print(reply.text)
    return 0


def register(sub, groups) -> None:
    p = sub.add_parser("reply-text", help="print the new text (and # commands) taken from a reply")
    p.add_argument("files", nargs="+", metavar="FILE.eml")
    p.set_defaults(func=cmd_reply_text)
