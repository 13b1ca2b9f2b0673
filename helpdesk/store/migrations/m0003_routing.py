"""Version 3: staff absences with substitutes, and manual routing corrections."""
from __future__ import annotations

from peewee import Database


def upgrade(db: Database) -> None:
    from ...routing.models import ROUTING_MODELS

    db.create_tables(ROUTING_MODELS, safe=True)
