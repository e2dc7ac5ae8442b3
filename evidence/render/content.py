"""The views stage of an export: what the templates are given, as plain data.

:func:`front_views` makes the front matter's data from what was gathered (it goes to the
render workers at once); :func:`exhibit_views` the exhibits', the appended case
documents' and what the assembler takes from them (:class:`Binding`), in the export's
writer-locked session: an exhibit's view reads its email's bytes.
"""

from __future__ import annotations

import datetime as dt
import gettext
import io
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from zoneinfo import ZoneInfo

import pikepdf
from sqlalchemy.orm import Session

from evidence import __version__
from evidence.config import MailLimits
from evidence.domain import ItemKind
from evidence.records.authorities import authority_name
from evidence.render import front
from evidence.render.assemble import OutlineEntry
from evidence.render.gather import Gathered
from evidence.render.i18n import Formatter, check_language, translations
from evidence.render.software import dossier_software
from evidence.render.views import Embedded, Exhibit, Insert, ViewBuilder
from evidence.resources import templates_dir
from evidence.store.blobs import read_blob
from evidence.store.models import Case, CaseDocument, IdentifierKind, ReceivedSource
from evidence.timeline.history import Timeline
from evidence.timeutil import iso_utc

# What only the front matter's template is given (the cover's own, and the views).
COVER_ONLY = (
    "claims",
    "summary",
    "reachability",
    "selection",
    "completeness",
    "linked",
    "verification",
)
# The bookmarks before the exhibits, each to the anchor of its name.
FRONT_BOOKMARKS = (
    "cover",
    "claims",
    "summary",
    "reachability",
    "absence",
    "selection",
    "completeness",
    "index",
)


@dataclass(frozen=True)
class Locale:
    """The dossier's language: its catalog of translations and how it writes times."""

    language: str
    translations: gettext.NullTranslations
    fmt: Formatter

    @classmethod
    def of(cls, language: str, zone: ZoneInfo) -> Locale:
        language = check_language(language)
        return cls(language, translations(language), Formatter(language, zone))

    @property
    def gettext(self) -> Callable[[str], str]:
        return self.translations.gettext


@dataclass(frozen=True)
class FrontMatter:
    """``common``: what the cover's template is given (every part's data and the cover's
    own views); ``timeless``: what every other part's is given. Only the cover carries the
    generation time: every other part's HTML, and so its cache key, depends on the
    evidence alone."""

    common: dict[str, Any]
    timeless: dict[str, Any]


@dataclass(frozen=True)
class Binding:
    """What the assembler takes from the views: the PDFs that follow slip sheets, the
    originals to embed, the bookmarks, and the words of the page stamps."""

    inserts: list[Insert]
    embedded: list[Embedded]
    outline: list[OutlineEntry]
    doc_ref: str
    page_word: str


@dataclass(frozen=True)
class Views:
    """The templates' data: the front matter's, each exhibit's, and the appended case
    documents' (for their slip sheets)."""

    front: FrontMatter
    exhibits: list[Exhibit]
    documents: list[dict[str, Any]]
    binding: Binding


def front_views(
    gathered: Gathered, locale: Locale, *, generated: dt.datetime, company: str
) -> FrontMatter:
    """The front matter's data: the cover, the claims and the summary, the customer's
    reachability, the rules of selection and the completeness of the sources."""
    _, fmt, timeline = locale.gettext, locale.fmt, gathered.timeline
    exhibit_of = front.exhibit_numbers(timeline.items)
    common = _common(locale, timeline, gathered.case, generated, company)
    common.update(
        claims=front.claims_view(gathered.claims, gathered.summary, exhibit_of, fmt, _),
        summary=front.summary_view(gathered.summary, exhibit_of, timeline, fmt, _),
        completeness=front.completeness_view(gathered.completeness, fmt, _),
        selection=front.selection_view(
            timeline.identity,
            timeline.rules,
            fmt,
            _,
            captured=any(
                item.placement is not None
                and item.placement.source is ReceivedSource.SMTP_RECEIVER
                for item in timeline.items
            ),
        ),
        reachability=front.reachability_view(gathered.reachability, exhibit_of, fmt, _),
    )
    timeless = {k: v for k, v in common.items() if k not in COVER_ONLY} | {"created": ""}
    return FrontMatter(common, timeless)


def exhibit_views(
    session: Session,
    gathered: Gathered,
    front_matter: FrontMatter,
    locale: Locale,
    *,
    mail_limits: MailLimits,
    read_later: Callable[[str], bytes],
) -> Views:
    """Each exhibit's data and the appended case documents'. ``read_later`` reads an
    original again when the dossier is written (the originals are not held meanwhile)."""
    builder = ViewBuilder(
        session, locale.fmt, locale.gettext, mail_limits=mail_limits, read_later=read_later
    )
    exhibits = builder.exhibits(gathered.timeline)
    documents, slips = _documents(session, gathered.case, builder, locale.fmt)
    doc_ref = front_matter.common["doc_ref"]
    binding = Binding(
        inserts=[*builder.inserts, *slips],
        embedded=builder.embedded,
        outline=_outline(locale.gettext, exhibits, documents),
        doc_ref=doc_ref,
        page_word=locale.gettext("page"),
    )
    return Views(front_matter, exhibits, documents, binding)


def _documents(
    session: Session, case: Case | None, builder: ViewBuilder, fmt: Formatter
) -> tuple[list[dict[str, Any]], list[Insert]]:
    """The case's PDFs, each embedded and appended whole after its slip sheet."""
    documents: list[dict[str, Any]] = []
    slips: list[Insert] = []
    if case is None:
        return documents, slips
    doc: CaseDocument
    for n, doc in enumerate(case.documents, start=1):
        data = read_blob(session, doc.sha256)
        with pikepdf.open(io.BytesIO(data)) as pdf:
            page_count = len(pdf.pages)
        builder.embed(f"case-{doc.id}-{doc.filename}", data, "application/pdf", doc.title, "")
        documents.append(
            {
                "record": doc,
                "title": doc.title,
                "filename": doc.filename,
                "sha256": doc.sha256,
                "pages": page_count,
                "date": fmt.day(doc.document_date) if doc.document_date else None,
            }
        )
        slips.append(Insert(f"slip-{n}", data, page_count))
    return documents, slips


def _outline(
    _: Callable[[str], str], exhibits: list[Exhibit], documents: list[dict[str, Any]]
) -> list[OutlineEntry]:
    """The bookmarks: the front matter's sections, each exhibit, the list of embedded
    files, and each appendix."""
    titles = {
        "cover": _("Cover"),
        "claims": _("The customer's claims"),
        "summary": _("Summary"),
        "reachability": _("Reachability"),
        "absence": _("Evidence of absence"),
        "selection": _("The customer's identifiers and the rules of selection"),
        "completeness": _("Completeness of the sources"),
        "index": _("Index of exhibits"),
    }
    entries = [OutlineEntry(titles[name], name) for name in FRONT_BOOKMARKS]
    items = OutlineEntry(_("Exhibits in time order"), "items")
    for exhibit in exhibits:
        items.children.append(OutlineEntry(f"{exhibit.number} {exhibit.title}", exhibit.anchor))
    entries.append(items)
    entries.append(OutlineEntry(_("Embedded original files"), "manifest"))
    appendices = _("Appendices")
    for n, doc in enumerate(documents, start=1):
        entries.append(OutlineEntry(f"{appendices} {n}: {doc['title']}", f"slip-{n}"))
    return entries


def _period(_: Callable[[str], str], fmt: Formatter, timeline: Timeline) -> str:
    """The period the dossier covers, as its cover says it."""
    if timeline.start or timeline.end:
        last = timeline.end - dt.timedelta(seconds=1) if timeline.end else None
        return (
            f"{fmt.day(timeline.start) if timeline.start else '…'} – "
            f"{fmt.day(last) if last else '…'}"
        )
    first, last_at = timeline.span
    period = _("the whole history")
    if first and last_at:
        period += f" ({fmt.day(first)} – {fmt.day(last_at)})"
    return period


def _common(
    locale: Locale,
    timeline: Timeline,
    case: Case | None,
    generated: dt.datetime,
    company: str,
) -> dict[str, Any]:
    """What every part's template is given (the cover's own views are added to it)."""
    _, fmt = locale.gettext, locale.fmt
    customer = timeline.customer
    kinds = (ItemKind.EMAIL, ItemKind.CALL, ItemKind.INCIDENT, ItemKind.AGENT_PAUSE)
    identifiers = ", ".join(
        i.value
        for kind in (IdentifierKind.EMAIL, IdentifierKind.PHONE)
        for i in customer.identifiers
        if i.kind is kind
    )
    return {
        "lang": locale.language,
        "css": (templates_dir() / "dossier.css").read_text(encoding="utf-8"),
        "version": __version__,
        "software": dossier_software(),
        "created": iso_utc(generated),
        "doc_title": f"{_('Customer contact history')} – {customer.name} ({customer.ref})",
        "fmt": fmt,
        "day_label": fmt.day,
        "kind_label": {
            "email": _("Email"),
            "call": _("Call"),
            "incident": _("Incident"),
            "agent_pause": _("Agent pause"),
        },
        "company": company,
        "customer": customer,
        "identifiers": identifiers,
        "case": case,
        "authority": authority_name(case.authority, locale.language) if case else None,
        "case_received": fmt.day(case.received) if case and case.received else None,
        "case_deadline": fmt.day(case.deadline) if case and case.deadline else None,
        "period": _period(_, fmt, timeline),
        "generated": fmt.local(generated),
        "counts": {k: len(timeline.of_kind(k)) for k in kinds},
        "service_counts": timeline.service_counts(),
        "zone": fmt.zone.key,
        "doc_ref": case.reference if case else f"{_('Customer')} {customer.ref}",
    }
