"""The administration's daily digest and the inspector's report (issue 7).

- ``figures``: the numbers of a period, from the database, as plain dataclasses;
- ``send``: when the digest is due, rendering it and queueing it exactly once a day;
- ``report``: every appeal of a period as CSV (Russian Excel) or XLSX;
- ``models``: the ``digest_sent`` table (schema version 4).
"""
