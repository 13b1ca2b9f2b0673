"""`helpdesk explain --json` over every labelled letter, checked field by field.

Two corpora, each with its own roster and cases.json (same format):

- ``letters-dev``: the development corpus of the issue (copied from shared/). Targets
  of the issue: assignee right for at least 97% of the appeals, kind right for 100%
  of the non-appeals.
- ``letters-extra``: letters written for this project for a second invented school
  (other class notations, slang, typos, diminutive names, HTML-only, windows-1251,
  KOI8-R; see its README). Its floors are what the rules reach, so a change that
  loses ground there fails too.

Run with ``-s`` to see the accuracy per field and every miss.
"""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from helpdesk.cli import main
from helpdesk.roster.reader import normalize_subject

DATA = Path(__file__).parent / "data"
FIELDS = ("kind", "sender_role", "category", "class", "subject", "assignee")
APPEAL_FIELDS = ("category", "class", "subject", "assignee")

# corpus -> (school address, floors: field -> least share right)
CORPORA = {
    "letters-dev": ("lyceum21@lyceum21-edu.test", {
        "assignee": 0.97, "non_appeal_kind": 1.0, "kind": 1.0,
        "category": 0.94, "class": 0.94, "subject": 0.94, "sender_role": 0.97,
    }),
    "letters-extra": ("help@school7.test", {
        "assignee": 0.94, "non_appeal_kind": 1.0, "kind": 1.0,
        "category": 0.92, "class": 0.96, "subject": 0.94, "sender_role": 0.97,
    }),
}


def _config(directory: Path, school: str) -> Path:
    path = directory / "config.toml"
    path.write_text(
        f'[school]\nname = "Школа"\naddress = "{school}"\ntimezone = "Europe/Moscow"\n\n'
        '[imap]\nhost = "127.0.0.1"\n\n[smtp]\nhost = "127.0.0.1"\n\n'
        '[database]\nurl = "sqlite:///explain.sqlite3"\n\n[hours]\nstart = "08:00"\nend = "17:00"\n',
        encoding="utf-8",
    )
    return path


def _same(field: str, got, want) -> bool:
    if field == "assignee":
        return got in want if want else got is None
    if field == "subject" and got is not None and want is not None:
        return normalize_subject(got).replace("ё", "е") == normalize_subject(want).replace("ё", "е")
    return got == want


def explain_corpus(corpus: Path, school: str, tmp_path: Path, capsys) -> tuple[list[dict], dict[str, dict]]:
    cases = json.loads((corpus / "cases.json").read_text(encoding="utf-8"))
    config = _config(tmp_path, school)
    assert main(["--config", str(config), "roster", "import", str(corpus / "roster")]) == 0
    capsys.readouterr()
    files = [str(corpus / "cases" / c["file"]) for c in cases]
    assert main(["--config", str(config), "explain", "--json", *files]) == 0
    rows = [json.loads(line) for line in capsys.readouterr().out.splitlines() if line.strip()]
    from helpdesk.store.models import database

    database.close()
    return cases, {Path(r["file"]).name: r for r in rows}


@pytest.mark.parametrize("name", list(CORPORA))
def test_explain_accuracy_per_field(name, tmp_path, capsys):
    corpus = DATA / name
    school, floors = CORPORA[name]
    cases, got = explain_corpus(corpus, school, tmp_path, capsys)
    assert len(got) == len(cases)

    appeals = [c for c in cases if c["kind"] == "appeal"]
    others = [c for c in cases if c["kind"] != "appeal"]
    hits = {f: 0 for f in FIELDS}
    non_appeal_kind = 0
    misses: list[str] = []
    for case in cases:
        row = got[case["file"]]
        assert row["reasons"], f"{case['file']}: no reasons"
        checked = FIELDS if case["kind"] == "appeal" else ("kind", "sender_role")
        wrong = [f for f in checked if not _same(f, row[f], case[f])]
        for f in checked:
            hits[f] += f not in wrong
        if case["kind"] != "appeal":
            non_appeal_kind += "kind" not in wrong
            assert row["assignee"] is None, f"{case['file']}: a non-appeal must not be routed"
        else:
            assert row["assignee"], f"{case['file']}: an appeal always has an assignee"
        if wrong:
            misses.append(f"  {case['file']} ({case['difficulty']}): "
                          + "; ".join(f"{f} {row[f]!r} != {case[f]!r}" for f in wrong))

    share = {f: hits[f] / (len(appeals) if f in APPEAL_FIELDS else len(cases)) for f in FIELDS}
    share["non_appeal_kind"] = non_appeal_kind / len(others) if others else 1.0
    print(f"\n`helpdesk explain --json` on {name}: {len(cases)} letters, {len(appeals)} appeals")
    for f in FIELDS:
        n = len(appeals) if f in APPEAL_FIELDS else len(cases)
        print(f"  {f:16} {hits[f]:3}/{n:<3} = {share[f]:6.1%}   (floor {floors[f]:.0%})")
    print(f"  {'kind, non-appeal':16} {non_appeal_kind:3}/{len(others):<3} = {share['non_appeal_kind']:6.1%}"
          f"   (floor {floors['non_appeal_kind']:.0%})")
    if misses:
        print("  misses:\n" + "\n".join(misses))
    low = [f"{f}: {share[f]:.1%} < {floor:.0%}" for f, floor in floors.items() if share[f] < floor]
    assert not low, f"{name}: below target: {', '.join(low)}"
