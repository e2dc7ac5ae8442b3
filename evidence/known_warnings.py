"""Third-party warnings we know and have decided about, each silenced by its exact message.

Warnings are errors in the tests (pyproject.toml) and are shown to users; one is
silenced here only with the reason beside it, and pyproject.toml's
``filterwarnings`` repeats the same message for the test run.
"""

from __future__ import annotations

import re
import warnings

# pyHanko imports cryptography's DSA key classes (to recognise DSA keys when it meets
# them); cryptography 51 deprecated DSA and warns at that import. evidence signs with
# RSA, ECDSA or Ed25519 keys and never with DSA, so the warning says nothing about us.
DSA_DEPRECATED = (
    "DSA is deprecated and support will be removed in a future release. "
    "Use a more modern signature algorithm."
)


def silence_known_warnings() -> None:
    """Ignore exactly the warnings above, in this process."""
    from cryptography.utils import CryptographyDeprecationWarning

    warnings.filterwarnings(
        "ignore",
        message=re.escape(DSA_DEPRECATED) + r"\Z",
        category=CryptographyDeprecationWarning,
    )
