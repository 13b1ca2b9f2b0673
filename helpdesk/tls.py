"""The TLS context for the mail servers helpdesk connects to (IMAP and SMTP alike)."""
from __future__ import annotations

import ssl


def client_context(ca_file: str | None = None, verify: bool = True) -> ssl.SSLContext:
    """Certificates are verified against the system's CAs (plus ``ca_file`` for a
    school's self-signed server); ``verify=False`` is an explicit opt-out."""
    context = ssl.create_default_context(cafile=ca_file)
    if not verify:
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    return context
