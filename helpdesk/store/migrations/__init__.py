"""Schema migrations after version 1: ``mNNNN_name.py`` modules with ``upgrade(db)``.

Write each one so that it can run on PostgreSQL and SQLite alike (create new
tables with ``db.create_tables([...], safe=True)``, add columns with
``playhouse.migrate``) and never edit one that has been released.
"""
