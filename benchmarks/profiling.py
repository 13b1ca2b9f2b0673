"""A pyinstrument profile of `helpdesk run --once --only ingest` on a realistic backlog.

Writes, under the output directory: ingest.pyisession (the raw session; open it
again with ``python3 -m pyinstrument --load FILE``), ingest.html (interactive) and
ingest.txt (the call tree as text), and returns the top hot spots: functions by
self time (any code), self time by package, and helpdesk functions by inclusive time.
"""
from __future__ import annotations

import subprocess
import sys
import tempfile
from collections import defaultdict
from pathlib import Path

from benchmarks import common
from benchmarks.letters import build, senders


def _walk(frame, stack=()):
    yield frame, stack
    key = (frame.function, frame.file_path_short, frame.line_no)
    for child in frame.children:
        yield from _walk(child, stack + (key,))


def hot_spots(session_file: Path, top: int = 10) -> dict:
    """Top functions by self time and helpdesk functions by inclusive time (seconds)."""
    from pyinstrument.session import Session

    session = Session.load(str(session_file))
    root = session.root_frame()
    selfs: dict[str, float] = defaultdict(float)
    inclusive: dict[str, float] = defaultdict(float)
    for frame, stack in _walk(root):
        if frame.is_synthetic:
            continue
        name = f"{frame.function} ({frame.file_path_short}:{frame.line_no})"
        selfs[name] += frame.total_self_time
        path = frame.file_path or ""
        key = (frame.function, frame.file_path_short, frame.line_no)
        if "/helpdesk/" in path and key not in stack:  # count a recursive call once
            inclusive[name] += frame.time
    total = root.time if root else 0.0
    packages: dict[str, float] = defaultdict(float)
    _by_package(root, "other", packages)
    rank = lambda d: [(k, round(v, 3)) for k, v in sorted(d.items(), key=lambda kv: -kv[1])[:top]]  # noqa: E731
    return {"total_seconds": round(total, 3), "self": rank(selfs), "helpdesk_inclusive": rank(inclusive),
            "self_by_package": rank(packages)}


def _by_package(frame, parent: str, found: dict[str, float]) -> None:
    """Self time per package; a C function counts for the package that called it."""
    if frame.is_synthetic:
        name = parent
    else:
        name = _package(frame) or parent
        if not frame.file_path:  # a built-in: sqlite3's execute counts for peewee
            name = parent
        found[name] += frame.total_self_time
    for child in frame.children:
        _by_package(child, name, found)


def _package(frame) -> str:
    """Where a frame's code lives: helpdesk.module, a third-party package, or the stdlib."""
    path = frame.file_path or ""
    if "site-packages/" in path:
        return path.split("site-packages/", 1)[1].split("/", 1)[0].removesuffix(".py")
    if "/helpdesk/" in path:
        return "helpdesk." + path.rsplit("/helpdesk/", 1)[1].removesuffix(".py").replace("/", ".")
    if "/lib/python3" in path:
        return "stdlib " + path.split("/lib/python3", 1)[1].split("/", 2)[1].removesuffix(".py")
    return "" if not path or path.startswith("<") else path


def run(count: int, out: Path, log=print) -> dict:
    letters = build(count)
    out.mkdir(parents=True, exist_ok=True)
    session = out / "ingest.pyisession"
    with common.mail_stack(senders(letters)) as stack, \
            tempfile.TemporaryDirectory(prefix="hd-prof-") as tmp:
        common.append_letters(stack, letters)
        config = common.write_config(Path(tmp), stack, f"sqlite:///{Path(tmp) / 'helpdesk.sqlite3'}")
        argv = common.helpdesk_argv(config, "run", "--once", "--only", "ingest")
        done = common.run_process([sys.executable, "-m", "pyinstrument", "-r", "pyisession",
                                   "-o", str(session), *argv[1:]])
        log(f"  profile: {done.stdout.strip().splitlines()[-1] if done.stdout.strip() else ''} "
            f"in {done.seconds:.1f} s under pyinstrument")
    for renderer, name in (("html", "ingest.html"), ("text", "ingest.txt")):
        subprocess.run([sys.executable, "-m", "pyinstrument", "--load", str(session), "-r", renderer,
                        "-o", str(out / name)], check=True, capture_output=True)
    spots = hot_spots(session)
    spots["files"] = [str(out / n) for n in ("ingest.pyisession", "ingest.html", "ingest.txt")]
    spots["letters"] = count
    return spots
