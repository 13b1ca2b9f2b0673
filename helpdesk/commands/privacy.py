"""``helpdesk purge`` (retention) and ``helpdesk erase EMAIL`` (a person removed from the roster)."""
from __future__ import annotations

import json
import sys
from datetime import datetime, timezone

EXIT_REFUSED = 2


def register(sub, groups) -> None:
    p = sub.add_parser("purge", help="remove the bodies of old letters of finished appeals "
                                     "(keeps the statistics)")
    p.add_argument("--older-than", type=int, metavar="DAYS",
                   help="appeals answered or closed more than DAYS days ago "
                        "(default: [retention] bodies_days)")
    p.add_argument("--dry-run", action="store_true", help="count what would be removed, change nothing")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_purge)

    p = sub.add_parser("erase", help="erase a student or parent removed from the roster "
                                     "(keeps the statistics)")
    p.add_argument("email")
    p.add_argument("--yes", action="store_true", help="do it without asking")
    p.add_argument("--force", action="store_true",
                   help="even if the address is still on the active roster or has open appeals")
    p.set_defaults(func=cmd_erase)


def cmd_purge(args) -> int:
    from .. import app
    from ..cli import CliError, _config
    from ..privacy.purge import purge

    config = _config(args)
    days = config.retention.bodies_days if args.older_than is None else args.older_than
    if days < 0:
        raise CliError("--older-than must be 0 or more days")
    if days == 0:
        print("retention.bodies_days is 0: letters are kept forever, nothing purged")
        return 0
    app.open_db(config)
    result = purge(datetime.now(timezone.utc), days, dry_run=args.dry_run)
    print(json.dumps(result.as_dict(), ensure_ascii=False) if args.json else result.summary())
    return 0


def cmd_erase(args) -> int:
    from .. import app
    from ..cli import _config
    from ..privacy.erase import ErasureRefused, erase, plan_erasure, refusal

    config = _config(args)
    app.open_db(config)
    plan = plan_erasure(args.email)
    if plan.email == config.school.address:
        print(f"helpdesk: {plan.email} is the school's own address; refusing to erase it", file=sys.stderr)
        return EXIT_REFUSED
    why = refusal(plan, args.force)
    if why:
        print(f"helpdesk: {why}", file=sys.stderr)
        return EXIT_REFUSED
    print(f"{plan.email}: {len(plan.appeals)} appeals"
          + (f" ({len(plan.open_appeals)} still open: they will be closed)" if plan.open_appeals else "")
          + (f"; names: {', '.join(plan.names)}" if plan.names else "; no name known")
          + (f"; WARNING: {'; '.join(plan.on_roster)}" if plan.on_roster else ""))
    if not args.yes:
        if not sys.stdin.isatty():
            print("helpdesk: erasure cannot be undone; give --yes to confirm", file=sys.stderr)
            return EXIT_REFUSED
        if input(f"Erase every trace of {plan.email}? This cannot be undone. Type yes: ").strip() != "yes":
            print("nothing erased")
            return EXIT_REFUSED
    try:
        result = erase(plan, force=args.force)
    except ErasureRefused as exc:
        print(f"helpdesk: {exc}", file=sys.stderr)
        return EXIT_REFUSED
    print(result.summary())
    return 0

