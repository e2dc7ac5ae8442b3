"""Phone numbers as evidence: one number, one spelling (E.164)."""

from __future__ import annotations

import re

import phonenumbers

HIDDEN_CALLER_WORDS = frozenset(
    {
        "",
        "anonymous",
        "unknown",
        "restricted",
        "private",
        "withheld",
        "unavailable",
        "hidden",
        "private number",
        "no caller id",
        "salainen",
        "salainen numero",
        "tuntematon",
    }
)
_SIP_USER = re.compile(r"^(?:sips?|tel):([^@;]+)", re.IGNORECASE)


def _bare(raw: str) -> str:
    text = raw.strip().strip('"').strip()
    match = _SIP_USER.match(text)
    return match.group(1) if match else text


def normalize_number(raw: str, region: str = "FI") -> str | None:
    """E.164 for a real phone number; None for extensions, hidden callers and junk.

    ``040 123 4567``, ``040-1234567``, ``0401234567``, ``+358401234567`` and
    ``00358401234567`` are all ``+358401234567`` in region FI. A number must be
    valid for its country (so an internal extension such as ``20001`` is not
    mistaken for one), unless it is written internationally (``+``/``00``).
    """
    text = _bare(raw)
    if text.lower() in HIDDEN_CALLER_WORDS:
        return None
    try:
        number = phonenumbers.parse(text, region)
    except phonenumbers.NumberParseException:
        return None
    international = text.startswith(("+", "00"))
    if not (
        phonenumbers.is_valid_number(number)
        or (international and phonenumbers.is_possible_number(number))
    ):
        return None
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)


def is_hidden(raw: str) -> bool:
    """A caller who withheld their number (kept as such: never matched to a customer)."""
    return _bare(raw).lower() in HIDDEN_CALLER_WORDS


class NumberCache:
    """``normalize_number`` remembered per spelling: call logs repeat the same numbers.

    Bounded, so memory stays flat however long the file is.
    """

    def __init__(self, region: str, limit: int = 200_000) -> None:
        self.region = region
        self.limit = limit
        self._known: dict[str, str | None] = {}

    def __call__(self, raw: str) -> str | None:
        try:
            return self._known[raw]
        except KeyError:
            pass
        if len(self._known) >= self.limit:
            self._known.clear()
        value = self._known[raw] = normalize_number(raw, self.region)
        return value
