"""Command modules of the CLI beyond the core ones in ``helpdesk/cli.py``.

Every module here has ``register(sub, groups)``: ``sub`` is the top-level
subparsers object (add a new command with ``sub.add_parser``), ``groups`` maps
the existing command groups ("appeals", "letters", "roster") to their
subparsers (add ``helpdesk appeals reassign`` with
``groups["appeals"].add_parser("reassign")``). Each parser sets ``func``: a
callable taking the parsed args and returning the exit code. Raise
``helpdesk.cli.CliError`` for an expected problem.
"""
from __future__ import annotations

import importlib
import pkgutil


def register_all(sub, groups: dict) -> None:
    for module in sorted(m.name for m in pkgutil.iter_modules(__path__)):
        if module.startswith("_"):
            continue
        importlib.import_module(f"{__name__}.{module}").register(sub, groups)
