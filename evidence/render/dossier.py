"""The dossier: one PDF/A-3b with a cover, the index, every item in time order, the
originals embedded, and the case's PDFs appended whole.

Rendering never reaches the network or the disk on behalf of an email: the HTML
of a message is sanitised first (``mailbody``) and the renderer's URL fetcher
refuses every URL but ``data:``.

Exhibits are rendered in chunks (a local day, at most ``CHUNK_ITEMS`` items) on
all cores, and each chunk's PDF is cached under EVIDENCE_HOME by the SHA-256 of
its HTML, so a re-export after one new item renders one chunk. ``assemble`` then
writes the dossier from the parts, one part at a time, with the page stamps, the
bookmarks, the links across parts and the embedded originals.
"""

from __future__ import annotations

import ctypes
import dataclasses
import datetime as dt
import functools
import gc
import io
import os
import tempfile
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pikepdf
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from jinja2 import Environment, FileSystemLoader, StrictUndefined, select_autoescape

from evidence import __version__
from evidence.domain import ItemKind
from evidence.errors import EvidenceError, IntegrityFailure, InvalidInput
from evidence.files import private_dir, replace_synced, write_atomic
from evidence.ingest.mail import mail_limits
from evidence.proofs.manifest import MANIFEST_NAME, prepare_dossier_proofs, selection_records
from evidence.proofs.pages import page_digests, seal_pages
from evidence.proofs.signing import sign_pdf, signing_configured
from evidence.records.authorities import authority_name
from evidence.records.cases import current_claims, load_case
from evidence.records.erasure import refuse_if_erased
from evidence.records.exports import ProvedAgainst, check_output, file_digest, record_export
from evidence.render import assemble, front
from evidence.render.i18n import Formatter, check_language, translations
from evidence.render.package import package_zip
from evidence.render.pool import (
    SCRATCH_PREFIX,
    ChunkRenderer,
    Failure,
    Job,
    LazyJob,
    RenderLimits,
    SealedFetcher,
    render_limits,
    render_pdf,
    start_workers,
)
from evidence.render.software import dossier_software
from evidence.render.views import Embedded, Exhibit, Insert, ViewBuilder
from evidence.resources import templates_dir
from evidence.store.blobs import read_blob
from evidence.store.checkpoints import ensure_signing_key, write_checkpoint
from evidence.store.db import Store
from evidence.store.models import Case, CaseDocument, IdentifierKind, ReceivedSource
from evidence.timeline.completeness import completeness
from evidence.timeline.history import Timeline, build_timeline
from evidence.timeline.hours import OpeningHours, opening_hours
from evidence.timeline.mailfacts import MailRules
from evidence.timeline.reports import customer_reachability, threshold_from_config
from evidence.timeline.summary import summarize
from evidence.timeutil import iso_utc, utcnow

CHUNK_ITEMS = 40
# Index rows have a fixed height: this many fit on its first page and on the others.
INDEX_ROWS_FIRST, INDEX_ROWS_PAGE = 55, 58
INDEX_PART_PAGES = 4  # the index is rendered in parts of this many pages
MANIFEST_PART_ROWS = 200  # and the list of embedded files in parts of this many rows
# The front matter is rendered in parts of about this many table rows (see _front_htmls);
# the claims with the summary count as FRONT_HEAD_WEIGHT rows, an entry of
# the evidence of absence (a heading and the phone system's lines) as ABSENCE_ROW_WEIGHT.
FRONT_PART_WEIGHT = 300
FRONT_HEAD_WEIGHT = 60
ABSENCE_ROW_WEIGHT = 4
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
CHUNK_COST = 2700.0  # about the HTML characters per exhibit: orders chunks among the parts
# Named destinations where the assembler writes an index row's page number.
PAGE_OF = "page-of-"
INDEX_PAGE_CELL = float(12 * assemble.MM)  # width of that cell (.index-row .p): right-aligned

__all__ = [
    "Embedded",
    "ExportResult",
    "Placeholder",
    "SealedFetcher",
    "export_dossier",
    "render_pdf",
]


@dataclass
class Placeholder:
    """An exhibit whose pages could not be rendered within the limits: a placeholder
    page stands in for it, and says where its original is."""

    number: str
    title: str
    failure: Failure
    files: list[Embedded]

    def describe(self) -> str:
        what = {
            "time": f"rendering took longer than {self.failure.detail}",
            "memory": "rendering needed more memory than the limit",
            "stopped": "the renderer stopped answering",
        }.get(self.failure.kind, f"the renderer failed ({self.failure.detail})")
        files = ", ".join(f"{f.name} (SHA-256 {f.sha256})" for f in self.files)
        return f"{self.number} ({self.title}): {what}; original embedded as {files or '-'}"


@dataclass
class ExportResult:
    pages: int
    items: int
    sha256: str  # of the file written to ``output``: the PDF, or the ZIP
    embedded: list[Embedded] = field(default_factory=list)
    refused_urls: list[str] = field(default_factory=list)
    parts_rendered: int = 0
    parts_cached: int = 0
    checkpoint_id: int | None = None  # the signed checkpoint printed on the cover
    root: str | None = None
    tree_size: int | None = None
    signed: bool = False
    placeholders: list[Placeholder] = field(default_factory=list)
    worker_rss_mb: float = 0.0  # peak RSS of the largest render worker
    worker_cpu_s: float = 0.0  # CPU seconds spent in the render workers
    export_id: int | None = None  # its row in the record of exports (``exports list``)


# --- building the parts -----------------------------------------------------------------


def _environment(translate: Any) -> Environment:
    env = Environment(
        loader=FileSystemLoader(str(templates_dir())),
        autoescape=select_autoescape(["html", "j2"]),
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        extensions=["jinja2.ext.i18n"],
    )
    env.install_gettext_translations(translate, newstyle=False)  # type: ignore[attr-defined]
    return env


def plan_chunks(exhibits: Sequence[Exhibit], size: int = CHUNK_ITEMS) -> list[list[Exhibit]]:
    """Consecutive exhibits of one local day, at most ``size`` a chunk."""
    chunks: list[list[Exhibit]] = []
    for exhibit in exhibits:
        if not chunks or len(chunks[-1]) >= size or chunks[-1][-1].day != exhibit.day:
            chunks.append([])
        chunks[-1].append(exhibit)
    return chunks


@dataclass
class Context:
    """Everything the templates need that is not per chunk."""

    common: dict[str, Any]
    bookmarks: list[tuple[str, str]]  # each exhibit's (title, anchor) for the outline
    documents: list[dict[str, Any]]
    document_bytes: list[bytes]
    embedded: list[Embedded]
    inserts: list[Insert]
    doc_ref: str
    page_word: str
    outline_titles: dict[str, str]


def refuse_an_altered_store(store: Store) -> None:
    """A dossier shows the records as they are stored and proves them by the ledger: from a
    store whose rows no longer match their ledger entries it would show what the proofs do
    not hold, and still verify. So the store is checked first with the checks of ``evidence
    status`` (all of ``verify`` but re-reading every blob's bytes: each original the dossier
    embeds is checked against its SHA-256 when it is read), and an altered store is refused
    (``IntegrityFailure``, exit 5), naming the first problem."""
    from evidence.verify.store import verify_store

    report = verify_store(store, read_blobs=False)
    if report.intact:
        return
    first = report.failures[0]
    raise IntegrityFailure(
        f"the store does not verify ({len(report.failures)} problem(s); the first: "
        f"{first.subject} {first.problem}): no dossier is made from an altered store. "
        "Run `evidence verify` to see every problem, and restore the last good backup "
        "(README, \"Backups and restore\")"
    )


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
    jobs: int | None = None,
    use_cache: bool = True,
    progress: Callable[[int], None] | None = None,
    fmt: str = "pdf",
    force: bool = False,
    by: str | None = None,
    as_given: Mapping[str, str | None] | None = None,
) -> ExportResult:
    """Write the dossier of a customer (or of a case's customer) to ``output`` and record it.

    Before anything is rendered it refuses an ``output`` that exists (unless ``force``) or
    that cannot be written (:func:`evidence.records.exports.check_output`), and, under the writer
    lock, a customer whose content was erased (``ContentErased``). ``fmt="zip"`` writes the
    BagIt ZIP of :mod:`evidence.render.package`; its PDF is made in a scratch folder under
    EVIDENCE_HOME/cache that goes whatever happens. The export is recorded (audit event
    and record of exports, one transaction, naming ``actor(by)``, with the checkpoint the
    dossier was proved against) and a checkpoint covering that is signed. The record keeps
    the arguments; ``as_given``: some of them as the user typed them (``from``, ``to``,
    ``generated_at``), kept instead of their parsed values.
    """
    check_output(output, fmt=fmt, force=force)
    refuse_an_altered_store(store)
    arguments = {
        "customer": customer_ref,
        "case": case_ref,
        "from": date_from,
        "to": date_to,
        "generated_at": generated_at,
        "lang": language,
        "jobs": jobs,
        "no_cache": not use_cache,
        "format": fmt,
        "force": force,
        "output": str(output),
        **(as_given or {}),
    }
    render = functools.partial(
        _render_dossier,
        store,
        customer_ref=customer_ref,
        date_from=date_from,
        date_to=date_to,
        case_ref=case_ref,
        generated_at=generated_at,
        language=language,
        jobs=jobs,
        use_cache=use_cache,
        progress=progress,
    )
    if fmt == "zip":
        # Named as the renderer's scratch folders are: one left by a killed export goes too.
        with tempfile.TemporaryDirectory(
            prefix=f"{SCRATCH_PREFIX}zip-", dir=private_dir(store.config.home / "cache")
        ) as scratch:
            # The PDF inside the bag is named after the ZIP.
            rendered = render(output=Path(scratch) / f"{output.stem}.pdf", force=True)
            check_output(output, fmt=fmt, force=force)  # did it appear meanwhile?
            package_zip(
                rendered.output,
                rendered.result.embedded,
                output,
                created=generated_at,
                scratch=Path(scratch),
            )
    else:
        rendered = render(output=output, force=force)
    proved = rendered.proved
    with store.writing() as session:
        record = record_export(
            session,
            output=output,
            proved=proved,
            arguments=arguments,
            customer_ref=rendered.customer_ref,
            case_ref=rendered.case_ref,
            fmt=fmt,
            by=by,
            details=rendered.details,
        )
        write_checkpoint(session, store.config, "audit export")
    return dataclasses.replace(rendered.result, sha256=record.sha256, export_id=record.id)


@dataclass
class _Rendered:
    """A dossier written to ``output``, not recorded yet."""

    output: Path
    result: ExportResult
    customer_ref: str
    case_ref: str | None
    proved: ProvedAgainst
    details: dict[str, Any]


def _render_dossier(
    store: Store,
    *,
    customer_ref: str | None,
    output: Path,
    force: bool,
    date_from: dt.date | None,
    date_to: dt.date | None,
    case_ref: str | None,
    generated_at: dt.datetime | None,
    language: str | None,
    jobs: int | None,
    use_cache: bool,
    progress: Callable[[int], None] | None,
) -> _Rendered:
    config = store.config
    language = check_language(language or config.language)
    translate = translations(language)
    fmt = Formatter(language, config.zone)
    generated = generated_at or utcnow()
    env = _environment(translate)
    start_workers()
    limits = render_limits(config)
    renderer = ChunkRenderer(
        config.home / "cache" / "render" if use_cache else None,
        jobs or min(2, os.cpu_count() or 1),
        limits,
        scratch_root=config.home / "cache",
    )
    # The front matter after the cover is handed to the workers as soon as the timeline
    # is read, and renders while the rest is prepared: on a re-export after a new contact
    # its longest part (the last slice of the customer's attempts) is rendered again.
    # The originals are read again when the PDF is written, not held meanwhile.
    blobs = _BlobReader(store)
    with renderer:
        # Under the writer lock: a checkpoint signed for this export covers what it shows.
        with store.writing() as session:
            case: Case | None = load_case(session, case_ref) if case_ref else None
            if case is not None:
                if customer_ref is not None and customer_ref != case.customer.ref:
                    raise InvalidInput(
                        f"case {case.reference} is about customer {case.customer.ref}, "
                        f"not {customer_ref}"
                    )
                customer_ref = case.customer.ref
                if date_from is None and date_to is None:
                    # An export for a case covers the case's period unless told otherwise.
                    date_from, date_to = case.period_from, case.period_to
            if customer_ref is None:
                raise InvalidInput("give a customer reference or --case")
            # Here, under the writer lock, so no erasure comes between this and the pages.
            refuse_if_erased(session, customer_ref)
            hours = opening_hours(config)
            timeline = build_timeline(
                session,
                customer_ref,
                config.zone,
                date_from,
                date_to,
                hours=hours,
                rules=MailRules.of(config),
                with_addresses=False,
            )
            claims = current_claims(case) if case is not None else []
            found = completeness(
                session, config.zone, timeline.start, timeline.end, rules=timeline.rules
            )
            reach = customer_reachability(
                session,
                timeline.items,
                config.zone,
                hours=hours,
                threshold=threshold_from_config(config),
                rules=timeline.rules,
            )
            exhibit_of = front.exhibit_numbers(timeline.items)
            summary = summarize(
                timeline,
                config.zone,
                claims,
                is_open=_is_open(hours),
            )
            common = _common(
                translate.gettext, fmt, language, timeline, case, generated, config.company_name
            )
            common.update(
                claims=front.claims_view(claims, summary, exhibit_of, fmt, translate.gettext),
                summary=front.summary_view(summary, exhibit_of, timeline, fmt, translate.gettext),
                completeness=front.completeness_view(found, fmt, translate.gettext),
                selection=front.selection_view(
                    timeline.identity,
                    timeline.rules,
                    fmt,
                    translate.gettext,
                    captured=any(
                        item.placement is not None
                        and item.placement.source is ReceivedSource.SMTP_RECEIVER
                        for item in timeline.items
                    ),
                ),
                reachability=front.reachability_view(reach, exhibit_of, fmt, translate.gettext),
            )
            # Only the cover carries the generation time: every other part's HTML, and so
            # its cache key, depends on the evidence alone.
            timeless = {k: v for k, v in common.items() if k not in COVER_ONLY} | {"created": ""}
            front_groups = _front_groups(common)
            front_tickets = renderer.submit(
                [
                    _front_job(env, common, timeless, group, n)
                    for n, group in enumerate(front_groups)
                    if n > 0
                ]
                + [Job(_stamp_sample_html(env, common["doc_ref"], translate.gettext("page")))],
                progress,
            )
            stamp_ticket = front_tickets.pop()
            builder = ViewBuilder(
                session,
                fmt,
                translate.gettext,
                mail_limits=mail_limits(config),
                read_later=blobs,
            )
            exhibits = builder.exhibits(timeline)
            items_template = env.get_template("items.html.j2")

            def chunk_html(chunk: Sequence[Exhibit], first: bool) -> str:
                return items_template.render(**timeless, exhibits=chunk, first_chunk=first)

            def chunk_job(chunk: Sequence[Exhibit], first: bool) -> LazyJob:
                # Made when its turn comes: the HTML of every chunk at once is tens of MB.
                return LazyJob(
                    lambda: Job(chunk_html(chunk, first), limited=True), CHUNK_COST * len(chunk)
                )

            documents, document_bytes = _documents(session, case, builder, fmt)
            # Verification (evidence/verify): the signed checkpoint, each exhibit's
            # inclusion proof, and manifest.json, embedded with the originals.
            proofs = prepare_dossier_proofs(
                session,
                config,
                exhibits=exhibits,
                documents=[
                    (d["record"], data) for d, data in zip(documents, document_bytes, strict=True)
                ],
                embedded=builder.embedded,
                selection=selection_records(timeline.identity, case),
                zone=config.zone,
                generated=generated,
                label=translate.gettext("verification"),
                software={c.name: c.version for c in dossier_software()},
            )
            for proof_file in proofs.files:
                builder.embedded.append(
                    Embedded(
                        proof_file.name,
                        proof_file.mime_type,
                        proof_file.description,
                        translate.gettext("verification"),
                        proof_file.sha256,
                        proof_file.size,
                        proof_file.load,
                    )
                )
            context = _context(
                translate.gettext,
                common,
                exhibits,
                documents,
                document_bytes,
                builder.embedded,
                builder.inserts,
            )
        common["verification"] = proofs.view
        # The cover first (on a re-export with nothing new it is the part that takes
        # longest, and it is the PDF/A-3b base of the dossier), then the rest, largest first.
        [cover_ticket] = renderer.submit(
            [Job(_front_html(env, common, timeless, front_groups[0], 0), "pdf/a-3b")], progress
        )
        chunks = plan_chunks(exhibits)
        index_template = env.get_template("index.html.j2")
        index_htmls = [
            index_template.render(**timeless, exhibits=rows, first=(n == 0))
            for n, rows in enumerate(_index_parts(exhibits))
        ]
        back_htmls = _back_htmls(env, timeless, context, proofs.view)
        tickets = renderer.submit(
            [
                *(Job(h) for h in index_htmls),
                *(chunk_job(c, n == 0) for n, c in enumerate(chunks)),
                *(Job(h) for h in back_htmls),
            ],
            progress,
        )
        n_index = len(index_htmls)
        index_tickets, tickets = tickets[:n_index], tickets[n_index:]
        chunk_tickets, back_tickets = tickets[: len(chunks)], tickets[len(chunks) :]
        del index_htmls, back_htmls
        subject = f"customer {customer_ref}" + (f", case {case.reference}" if case else "")
        case_reference = case.reference if case is not None else None
        results = renderer.results(
            [
                cover_ticket,
                *front_tickets,
                *index_tickets,
                *chunk_tickets,
                *back_tickets,
                stamp_ticket,
            ]
        )
        n_front = len(front_groups)
        cover_pdf, *rest = results
        front_pdfs, rest = rest[: n_front - 1], rest[n_front - 1 :]
        index_pdfs = rest[:n_index]
        chunk_pdfs = rest[n_index : n_index + len(chunks)]
        back_pdfs = rest[n_index + len(chunks) : -1]
        placeholders, chunk_parts = _rescue(
            renderer, chunks, chunk_pdfs, chunk_html, context, limits, translate.gettext
        )
        parts = [assemble.open_part(_ok(cover_pdf, "cover"))]
        parts += [assemble.open_part(_ok(pdf, "front matter")) for pdf in front_pdfs]
        parts += [assemble.open_part(_ok(pdf, "index")) for pdf in index_pdfs]
        parts += chunk_parts
        parts += [assemble.open_part(_ok(pdf, "list of embedded files")) for pdf in back_pdfs]
        stamp_font = assemble.StampFont(_ok(results[-1], "stamp font"))
        # Nothing below needs the store's records, the exhibits' views or the templates'
        # data: let them go before the pages are assembled (100+ MB for a long history).
        n_items = len(timeline.items)
        context.common = {}
        common = {}
        del timeline, exhibits, chunks, builder, claims, found, reach, summary, exhibit_of
        timeless = {}  # (the chunks' template closure holds this name)
        del results, chunk_pdfs, front_groups
        _give_back_memory()
        # The pages as written are signed with the store's key (pages.json, pages.sig),
        # before any PAdES signature: see evidence/proofs/pages.py.
        page_seal = _page_seal(
            ensure_signing_key(config)[0].private,
            manifest_sha256=next(f.sha256 for f in proofs.files if f.name == MANIFEST_NAME),
            checkpoint={
                "id": proofs.checkpoint_id,
                "tree_size": proofs.tree_size,
                "root": proofs.root,
            },
            description=translate.gettext("verification"),
        )
        # Written straight to a file beside the output: the dossier is never held whole.
        unsigned = output.with_name(f".{output.name}.{os.getpid()}.unsigned")
        try:
            pages = _assemble(parts, context, generated, stamp_font, unsigned, page_seal)
            del parts, chunk_parts
            # A file that appeared at ``output`` while the pages were made is not replaced.
            check_output(output, force=force)
            if signing_configured(config):
                signed = sign_pdf(
                    unsigned.read_bytes(), config, reason=f"evidence dossier: {subject}"
                )
                # the umask decides, as for any file the user asks for
                write_atomic(output, signed, mode=0o666)
                del signed
                unsigned.unlink()
            else:
                replace_synced(unsigned, output)
        except BaseException:
            unsigned.unlink(missing_ok=True)
            raise
    digest, _size = file_digest(output)
    result = ExportResult(
        pages=pages,
        items=n_items,
        sha256=digest,
        checkpoint_id=proofs.checkpoint_id,
        root=proofs.root,
        tree_size=proofs.tree_size,
        signed=signing_configured(config),
        embedded=context.embedded,
        refused_urls=renderer.refused,
        parts_rendered=renderer.rendered,
        parts_cached=renderer.cached,
        placeholders=placeholders,
        worker_rss_mb=round(renderer.worker_peak_mb, 1),
        worker_cpu_s=round(renderer.worker_cpu, 2),
    )
    return _Rendered(
        output=output,
        result=result,
        customer_ref=customer_ref,
        case_ref=case_reference,
        proved=ProvedAgainst(proofs.checkpoint_id, proofs.tree_size, proofs.root),
        # For the audit event, with the checkpoint; "pdf_sha256": the PDF inside a ZIP.
        details={
            "items": n_items,
            "pages": pages,
            "from": date_from.isoformat() if date_from else None,
            "to": date_to.isoformat() if date_to else None,
            "signed": signing_configured(config),
            "placeholders": [p.number for p in placeholders],
            "pdf_sha256": digest,
        },
    )


def _give_back_memory() -> None:
    """Collect garbage and hand the freed memory back to the system (glibc keeps it
    otherwise): what the records and views took is not held while the PDF is written."""
    gc.collect()
    try:
        # The running program's own symbols (no ctypes.util.find_library: it forks).
        ctypes.CDLL(None).malloc_trim(0)
    except (OSError, AttributeError):
        pass  # not glibc: nothing to do


class _BlobReader:
    """Reads one of the store's blobs when the dossier is written, each in a short
    session of its own: on SQLite every transaction holds the writer lock, which an
    export must not keep while it writes the PDF (imports would wait)."""

    def __init__(self, store: Store) -> None:
        self._store = store

    def __call__(self, digest: str) -> bytes:
        with self._store.session() as session:
            return read_blob(session, digest)


def _is_open(hours: OpeningHours | None) -> Callable[[dt.datetime, str], bool] | None:
    """Whether a channel was open at an instant; a channel without hours is always open."""
    if hours is None:
        return None

    def is_open(at: dt.datetime, channel: str) -> bool:
        verdict = hours.check(channel, at)
        return verdict is None or verdict.open

    return is_open


def _documents(
    session: Any, case: Case | None, builder: ViewBuilder, fmt: Formatter
) -> tuple[list[dict[str, Any]], list[bytes]]:
    documents: list[dict[str, Any]] = []
    blobs: list[bytes] = []
    if case is None:
        return documents, blobs
    doc: CaseDocument
    for doc in case.documents:
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
        blobs.append(data)
    return documents, blobs


def _common(
    _: Callable[[str], str],
    fmt: Formatter,
    language: str,
    timeline: Timeline,
    case: Case | None,
    generated: dt.datetime,
    company: str,
) -> dict[str, Any]:
    """What every part's template is given (the cover's own views are added to it)."""
    customer = timeline.customer
    kinds = (ItemKind.EMAIL, ItemKind.CALL, ItemKind.INCIDENT, ItemKind.AGENT_PAUSE)
    counts = {k: len(timeline.of_kind(k)) for k in kinds}
    if timeline.start or timeline.end:
        last = timeline.end - dt.timedelta(seconds=1) if timeline.end else None
        period = (
            f"{fmt.day(timeline.start) if timeline.start else '…'} – "
            f"{fmt.day(last) if last else '…'}"
        )
    else:
        first, last_at = timeline.span
        period = _("the whole history")
        if first and last_at:
            period += f" ({fmt.day(first)} – {fmt.day(last_at)})"
    identifiers = ", ".join(
        i.value
        for kind in (IdentifierKind.EMAIL, IdentifierKind.PHONE)
        for i in customer.identifiers
        if i.kind is kind
    )
    doc_ref = case.reference if case else f"{_('Customer')} {customer.ref}"
    kind_label = {
        "email": _("Email"),
        "call": _("Call"),
        "incident": _("Incident"),
        "agent_pause": _("Agent pause"),
    }
    return {
        "lang": language,
        "css": (templates_dir() / "dossier.css").read_text(encoding="utf-8"),
        "version": __version__,
        "software": dossier_software(),
        "created": iso_utc(generated),
        "doc_title": f"{_('Customer contact history')} – {customer.name} ({customer.ref})",
        "fmt": fmt,
        "day_label": fmt.day,
        "kind_label": kind_label,
        "company": company,
        "customer": customer,
        "identifiers": identifiers,
        "case": case,
        "authority": authority_name(case.authority, language) if case else None,
        "case_received": fmt.day(case.received) if case and case.received else None,
        "case_deadline": fmt.day(case.deadline) if case and case.deadline else None,
        "period": period,
        "generated": fmt.local(generated),
        "counts": counts,
        "service_counts": timeline.service_counts(),
        "zone": fmt.zone.key,
        "doc_ref": doc_ref,
    }


def _context(
    _: Callable[[str], str],
    common: dict[str, Any],
    exhibits: list[Exhibit],
    documents: list[dict[str, Any]],
    document_bytes: list[bytes],
    embedded: list[Embedded],
    inserts_from_exhibits: list[Insert],
) -> Context:
    outline_titles = {
        "cover": _("Cover"),
        "claims": _("The customer's claims"),
        "summary": _("Summary"),
        "reachability": _("Reachability"),
        "absence": _("Evidence of absence"),
        "selection": _("The customer's identifiers and the rules of selection"),
        "completeness": _("Completeness of the sources"),
        "index": _("Index of exhibits"),
        "items": _("Exhibits in time order"),
        "manifest": _("Embedded original files"),
        "appendices": _("Appendices"),
    }
    inserts = list(inserts_from_exhibits)
    inserts += [
        Insert(f"slip-{n}", data, doc["pages"])
        for n, (doc, data) in enumerate(zip(documents, document_bytes, strict=True), start=1)
    ]
    return Context(
        common,
        [(f"{ex.number} {ex.title}", ex.anchor) for ex in exhibits],
        documents,
        document_bytes,
        embedded,
        inserts,
        common["doc_ref"],
        _("page"),
        outline_titles,
    )


def _ok(result: Path | Failure, what: str) -> Path:
    if isinstance(result, Failure):
        raise EvidenceError(f"could not render the {what}: {result.kind} {result.detail}".strip())
    return result


def _front_pieces(common: dict[str, Any]) -> list[dict[str, Any]]:
    """The front matter in order, long tables in slices: the cover, the claims with the
    summary, the customer's attempts, the evidence of absence, the completeness.
    Each piece has a ``weight`` (about a table row's height) and the exhibits it links to."""
    summary_links = {n for c in common["claims"] for f in c["facts"] for n in f["links"]}
    summary_links |= {n for r in common["summary"]["rows"] for n in r["links"]}
    pieces: list[dict[str, Any]] = [
        {"kind": "head", "weight": 0, "links": set()},
        {"kind": "summary", "weight": FRONT_HEAD_WEIGHT, "links": summary_links},
    ]
    reach = common["reachability"]
    if reach is not None:
        for kind, rows, per_row in (
            ("attempts", reach["attempts"], 1),
            ("absence", reach["absence"], ABSENCE_ROW_WEIGHT),
        ):
            slices = _slices(rows, max(1, FRONT_PART_WEIGHT // per_row))
            for n, part_rows in enumerate(slices):
                links = {a["exhibit"] for a in part_rows if a["exhibit"]}
                links |= {x for a in part_rows for x in a.get("links", ())}
                pieces.append(
                    {
                        "kind": kind,
                        "rows": part_rows,
                        "first": n == 0,
                        "last": n == len(slices) - 1,
                        "weight": len(part_rows) * per_row,
                        "links": links,
                        # The end of a long table: a new contact changes it, so it is a
                        # part of its own and short (see _slices).
                        "own_part": n == len(slices) - 1 > 0,
                    }
                )
    pieces.append(
        {"kind": "completeness", "weight": 3 * len(common["completeness"]), "links": set()}
    )
    return pieces


def _slices(rows: list[dict[str, Any]], step: int) -> list[list[dict[str, Any]]]:
    """A table's rows in slices of ``step``, but the last, unfinished block of ``step``
    in slices of a third of it: new contacts are added at the end, so a re-export renders
    a short slice again rather than up to ``step`` rows (a slice starts on a new page, so
    the end of a long table has a page break every ``step // 3`` rows)."""
    whole = len(rows) - len(rows) % step
    tail = max(1, step // 3)
    slices = [rows[i : i + step] for i in range(0, whole, step)]
    slices += [rows[i : i + tail] for i in range(whole, len(rows), tail)]
    return slices or [[]]


def _front_groups(common: dict[str, Any]) -> list[list[dict[str, Any]]]:
    """The front matter's parts: the cover alone (it shows the generation time and the
    checkpoint, so it is rendered for every export: one page is quick), then consecutive
    pieces up to ``FRONT_PART_WEIGHT`` rows a part, so that a long history's tables are
    laid out on both cores in parts of a few pages (one WeasyPrint document of thousands
    of table rows takes many minutes) and a short one stays one part, and the completeness
    of the sources alone: it shows when each source was last imported, so it changes with
    every import, and the evidence of absence before it need not be rendered again. The
    last slice of a long table is a part of its own too: a new contact changes it."""
    head, *pieces = _front_pieces(common)
    groups: list[list[dict[str, Any]]] = [[head]]
    weight = 0
    for piece in pieces:
        if (
            len(groups) == 1
            or piece.get("own_part")
            or groups[-1][-1].get("own_part")
            or piece["kind"] == "completeness"
            or weight + piece["weight"] > FRONT_PART_WEIGHT
        ):
            groups.append([])
            weight = 0
        groups[-1].append(piece)
        weight += piece["weight"]
    return groups


def _front_html(
    env: Environment,
    common: dict[str, Any],
    timeless: dict[str, Any],
    group: list[dict[str, Any]],
    n: int,
) -> str:
    """Part ``n`` of the front matter. Only the first (the cover) shows the generation
    time and the checkpoint; the others are cached like the exhibits (the claims and the
    summary change only with the evidence)."""
    shown = ("claims", "summary", "reachability", "selection", "completeness")
    later = timeless | {k: common[k] for k in shown}
    return env.get_template("cover.html.j2").render(
        **(common if n == 0 else later),
        pieces=group,
        linked=sorted(set().union(*(p["links"] for p in group))),
    )


FRONT_ROW_COST = 500.0  # about the HTML characters per front-matter row: orders the parts


def _front_job(
    env: Environment,
    common: dict[str, Any],
    timeless: dict[str, Any],
    group: list[dict[str, Any]],
    n: int,
) -> LazyJob:
    """Part ``n`` of the front matter, its HTML made when its turn comes: a long history's
    attempts tables are MBs of HTML, and most parts wait for a worker."""
    return LazyJob(
        lambda: Job(_front_html(env, common, timeless, group, n)),
        FRONT_ROW_COST * (1 + sum(piece["weight"] for piece in group)),
    )


def _index_parts(exhibits: Sequence[Exhibit]) -> list[list[Exhibit]]:
    """The index rows in parts of whole pages (rows have a fixed height), so that a new
    exhibit at the end renders the last part again and no other."""
    first = INDEX_ROWS_FIRST + (INDEX_PART_PAGES - 1) * INDEX_ROWS_PAGE
    parts = [list(exhibits[:first])]
    step = INDEX_PART_PAGES * INDEX_ROWS_PAGE
    for start in range(first, len(exhibits), step):
        parts.append(list(exhibits[start : start + step]))
    return parts


def _back_htmls(
    env: Environment, timeless: dict[str, Any], context: Context, verification: Any
) -> list[str]:
    """The list of embedded files in parts (the exhibits' originals change only when the
    exhibits do), then the rest of the list, how to verify, and the appendices' slips."""
    template = env.get_template("back.html.j2")
    of_exhibits = [e for e in context.embedded if e.exhibit]
    others = [e for e in context.embedded if not e.exhibit]
    htmls = [
        template.render(
            **timeless,
            embedded=of_exhibits[start : start + MANIFEST_PART_ROWS],
            first=(start == 0),
            last=False,
            documents=[],
            verification=verification,
        )
        for start in range(0, len(of_exhibits), MANIFEST_PART_ROWS)
    ]
    htmls.append(
        template.render(
            **timeless,
            embedded=others,
            first=not htmls,
            last=True,
            documents=context.documents,
            verification=verification,
        )
    )
    return htmls


def _rescue(
    renderer: ChunkRenderer,
    chunks: list[list[Exhibit]],
    results: list[Path | Failure],
    chunk_html: Callable[[Sequence[Exhibit], bool], str],
    context: Context,
    limits: RenderLimits,
    _: Callable[[str], str],
) -> tuple[list[Placeholder], list[assemble.Part]]:
    """Chunks that failed: render each of their exhibits alone to find the culprits, put a
    placeholder in place of each, and render those chunks again."""
    failed = [n for n, r in enumerate(results) if isinstance(r, Failure)]
    placeholders: list[Placeholder] = []
    if failed:
        singles = [(n, i) for n in failed for i in range(len(chunks[n]))]
        alone = renderer.render(
            [Job(chunk_html([chunks[n][i]], False), limited=True) for n, i in singles]
        )
        chunks = [list(c) for c in chunks]
        for (n, i), result in zip(singles, alone, strict=True):
            if not isinstance(result, Failure):
                continue
            exhibit = chunks[n][i]
            files = [e for e in context.embedded if e.exhibit == exhibit.number]
            placeholder = Placeholder(exhibit.number, exhibit.title, result, files)
            placeholders.append(placeholder)
            chunks[n][i] = dataclasses.replace(
                exhibit, placeholder=_placeholder_view(placeholder, limits, _)
            )
        again = renderer.render([Job(chunk_html(chunks[n], n == 0), limited=True) for n in failed])
        for n, result in zip(failed, again, strict=True):
            results[n] = result
    parts: list[assemble.Part] = []
    for n, result in enumerate(results):
        parts.append(assemble.open_part(_ok(result, f"exhibits of {chunks[n][0].day}")))
    return placeholders, parts


def _placeholder_view(
    placeholder: Placeholder, limits: RenderLimits, _: Callable[[str], str]
) -> dict[str, Any]:
    failure = placeholder.failure
    if failure.kind == "time":
        reason = _(
            "This exhibit could not be shown: laying out its pages took longer than "
            "the limit of {seconds} seconds."
        ).format(seconds=f"{limits.seconds:g}")
    elif failure.kind == "memory":
        reason = _(
            "This exhibit could not be shown: laying out its pages needed more memory "
            "than the limit of {megabytes} MB."
        ).format(megabytes=limits.memory_mb)
    else:
        reason = _("This exhibit could not be shown: the renderer failed on it ({detail}).").format(
            detail=failure.detail or failure.kind
        )
    where = _(
        "Nothing is left out: the original is embedded in this PDF unchanged, as the file "
        "listed below. Extract it with pdfdetach -saveall and check its SHA-256."
    )
    files = [{"name": f.name, "sha256": f.sha256} for f in placeholder.files]
    return {"reason": reason, "where": where, "files": files}


def _page_seal(
    key: Ed25519PrivateKey,
    *,
    manifest_sha256: str,
    checkpoint: dict[str, Any],
    description: str,
) -> Callable[[Path], list[assemble.EmbeddedFile]]:
    """What signs the assembled pages: reads them back, gives the files to embed."""

    def seal(written: Path) -> list[assemble.EmbeddedFile]:
        with pikepdf.open(written) as pdf:
            digests = page_digests(pdf)
        sealed = seal_pages(digests, key, manifest_sha256=manifest_sha256, checkpoint=checkpoint)
        return [
            assemble.EmbeddedFile(name, functools.partial(lambda d: [d], data), mime, description)
            for name, data, mime in sealed.files()
        ]

    return seal


def _assemble(
    parts: list[assemble.Part],
    context: Context,
    generated: dt.datetime,
    font: assemble.StampFont,
    target: Path,
    seal: Callable[[Path], list[assemble.EmbeddedFile]] | None = None,
) -> int:
    """Write the dossier to ``target`` (not yet flushed to the disk); its number of pages."""
    # Appended PDFs (the case's documents, PDF attachments) follow their slip sheets.
    layout = assemble.plan(
        parts, [assemble.Appended(i.anchor, i.data, i.max_pages) for i in context.inserts]
    )
    anchors = layout.anchors
    # Each index row's page number goes where the row's empty page cell is: the index
    # parts do not depend on the page numbers, so they are cached like the exhibits.
    numbers: dict[int, list[tuple[float, float, str]]] = {}
    for name in [n for n in anchors if n.startswith(PAGE_OF)]:
        index, x, y = anchors.pop(name)
        where = anchors.get(name[len(PAGE_OF) :])
        if where is not None:
            numbers.setdefault(index, []).append((x + INDEX_PAGE_CELL, y, str(where[0] + 1)))
    return assemble.write(
        target,
        layout,
        assemble.Stamp(font, context.doc_ref, context.page_word, numbers),
        _outline(context),
        (
            assemble.EmbeddedFile(e.name, e.chunks, e.mime_type, e.description)
            for e in context.embedded
        ),
        generated.astimezone(dt.UTC).strftime("D:%Y%m%d%H%M%SZ"),
        seal,
    )


def _stamp_sample_html(env: Environment, doc_ref: str, page_word: str) -> str:
    glyphs = "".join(sorted(set(doc_ref + page_word + "0123456789/") - {" "}))
    return env.get_template("stamp.html.j2").render(glyphs=glyphs)


def _outline(context: Context) -> list[assemble.OutlineEntry]:
    titles = context.outline_titles
    entries = [
        assemble.OutlineEntry(titles[name], name)
        for name in (
            "cover",
            "claims",
            "summary",
            "reachability",
            "absence",
            "selection",
            "completeness",
            "index",
        )
    ]
    items = assemble.OutlineEntry(titles["items"], "items")
    for title, anchor in context.bookmarks:
        items.children.append(assemble.OutlineEntry(title, anchor))
    entries.append(items)
    entries.append(assemble.OutlineEntry(titles["manifest"], "manifest"))
    for n, doc in enumerate(context.documents, start=1):
        entries.append(
            assemble.OutlineEntry(f"{titles['appendices']} {n}: {doc['title']}", f"slip-{n}")
        )
    return entries
