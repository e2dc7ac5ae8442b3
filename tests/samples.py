"""The built-in sample dispute (sample/), loaded through the library as the demo does."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

from evidence.ingest.asterisk import import_calls
from evidence.ingest.mail import import_mail
from evidence.ingest.recordings import import_recordings
from evidence.records.cases import attach_document, open_case
from evidence.records.customers import add_customer
from evidence.records.incidents import add_incident
from evidence.store.db import Store

SAMPLE = Path(__file__).resolve().parents[1] / "sample"
AINO = "200517"
SAMPLE_TOML = """
[company]
name = "Pohjolan Vesi Oy"
mail_domains = ["pohjolanvesi.example"]
"""
EET = dt.timezone(dt.timedelta(hours=2))


def load_sample(store: Store) -> None:
    """Aino's trunk-outage morning: 6 emails, 3 calls, 2 agents' pauses, 1 incident."""
    add_customer(store, AINO, "Aino Laaksonen", ["aino.laaksonen@example.com"], ["050 765 4321"])
    import_mail(store, sorted((SAMPLE / "mail").glob("*.eml")))
    import_mail(store, [SAMPLE / "mail/export.mbox"])
    import_calls(store, SAMPLE / "pbx/Master.csv", "asterisk-cdr")
    import_calls(store, SAMPLE / "pbx/queue_log", "asterisk-queue-log")
    import_recordings(store, SAMPLE / "recordings")
    add_incident(
        store,
        title="Puhelinjärjestelmän häiriö: operaattorin runkoyhteys poikki",
        start=dt.datetime(2026, 3, 10, 8, 40, tzinfo=EET),
        end=dt.datetime(2026, 3, 10, 11, 5, tzinfo=EET),
        channels=["phone"],
        note=None,
        logged_by="Mikko Heinonen (vuoroesimies)",
        logged_at=dt.datetime(2026, 3, 10, 11, 20, tzinfo=EET),
    )


SAMPLE_CASE = "KKV/1234/2026"


def open_sample_case(store: Store) -> None:
    """The consumer advisor's request about Aino's morning, with its letter attached."""
    open_case(
        store,
        SAMPLE_CASE,
        customer_ref=AINO,
        authority="KKV",
        received=dt.date(2026, 3, 20),
        deadline=None,
    )
    attach_document(
        store,
        SAMPLE_CASE,
        SAMPLE / "letters/kkv-selvityspyynto.pdf",
        title="Selvityspyyntö",
        document_date=None,
    )


MATTI = "100234"
EEST = dt.timezone(dt.timedelta(hours=3))


def load_scenario(store: Store, scenario: Path) -> None:
    """The evacuation day in ../shared/scenario (the store's company owns aurora-energia)."""
    add_customer(store, MATTI, "Matti Virtanen", ["matti.virtanen@example.net"], ["040 123 4567"])
    import_mail(store, sorted((scenario / "mail").glob("*.eml")))
    import_mail(store, [scenario / "mail/export-2026-09-29.mbox"])
    import_calls(store, scenario / "pbx/Master.csv", "asterisk-cdr")
    import_calls(store, scenario / "pbx/queue_log", "asterisk-queue-log")
    import_recordings(store, scenario / "recordings")
    add_incident(
        store,
        title="Toimitalo tyhjennetty uhkatilanteen vuoksi",
        start=dt.datetime(2026, 9, 28, 10, 2, tzinfo=EEST),
        end=dt.datetime(2026, 9, 28, 14, 11, tzinfo=EEST),
        channels=["phone", "email"],
        note=None,
        logged_by="Kaisa Lehtonen (esihenkilö)",
        logged_at=dt.datetime(2026, 9, 28, 14, 25, tzinfo=EEST),
    )
