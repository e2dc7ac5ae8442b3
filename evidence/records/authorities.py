"""Authorities a case can come from: short keys for the usual Finnish ones.

``case open --authority lvv`` stores the key; the dossier prints the authority's
name in its own language (Finnish, Swedish or English). Anything that is not a
key is free text, stored and printed as given.

Names as the authorities write them (checked 11/2026):

- lvv: Lupa- ja valvontavirasto / Tillstånds- och tillsynsverket / Finnish
  Supervisory Agency; from 1.1.2026 the successor of the regional state
  administrative agencies (AVI) and Valvira.
- kkv: Kilpailu- ja kuluttajavirasto, whose consumer advice (kuluttajaneuvonta)
  takes the consumer's complaints.
- kril: Kuluttajariitalautakunta / Konsumenttvistenämnden / Consumer Disputes Board.
- traficom: Liikenne- ja viestintävirasto Traficom / Transport- och
  kommunikationsverket Traficom / Finnish Transport and Communications Agency Traficom.
- energiavirasto: Energiavirasto / Energimyndigheten / Energy Authority.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Authority:
    key: str
    fi: str
    sv: str
    en: str

    def name(self, language: str) -> str:
        return {"fi": self.fi, "sv": self.sv}.get(language, self.en)


AUTHORITIES: dict[str, Authority] = {
    a.key: a
    for a in (
        Authority(
            "lvv",
            "Lupa- ja valvontavirasto",
            "Tillstånds- och tillsynsverket",
            "Finnish Supervisory Agency",
        ),
        Authority(
            "kkv",
            "Kilpailu- ja kuluttajavirasto, kuluttajaneuvonta",
            "Konkurrens- och konsumentverket, konsumentrådgivningen",
            "Finnish Competition and Consumer Authority, consumer advice",
        ),
        Authority(
            "kril",
            "Kuluttajariitalautakunta",
            "Konsumenttvistenämnden",
            "Consumer Disputes Board",
        ),
        Authority(
            "traficom",
            "Liikenne- ja viestintävirasto Traficom",
            "Transport- och kommunikationsverket Traficom",
            "Finnish Transport and Communications Agency Traficom",
        ),
        Authority(
            "energiavirasto",
            "Energiavirasto",
            "Energimyndigheten",
            "Energy Authority",
        ),
    )
}


def authority_value(text: str) -> str:
    """What the store keeps: a known key (lower case), or the free text as given."""
    stripped = text.strip()
    key = stripped.lower()
    return key if key in AUTHORITIES else stripped


def authority_name(stored: str, language: str) -> str:
    """The authority's name in ``language`` (fi, sv, en); free text unchanged."""
    found = AUTHORITIES.get(stored)
    return found.name(language) if found else stored


def keys_help() -> str:
    return ", ".join(f"{a.key} ({a.fi})" for a in AUTHORITIES.values())
