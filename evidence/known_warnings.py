"""Third-party warnings we know and have decided about, each silenced by its exact message.

Warnings are errors in the tests (pyproject.toml) and are shown to users; one is
silenced here only with the reason beside it, and pyproject.toml's
``filterwarnings`` repeats the same message for the test run.
"""

from __future__ import annotations

import logging
import re
import warnings

# pyHanko imports cryptography's DSA key classes (to recognise DSA keys when it meets
# them); cryptography 51 deprecated DSA and warns at that import. evidence signs with
# RSA, ECDSA or Ed25519 keys and never with DSA, so the warning says nothing about us.
DSA_DEPRECATED = (
    "DSA is deprecated and support will be removed in a future release. "
    "Use a more modern signature algorithm."
)


# psycopg logs this (a warning, printed on stderr when nothing else handles its logger)
# when the connection is lost in the middle of a pipeline or a COPY: evidence reports the
# lost connection itself, in one line (exit 7); the log line repeats it with an object's repr.
PSYCOPG_TERMINATING = "error ignored terminating %r: %s"


class _KnownLogRecords(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return not (record.name.startswith("psycopg") and record.msg == PSYCOPG_TERMINATING)


# One instance: a logger adds a filter it already has only once, so calling
# silence_known_warnings again (each CLI invocation in one process) adds nothing.
_KNOWN_LOG_RECORDS = _KnownLogRecords()


def silence_known_warnings() -> None:
    """Ignore exactly the warnings and log records above, in this process."""
    logging.getLogger("psycopg").addFilter(_KNOWN_LOG_RECORDS)
    from cryptography.utils import CryptographyDeprecationWarning

    warnings.filterwarnings(
        "ignore",
        message=re.escape(DSA_DEPRECATED) + r"\Z",
        category=CryptographyDeprecationWarning,
    )
