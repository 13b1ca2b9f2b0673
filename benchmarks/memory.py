"""Peak memory of `helpdesk run --once --only ingest` draining a backlog.

For a large and a small backlog (10,000 and 2,000 letters by default), each on a
mail stack and a SQLite database of its own: APPEND the letters (MULTIAPPEND over
one connection), then run the real CLI as a subprocess and read its peak resident
set size (ru_maxrss of that one child, from wait4). Flat means the large backlog
needs about as much as the small one: the ratio large / small is printed too.
"""
from __future__ import annotations

import re
import tempfile
from pathlib import Path

from benchmarks import common
from benchmarks.letters import build, senders

TARGET_MB = 150.0
FLAT = 1.25  # large / small peak RSS at most this: memory does not grow with the backlog


def drain(letters, log=print) -> common.Finished:
    with common.mail_stack(senders(letters)) as stack, \
            tempfile.TemporaryDirectory(prefix="hd-mem-") as tmp:
        took = common.append_letters(stack, letters)
        log(f"  memory: appended {len(letters)} letters in {took:.1f} s")
        config = common.write_config(Path(tmp), stack, f"sqlite:///{Path(tmp) / 'helpdesk.sqlite3'}")
        done = common.run_process(common.helpdesk_argv(config, "run", "--once", "--only", "ingest"))
        found = re.search(r"fetched (\d+) new letter", done.stdout)
        if not found or int(found.group(1)) != len(letters):
            raise RuntimeError(f"ingest did not take all {len(letters)} letters: {done.stdout}")
        log(f"  memory: {len(letters)} letters drained in {done.seconds:.1f} s, "
            f"peak RSS {done.max_rss_mb:.1f} MB")
        return done


def run(large: int = 10_000, small: int = 2_000, log=print) -> list[dict]:
    letters = build(large)
    big = drain(letters, log)
    little = drain(letters[:small], log)
    growth = big.max_rss_mb / little.max_rss_mb
    return [
        {"benchmark": f"peak RSS, ingest of {large} letters", "unit": "MB",
         "helpdesk": round(big.max_rss_mb, 1), "baseline": None, "ratio": None,
         "target": f"< {TARGET_MB:g} MB", "met": big.max_rss_mb < TARGET_MB,
         "helpdesk_seconds": round(big.seconds, 2),
         "letters_per_s": round(large / big.seconds, 1)},
        {"benchmark": f"peak RSS, {large} vs {small} letters (flat?)", "unit": "MB",
         "helpdesk": round(big.max_rss_mb, 1), "baseline": round(little.max_rss_mb, 1),
         "ratio": round(growth, 2), "target": f"ratio <= {FLAT:g} (flat)", "met": growth <= FLAT,
         "small_seconds": round(little.seconds, 2)},
    ]
