"""The dossier: one PDF with a cover, every item in time order, the originals embedded,
and the case's PDFs appended whole.

Rendering never reaches the network or the disk on behalf of an email: the
HTML of a message is sanitised first (``mailbody``) and the renderer's URL
fetcher refuses every URL but ``data:``.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import io
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pikepdf
from jinja2 import Environment, FileSystemLoader, StrictUndefined, select_autoescape
from sqlalchemy.orm import Session

from evidence import __version__
from evidence.calls import AgentPause, Call
from evidence.cases import load_case
from evidence.errors import InvalidInput
from evidence.render.labels import LABELS
from evidence.render.mailbody import Body, extract_body
from evidence.store.blobs import read_blob
from evidence.store.db import PROJECT_ROOT, Store
from evidence.store.ledger import chain_head
from evidence.store.models import Case, Email, IdentifierKind, Incident
from evidence.timeline import Item, Timeline, build_timeline
from evidence.timeutil import (
    format_duration,
    format_local,
    format_with_own_offset,
    iso_utc,
    utcnow,
)

TEMPLATES_DIR = PROJECT_ROOT / "templates"
log = logging.getLogger(__name__)


class SealedFetcher:
    """A WeasyPrint URL fetcher that fetches nothing but ``data:`` URIs.

    Every other URL (http, https, file, ftp, ...) is refused and remembered, so
    tests and the export can show what an email tried to load.
    """

    def __init__(self) -> None:
        from weasyprint.urls import URLFetcher

        self._inner = URLFetcher(allowed_protocols={"data"}, allow_redirects=False)
        self._fail_on_errors = False
        self.refused: list[str] = []

    def __call__(self, url: str) -> Any:
        if not url.lower().startswith("data:"):
            self.refused.append(url)
            raise ValueError(f"refused to fetch {url!r}: dossiers load nothing from outside")
        return self._inner.fetch(url)


@dataclass
class Embedded:
    name: str
    data: bytes
    mime_type: str
    description: str
    exhibit: str

    @property
    def sha256(self) -> str:
        return hashlib.sha256(self.data).hexdigest()


@dataclass
class ExportResult:
    pages: int
    items: int
    sha256: str
    embedded: list[Embedded] = field(default_factory=list)
    refused_urls: list[str] = field(default_factory=list)


@dataclass
class Exhibit:
    number: str
    item: Item
    view: dict[str, Any]


def _environment() -> Environment:
    return Environment(
        loader=FileSystemLoader(str(TEMPLATES_DIR)),
        autoescape=select_autoescape(["html", "j2"]),
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )


def _safe_name(text: str) -> str:
    keep = "".join(c if c.isalnum() or c in "-_." else "_" for c in text)
    return keep.strip("._")[:80] or "file"


class DossierBuilder:
    def __init__(
        self,
        session: Session,
        zone: ZoneInfo,
        language: str,
        company: str,
    ) -> None:
        self.session = session
        self.zone = zone
        self.t = LABELS.get(language, LABELS["fi"])
        self.language = language if language in LABELS else "fi"
        self.company = company
        self.embedded: list[Embedded] = []

    # -- formatting helpers used by the views
    def local(self, value: dt.datetime | None) -> str:
        return format_local(value, self.zone)

    def _embed(self, name: str, data: bytes, mime: str, description: str, exhibit: str) -> str:
        self.embedded.append(Embedded(name, data, mime, description, exhibit))
        return name

    def email_view(self, number: str, item: Item, mail: Email) -> dict[str, Any]:
        t = self.t
        raw = read_blob(self.session, mail.raw_sha256)
        body: Body = extract_body(raw)
        name = self._embed(
            f"{number}-email-{mail.raw_sha256[:12]}.eml",
            raw,
            "message/rfc822",
            f"{number}: {mail.subject or ''}"[:200],
            number,
        )
        if mail.date_header is not None:
            date_header = format_with_own_offset(
                mail.date_header.astimezone(
                    dt.timezone(dt.timedelta(minutes=mail.date_header_offset or 0))
                )
            )
        elif mail.date_header_raw:
            date_header = f"{t['date_unreadable']}: {mail.date_header_raw}"
        else:
            date_header = t["date_missing"]
        received_label = {
            "received-header": t["received_at"],
            "own-date": t["sent_at_own"],
            "import-time": t["imported_at_only"],
        }[mail.received_source.value]
        return {
            "direction": t[mail.direction.value],
            "from": mail.from_display or mail.from_addr or "",
            "to": mail.to_display or "",
            "cc": mail.cc_display or "",
            "subject": mail.subject or "",
            "received_label": received_label,
            "received": self.local(mail.received_at),
            "received_source": t[f"received_source_{mail.received_source.value}"],
            "date_header": date_header,
            "message_id": mail.message_id or t["message_id_missing"],
            "message_id_reused": mail.message_id_reused,
            "sha256": mail.raw_sha256,
            "body": body,
            "attachments": [
                {
                    "filename": a.filename or t["no_filename"],
                    "content_type": a.content_type,
                    "size": f"{a.size:,}".replace(",", "\u00a0"),
                    "sha256": a.sha256,
                }
                for a in mail.attachments
            ],
            "embedded_name": name,
        }

    def call_view(self, number: str, item: Item, call: Call) -> dict[str, Any]:
        t = self.t
        flag_text = None
        if call.time_flag:
            flag_text = (
                t[f"flag_{call.time_flag}"].format(
                    local=call.start_local or "", resolved=self.local(call.started_at)
                )
                + f" (UTC {iso_utc(call.started_at)})"
            )
        lines = b"\n".join(line.raw for line in call.source_lines) + b"\n"
        lines_name = self._embed(
            f"{number}-call-{_safe_name(call.uniqueid)}-lines.txt",
            lines,
            "text/plain",
            f"{number}: phone-system lines of call {call.uniqueid}",
            number,
        )
        recordings = []
        for rec in call.recordings:
            data = read_blob(self.session, rec.sha256)
            rec_name = self._embed(
                f"{number}-{_safe_name(rec.filename)}",
                data,
                rec.content_type,
                f"{number}: recording of call {call.uniqueid}",
                number,
            )
            recordings.append(
                {
                    "filename": rec.filename,
                    "sha256": rec.sha256,
                    "duration": format_duration(round(rec.duration)) if rec.duration else None,
                    "embedded_name": rec_name,
                }
            )
        return {
            "direction": t[call.direction.value],
            "number": call.number or call.number_raw or t["hidden_number"],
            "queue": call.queue,
            "queue_wait": format_duration(call.queue_wait),
            "queue_wait_source": call.queue_wait_source,
            "talk_time": format_duration(call.talk_time),
            "talk_time_source": call.talk_time_source,
            "ring_time": format_duration(call.ring_time) if call.ring_time is not None else None,
            "ring_time_source": call.ring_time_source,
            "outcome_source": ", ".join(
                s for s in (call.outcome_source, call.outcome_recorded) if s
            ),
            "transfers": [
                f"{self.local(x.at)} {x.agent} → {x.target} ({x.kind})" for x in call.transfers
            ],
            "rang": [
                f"{self.local(r.at)} {r.agent}"
                + (f" ({format_duration(round(r.ring_time))})" if r.ring_time is not None else "")
                for r in call.ring_attempts
            ],
            "agents": (
                f"{len(item.availability.available)} ({t['agents_logged_in']} "
                f"{len(item.availability.logged_in)}"
                + "".join(f"; {a}: {r}" for a, r in sorted(item.availability.paused.items()))
                + ")"
                if item.availability is not None
                else None
            ),
            "outcome": t.get(f"outcome_{call.outcome}", call.outcome),
            "agent": call.agent,
            "uniqueid": call.uniqueid,
            "local_time": call.start_local,
            "time_flag": flag_text,
            "note": call.note,
            "recordings": recordings,
            "source_lines": [
                {
                    "text": line.raw.decode("utf-8", "replace"),
                    "where": f"{Path(line.source).name}:{line.line_number}",
                }
                for line in call.source_lines
            ],
            "lines_name": lines_name,
        }

    def incident_view(self, number: str, item: Item, incident: Incident) -> dict[str, Any]:
        t = self.t
        channels = [c for c in incident.channels.split(",") if c] or ["all"]
        recorded_later = incident.recorded_at - incident.logged_at > dt.timedelta(minutes=10)
        return {
            "title": incident.title,
            "start": self.local(incident.start),
            "end": self.local(incident.end) if incident.end else t["ongoing"],
            "channels": ", ".join(t[f"channel_{c}"] for c in channels),
            "logged_by": incident.logged_by,
            "logged_at": self.local(incident.logged_at),
            "recorded_at": self.local(incident.recorded_at),
            "recorded_later": recorded_later,
            "note": incident.note,
            "corrects": incident.corrects_id,
        }

    def pause_view(self, number: str, item: Item, pause: AgentPause) -> dict[str, Any]:
        return {
            "agent": pause.agent,
            "start": self.local(pause.start),
            "end": self.local(pause.end) if pause.end else self.t["ongoing"],
            "reason": pause.reason,
            "queue": pause.queue,
        }

    def exhibits(self, timeline: Timeline) -> list[Exhibit]:
        result = []
        for index, item in enumerate(timeline.items, start=1):
            number = f"E-{index:03d}"
            record = item.record
            if isinstance(record, Email):
                view = self.email_view(number, item, record)
            elif isinstance(record, Call):
                view = self.call_view(number, item, record)
            elif isinstance(record, Incident):
                view = self.incident_view(number, item, record)
            else:
                assert isinstance(record, AgentPause)
                view = self.pause_view(number, item, record)
            if isinstance(record, Incident | AgentPause):
                view["when"] = f"{view['start']} – {view['end']}"
            else:
                view["when"] = self.local(item.at)
            view["incidents"] = [{"id": inc.id, "title": inc.title} for inc in item.incidents]
            result.append(Exhibit(number, item, view))
        return result


def export_dossier(
    store: Store,
    *,
    customer_ref: str | None,
    output: Path,
    date_from: dt.date | None = None,
    date_to: dt.date | None = None,
    case_ref: str | None = None,
    generated_at: dt.datetime | None = None,
    language: str | None = None,
) -> ExportResult:
    config = store.config
    zone = config.zone
    generated = generated_at or utcnow()
    with store.session() as session:
        case: Case | None = load_case(session, case_ref) if case_ref else None
        if case is not None:
            if customer_ref is not None and customer_ref != case.customer.ref:
                raise InvalidInput(
                    f"case {case.reference} is about customer {case.customer.ref}, "
                    f"not {customer_ref}"
                )
            customer_ref = case.customer.ref
        assert customer_ref is not None
        timeline = build_timeline(session, customer_ref, zone, date_from, date_to)
        builder = DossierBuilder(session, zone, language or config.language, config.company_name)
        exhibits = builder.exhibits(timeline)
        head = chain_head(session)
        documents = []
        if case is not None:
            for doc in case.documents:
                data = read_blob(session, doc.sha256)
                documents.append((doc, data))
                builder._embed(
                    f"case-{doc.id}-{_safe_name(doc.filename)}",
                    data,
                    "application/pdf",
                    doc.title,
                    "",
                )
        html = _render_html(
            builder, timeline, exhibits, case, documents, head.seq, head.hash, generated, zone
        )
    fetcher = SealedFetcher()
    pdf_bytes, slip_pages = _write_pdf(html, fetcher, len(documents))
    final = _assemble(pdf_bytes, slip_pages, documents, builder.embedded, generated)
    output.parent.mkdir(parents=True, exist_ok=True)
    tmp = output.with_name(output.name + ".part")
    tmp.write_bytes(final)
    tmp.replace(output)
    with pikepdf.open(io.BytesIO(final)) as check:
        pages = len(check.pages)
    return ExportResult(
        pages=pages,
        items=len(timeline.items),
        sha256=hashlib.sha256(final).hexdigest(),
        embedded=builder.embedded,
        refused_urls=fetcher.refused,
    )


def _render_html(
    builder: DossierBuilder,
    timeline: Timeline,
    exhibits: list[Exhibit],
    case: Case | None,
    documents: list[tuple[Any, bytes]],
    head_seq: int,
    head_hash: str,
    generated: dt.datetime,
    zone: ZoneInfo,
) -> str:
    t = builder.t
    customer = timeline.customer
    counts = {
        kind: len(timeline.of_kind(kind)) for kind in ("email", "call", "incident", "agent_pause")
    }
    start, end = timeline.start, timeline.end
    if start or end:
        last_day = (end - dt.timedelta(seconds=1)).astimezone(zone) if end else None
        period = (
            f"{_day(start.astimezone(zone)) if start else '…'} – "
            f"{_day(last_day) if last_day else '…'}"
        )
    else:
        first, last = timeline.span
        period = t["whole_history"] + (
            f" ({_day(first.astimezone(zone))} – {_day(last.astimezone(zone))})"
            if first and last
            else ""
        )
    docs = []
    for doc, data in documents:
        with pikepdf.open(io.BytesIO(data)) as pdf:
            page_count = len(pdf.pages)
        docs.append(
            {
                "title": doc.title,
                "filename": doc.filename,
                "sha256": doc.sha256,
                "pages": page_count,
                "date": doc.document_date.strftime("%-d.%-m.%Y") if doc.document_date else None,
            }
        )
    identifiers_text = ", ".join(
        i.value
        for kind in (IdentifierKind.EMAIL, IdentifierKind.PHONE)
        for i in customer.identifiers
        if i.kind is kind
    )
    css = (TEMPLATES_DIR / "dossier.css").read_text(encoding="utf-8")
    template = _environment().get_template("dossier.html.j2")
    return template.render(
        t=t,
        lang=builder.language,
        css=css,
        company=builder.company,
        customer=customer,
        identifiers=identifiers_text,
        case=case,
        case_received=_day(case.received) if case and case.received else None,
        case_deadline=_day(case.deadline) if case and case.deadline else None,
        period=period,
        generated=format_local(generated, zone),
        version=__version__,
        counts=counts,
        head_seq=head_seq,
        head_hash=head_hash,
        zone=zone.key,
        exhibits=exhibits,
        embedded=builder.embedded,
        documents=docs,
        doc_ref=case.reference if case else f"{t['customer']} {customer.ref}",
    )


def _day(value: dt.date | dt.datetime) -> str:
    return f"{value.day}.{value.month}.{value.year}"


def _write_pdf(html: str, fetcher: SealedFetcher, n_slips: int) -> tuple[bytes, list[int]]:
    from weasyprint import HTML

    document = HTML(string=html, url_fetcher=fetcher, base_url=None).render()
    slip_pages: list[int] = []
    for n in range(1, n_slips + 1):
        anchor = f"slip-{n}"
        index = next(i for i, page in enumerate(document.pages) if anchor in page.anchors)
        slip_pages.append(index)
    return document.write_pdf(), slip_pages


def _assemble(
    pdf_bytes: bytes,
    slip_pages: list[int],
    documents: list[tuple[Any, bytes]],
    embedded: list[Embedded],
    generated: dt.datetime,
) -> bytes:
    """Append each case PDF after its slip sheet and embed the originals."""
    out = pikepdf.open(io.BytesIO(pdf_bytes))
    sources = []  # keep every source open until the output is saved
    # Each slip is followed by one placeholder page per appended page, carrying
    # only the running footer ("page n / N"). The original page takes the
    # placeholder's place, with the footer laid over it; its own content is kept.
    for (_doc, data), slip in zip(documents, slip_pages, strict=True):
        src = pikepdf.open(io.BytesIO(data))
        sources.append(src)
        for offset, page in enumerate(src.pages, start=1):
            index = slip + offset
            out.pages.insert(index, page)
            placeholder = out.pages[index + 1]
            target = out.pages[index]
            target.add_overlay(placeholder, pikepdf.Rectangle(target.mediabox))
            del out.pages[index + 1]
    stamp = pikepdf.String(_pdf_date(generated))
    seen: set[str] = set()
    for item in embedded:
        if item.name in seen:
            continue
        seen.add(item.name)
        spec = pikepdf.AttachedFileSpec(
            out,
            item.data,
            description=item.description,
            filename=item.name,
            mime_type=item.mime_type,
            creation_date=str(stamp),
            mod_date=str(stamp),
            relationship=pikepdf.Name.Source,
        )
        out.attachments[item.name] = spec
    buffer = io.BytesIO()
    out.save(buffer, deterministic_id=True)
    out.close()
    for src in sources:
        src.close()
    return buffer.getvalue()


def _pdf_date(value: dt.datetime) -> str:
    utc = value.astimezone(dt.UTC)
    return utc.strftime("D:%Y%m%d%H%M%SZ")
