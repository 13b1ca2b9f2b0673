#!/usr/bin/env python3
"""Run a command; write its wall time and peak RSS as JSON to REPORT.

    peak_rss.py REPORT COMMAND [ARG...]

Why a wrapper: on Linux a child started with vfork (as subprocess does) keeps the
*parent's* high-water RSS in its ru_maxrss, so a large benchmark process would
report its own peak for every child. This wrapper is small, so the command's
ru_maxrss (RUSAGE_CHILDREN, read after it exits) is the command's own peak.
"""
import json
import resource
import subprocess
import sys
import time


def main() -> int:
    report, argv = sys.argv[1], sys.argv[2:]
    started = time.perf_counter()
    code = subprocess.call(argv)
    seconds = time.perf_counter() - started
    peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss  # KiB on Linux
    with open(report, "w") as f:
        json.dump({"seconds": seconds, "max_rss_kb": peak, "returncode": code}, f)
    return code


if __name__ == "__main__":
    sys.exit(main())
