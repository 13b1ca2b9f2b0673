"""The benchmark suite works: realistic letters, and a tiny run that writes its JSON.

No timing is asserted here: speed is shown by `make bench` only.
"""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections import Counter
from email import message_from_bytes, policy
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def test_bench_letters_are_realistic_and_distinct():
    from benchmarks.letters import build, senders
    from helpdesk.understand.parse import parse_letter

    letters = build(60)
    ids = [message_from_bytes(l.raw, policy=policy.default)["Message-ID"] for l in letters]
    assert len(set(ids)) == len(letters)
    charsets, encodings, html_only, attachments = Counter(), Counter(), 0, 0
    for item in letters:
        msg = message_from_bytes(item.raw, policy=policy.default)
        parts = [p for p in msg.walk() if not p.is_multipart()]
        for part in parts:
            if part.get_content_maintype() == "text":
                charsets[(part.get_content_charset() or "").lower()] += 1
                encodings[part.get("Content-Transfer-Encoding", "7bit").lower()] += 1
        html_only += all(p.get_content_type() == "text/html" for p in parts)
        attachments += any(p.get_filename() for p in parts)
        parsed = parse_letter(item.raw)  # every letter is one helpdesk can read
        assert parsed.from_addr == item.sender.lower() and parsed.text.strip()
    assert {"utf-8", "windows-1251", "koi8-r"} <= set(charsets)
    assert {"quoted-printable", "base64", "8bit"} <= set(encodings)
    assert html_only and attachments
    assert "lyceum21@lyceum21-edu.test" not in senders(letters)


def test_table_marks_missed_targets_and_skips():
    from benchmarks.bench import table

    text = table([
        {"benchmark": "ingest", "unit": "letters/s", "helpdesk": 100.0, "baseline": 400.0,
         "ratio": 0.25, "target": "ratio >= 0.5", "met": False},
        {"benchmark": "pg", "skipped": "PostgreSQL unreachable", "met": None},
    ])
    lines = text.splitlines()
    assert [c.strip() for c in lines[0].strip("|").split("|")] == [
        "benchmark", "helpdesk", "baseline", "ratio", "target", "met?"]
    assert "| NO " in lines[2] and "100.0 letters/s" in lines[2] and "0.250" in lines[2]
    assert "skipped: PostgreSQL unreachable" in lines[3]


def test_hot_spots_read_a_pyinstrument_session(tmp_path):
    pyinstrument = pytest.importorskip("pyinstrument")
    from benchmarks.profiling import hot_spots
    from helpdesk.understand.parse import parse_letter

    raw = (ROOT / "tests" / "data" / "letters-dev" / "cases" / "letter_003.eml").read_bytes()
    profiler = pyinstrument.Profiler(interval=0.0005)
    profiler.start()
    for _ in range(200):
        parse_letter(raw)
    session = profiler.stop()
    session.save(str(tmp_path / "s.pyisession"))
    spots = hot_spots(tmp_path / "s.pyisession", top=5)
    assert len(spots["self"]) == 5 and spots["total_seconds"] > 0
    assert any(name.startswith("parse_letter (") for name, _ in spots["helpdesk_inclusive"])


@pytest.mark.mailstack
def test_quick_bench_run_writes_valid_json(tmp_path):
    if shutil.which("dovecot") is None and not os.path.exists("/usr/sbin/dovecot"):
        pytest.skip("dovecot not installed (apt-get install dovecot-imapd dovecot-lmtpd)")
    done = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "bench.py"), "--quick", "--no-postgres",
         "--only", "ingest,latency,memory,sweep,explain", "--letters", "20", "--latency-letters", "2",
         "--memory-letters", "10", "--memory-small", "5", "--out", str(tmp_path)],
        capture_output=True, text=True, timeout=300, cwd=ROOT,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    result = json.loads((tmp_path / "results.json").read_text(encoding="utf-8"))
    assert result["quick"] is True and result["failures"] == {}
    rows = {r["benchmark"]: r for r in result["rows"]}
    assert set(result["seconds"]) == {"ingest", "latency", "memory", "sweep", "explain"}
    ingest = rows["ingest, 20 letters, SQLite"]
    assert ingest["helpdesk"] > 0 and ingest["baseline"] > 0 and ingest["met"] in (True, False)
    assert any(name.startswith("outbox, ") for name in rows)
    for row in result["rows"]:
        assert "skipped" not in row, row
        figures = [row[k] for k in ("helpdesk", "baseline") if row[k] is not None]
        assert figures and all(isinstance(f, (int, float)) and f > 0 for f in figures), row
    assert "| benchmark" in done.stdout and "results written to" in done.stdout


@pytest.mark.postgres
def test_postgres_database_is_created_and_dropped():
    from benchmarks import common

    why = common.postgres_reachable()
    if why:
        pytest.skip(why)
    import psycopg2

    with common.postgres_database() as url:
        name = url.rsplit("/", 1)[1]
        assert name.startswith("helpdesk_bench_")
        psycopg2.connect(url).close()
    admin = psycopg2.connect(common.PG_ADMIN)
    try:
        cur = admin.cursor()
        cur.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,))
        assert cur.fetchone() is None
    finally:
        admin.close()
