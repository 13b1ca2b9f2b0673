"""Version 5: claims on outgoing letters, for several daemons on one database.

``outgoing.claimed_by`` names the process sending a letter ("host/pid/start
token") and ``outgoing.lease_until`` says until when its claim holds (see
helpdesk/outbox/sender.py and ``add_claim_columns`` in helpdesk/store/db.py).
"""
from __future__ import annotations

from peewee import Database


def upgrade(db: Database) -> None:
    from ..db import add_claim_columns

    add_claim_columns(db)
