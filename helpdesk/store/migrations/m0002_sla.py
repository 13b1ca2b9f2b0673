"""Version 2: the reminder and escalation ladder (``sla_step``).

Also indexes ``appeal.updated_at``: the sweep finds appeals created, reopened or
answered since its last pass by that column instead of scanning every appeal.
"""
from __future__ import annotations

from peewee import Database


def upgrade(db: Database) -> None:
    from ...sla.models import SLA_MODELS

    db.create_tables(SLA_MODELS, safe=True)
    db.execute_sql("CREATE INDEX IF NOT EXISTS appeal_updated_at ON appeal (updated_at)")
