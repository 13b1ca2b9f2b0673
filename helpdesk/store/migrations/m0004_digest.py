"""Version 4: the exactly-once mark of the daily digest (``digest_sent``)."""
from __future__ import annotations

from peewee import Database


def upgrade(db: Database) -> None:
    from ...digest.models import DIGEST_MODELS

    db.create_tables(DIGEST_MODELS, safe=True)
