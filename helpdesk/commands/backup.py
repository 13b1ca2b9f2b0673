"""``helpdesk backup PATH``: a consistent copy of the SQLite database while the daemon runs."""
from __future__ import annotations

import os
import sqlite3
from contextlib import closing
from pathlib import Path


def cmd_backup(args) -> int:
    from ..cli import CliError, _config

    config = _config(args)
    source = config.database.sqlite_path
    if source is None:
        raise CliError("backup copies SQLite databases; for PostgreSQL use pg_dump "
                       f"({config.database.scheme} is configured)")
    if not source.exists():
        raise CliError(f"{source}: no database yet (run 'helpdesk init')")
    target = Path(args.path)
    if args.path.endswith(("/", os.sep)):
        target.mkdir(parents=True, exist_ok=True, mode=0o700)  # "backup /backup/": made if missing
    if target.is_dir():
        target = target / source.name
    if target.exists() and not args.force:
        raise CliError(f"{target}: exists; give --force to overwrite it")
    try:
        target.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    except OSError as exc:
        raise CliError(f"cannot create {target.parent}: {exc}") from exc
    partial = target.with_name(target.name + ".partial")
    # SQLite's online backup: a consistent snapshot even while the daemon writes.
    try:
        partial.unlink(missing_ok=True)  # left by an interrupted backup
        # Personal data of minors: owner only from the first byte, not chmod-ed afterwards.
        os.close(os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
        with closing(sqlite3.connect(source)) as src, closing(sqlite3.connect(partial)) as dst:
            src.backup(dst)
        os.chmod(partial, 0o600)
        os.replace(partial, target)
    except (OSError, sqlite3.Error) as exc:
        raise CliError(f"backup to {target} failed: {exc}") from exc
    print(f"backup written: {target} ({target.stat().st_size // 1024} KiB)")
    return 0


def register(sub, groups) -> None:
    p = sub.add_parser("backup", help="a consistent copy of the SQLite database (safe while running)")
    p.add_argument("path", help="file or directory to write the copy to")
    p.add_argument("--force", action="store_true", help="overwrite an existing file")
    p.set_defaults(func=cmd_backup)
