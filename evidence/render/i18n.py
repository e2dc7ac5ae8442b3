"""Languages of the dossier: message catalogs (gettext .po, read with Babel) and local formats.

Source strings are English; ``evidence/locale/<lang>/LC_MESSAGES/evidence.po`` holds
the Finnish and Swedish translations. Exhibit content is never translated.
"""

from __future__ import annotations

import datetime as dt
import functools
import gettext
import io
from dataclasses import dataclass
from zoneinfo import ZoneInfo

from babel.dates import format_datetime
from babel.messages.mofile import write_mo
from babel.messages.pofile import read_po
from babel.numbers import format_decimal

from evidence.errors import InvalidInput
from evidence.resources import locale_dir
from evidence.timeutil import offset_label

LANGUAGES = ("fi", "sv", "en")
DOMAIN = "evidence"

# Babel locales for each dossier language: Finnish-Swedish formats for sv.
_LOCALES = {"fi": "fi_FI", "sv": "sv_FI", "en": "en_GB"}
_DATETIME_PATTERNS = {
    "fi": "d.M.yyyy HH.mm.ss",
    "sv": "d.M.yyyy 'kl.' HH:mm:ss",
    "en": "d MMM yyyy HH:mm:ss",
}
_DATE_PATTERNS = {"fi": "d.M.yyyy", "sv": "d.M.yyyy", "en": "d MMM yyyy"}
_SHORT_PATTERNS = {"fi": "HH.mm", "sv": "HH:mm", "en": "HH:mm"}


def check_language(language: str) -> str:
    if language not in LANGUAGES:
        raise InvalidInput(f"unknown language {language!r}: use one of {', '.join(LANGUAGES)}")
    return language


@functools.cache
def translations(language: str) -> gettext.NullTranslations:
    """The catalog for ``language``, compiled in memory from its .po file."""
    check_language(language)
    po = locale_dir() / language / "LC_MESSAGES" / f"{DOMAIN}.po"
    if not po.exists():
        return gettext.NullTranslations()
    with po.open("rb") as fh:
        catalog = read_po(fh, locale=_LOCALES[language])
    buffer = io.BytesIO()
    write_mo(buffer, catalog)
    buffer.seek(0)
    return gettext.GNUTranslations(buffer)


@dataclass(frozen=True)
class Formatter:
    """Times, dates, numbers and durations the way a reader of ``language`` writes them."""

    language: str
    zone: ZoneInfo

    @property
    def locale(self) -> str:
        return _LOCALES[self.language]

    def local(self, value: dt.datetime | None) -> str:
        """``28.9.2026 10.21.37 (UTC+3)``: local time in the dossier's zone, offset shown."""
        if value is None:
            return "–"
        return self.with_offset(value.astimezone(self.zone))

    def with_offset(self, value: dt.datetime) -> str:
        """A time in its own offset (e.g. the sender's Date header)."""
        text = format_datetime(value, _DATETIME_PATTERNS[self.language], locale=self.locale)
        return f"{text} ({offset_label(value)})"

    def day(self, value: dt.date | dt.datetime) -> str:
        if isinstance(value, dt.datetime):
            value = value.astimezone(self.zone)
        return format_datetime(
            dt.datetime.combine(value, dt.time(12), tzinfo=dt.UTC),
            _DATE_PATTERNS[self.language],
            locale=self.locale,
        )

    def weekday(self, value: dt.datetime) -> str:
        return format_datetime(value, "EEE", locale=self.locale)

    def clock(self, value: dt.datetime) -> str:
        return format_datetime(
            value.astimezone(self.zone), _SHORT_PATTERNS[self.language], locale=self.locale
        )

    def number(self, value: int | float) -> str:
        return format_decimal(value, locale=self.locale)

    @staticmethod
    def duration(seconds: int | float | None) -> str:
        if seconds is None:
            return "–"
        minutes, secs = divmod(int(round(seconds)), 60)
        hours, minutes = divmod(minutes, 60)
        days, hours = divmod(hours, 24)
        if days:
            return f"{days} d {hours} h {minutes} min"
        if hours:
            return f"{hours} h {minutes} min {secs} s"
        if minutes:
            return f"{minutes} min {secs} s"
        return f"{secs} s"
