"""The TLS context for the mail servers helpdesk connects to (IMAP and SMTP alike).

Certificates are verified by default (the system's CAs, plus ``ca_file`` for a
school's self-signed server). ``tls_verify = false`` in ``[imap]``/``[smtp]`` is an
explicit opt-out: every connection made that way logs a warning, and
``helpdesk check`` lists it as a problem.
"""
from __future__ import annotations

import logging
import ssl

log = logging.getLogger("helpdesk.tls")

UNVERIFIED_WARNING = ("TLS certificate verification is OFF (tls_verify = false): the mail server "
                      "is not authenticated, so anyone on the way can read the mail and the "
                      "password; give ca_file instead")


def client_context(ca_file: str | None = None, verify: bool = True) -> ssl.SSLContext:
    """Certificates are verified against the system's CAs (plus ``ca_file`` for a
    school's self-signed server); ``verify=False`` is an explicit opt-out."""
    context = ssl.create_default_context(cafile=ca_file)
    if not verify:
        log.warning(UNVERIFIED_WARNING)
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    return context
