"""Phone numbers as evidence: one number, one spelling (E.164)."""

from __future__ import annotations

import phonenumbers

HIDDEN_CALLER_WORDS = frozenset(
    {"", "anonymous", "unknown", "restricted", "private", "withheld", "unavailable", "hidden"}
)


def normalize_number(raw: str, region: str = "FI") -> str | None:
    """E.164 for a real phone number; None for extensions, hidden callers and junk.

    ``040 123 4567``, ``040-1234567``, ``0401234567``, ``+358401234567`` and
    ``00358401234567`` are all ``+358401234567`` in region FI.
    """
    text = raw.strip().strip('"')
    if text.lower() in HIDDEN_CALLER_WORDS:
        return None
    try:
        number = phonenumbers.parse(text, region)
    except phonenumbers.NumberParseException:
        return None
    if not phonenumbers.is_possible_number(number):
        return None
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)


def is_hidden(raw: str) -> bool:
    return raw.strip().strip('"').lower() in HIDDEN_CALLER_WORDS
