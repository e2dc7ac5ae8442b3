"""The dossier: one PDF/A-3b with a cover, the index, every item in time order, the
originals embedded, and the case's PDFs appended whole.

Rendering never reaches the network or the disk on behalf of an email: the HTML
of a message is sanitised first (``mailbody``) and the renderer's URL fetcher
refuses every URL but ``data:``.

Exhibits are rendered in chunks (a local day, at most ``CHUNK_ITEMS`` items) on
all cores, and each chunk's PDF is cached under EVIDENCE_HOME by the SHA-256 of
its HTML, so a re-export after one new item renders one chunk. The parts are
assembled with pikepdf (``assemble``), which also writes the page stamps, the
bookmarks and the links across parts.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import io
import multiprocessing
import os
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pikepdf
from jinja2 import Environment, FileSystemLoader, StrictUndefined, select_autoescape

from evidence import __version__
from evidence.authorities import authority_name
from evidence.cases import current_claims, load_case
from evidence.completeness import completeness
from evidence.errors import InvalidInput
from evidence.files import private_dir, write_atomic
from evidence.hours import OpeningHours, opening_hours
from evidence.ingest.mail import mail_limits
from evidence.render import assemble, front
from evidence.render.i18n import Formatter, check_language, translations
from evidence.render.views import Embedded, Exhibit, Insert, ViewBuilder
from evidence.reports import customer_reachability, threshold_from_config
from evidence.store.audit import log_event
from evidence.store.blobs import read_blob
from evidence.store.db import PROJECT_ROOT, Store
from evidence.store.models import Case, CaseDocument, IdentifierKind
from evidence.summary import summarize
from evidence.timeline import Timeline, build_timeline
from evidence.timeutil import iso_utc, utcnow
from evidence.verify.manifest import prepare_dossier_proofs
from evidence.verify.pades import sign_pdf, signing_configured
from evidence.workers import die_with_parent

TEMPLATES_DIR = PROJECT_ROOT / "templates"
CHUNK_ITEMS = 40
# Bump when a change in code (not in templates or data) changes the rendered pages.
RENDER_VERSION = "1"

__all__ = ["Embedded", "ExportResult", "SealedFetcher", "export_dossier"]


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
class ExportResult:
    pages: int
    items: int
    sha256: str
    embedded: list[Embedded] = field(default_factory=list)
    refused_urls: list[str] = field(default_factory=list)
    parts_rendered: int = 0
    parts_cached: int = 0
    checkpoint_id: int | None = None  # the signed checkpoint printed on the cover
    root: str | None = None
    signed: bool = False


# --- rendering HTML to PDF (also in worker processes) -----------------------------------


def render_pdf(html: str, pdf_variant: str | None = None) -> tuple[bytes, list[str]]:
    """HTML to PDF with the sealed fetcher; returns the PDF and the URLs it refused."""
    from weasyprint import HTML

    fetcher = SealedFetcher()
    options: dict[str, Any] = {}
    if pdf_variant:
        options["pdf_variant"] = pdf_variant
    pdf = HTML(string=html, url_fetcher=fetcher, base_url=None).write_pdf(**options)
    assert pdf is not None
    return pdf, fetcher.refused


def _render_indexed(job: tuple[int, str]) -> tuple[int, bytes, list[str]]:
    index, html = job
    pdf, refused = render_pdf(html)
    return index, pdf, refused


def _cache_key(html: str) -> str:
    import weasyprint

    seed = f"{weasyprint.__version__}\0{RENDER_VERSION}\0".encode()
    return hashlib.sha256(seed + html.encode("utf-8")).hexdigest()


class ChunkRenderer:
    """Renders many HTML documents, from the cache when it can, in parallel when it must."""

    def __init__(self, cache_dir: Path | None, jobs: int) -> None:
        self.cache_dir = cache_dir
        self.jobs = max(1, jobs)
        self.rendered = 0
        self.cached = 0
        self.refused: list[str] = []

    def render(
        self, htmls: Sequence[str], progress: Callable[[int], None] | None = None
    ) -> list[bytes]:
        results: list[bytes | None] = [None] * len(htmls)
        todo: list[int] = []
        keys = [_cache_key(h) for h in htmls]
        for i, key in enumerate(keys):
            cached = self._read_cache(key)
            if cached is not None:
                results[i] = cached
                self.cached += 1
                if progress:
                    progress(1)
            else:
                todo.append(i)
        if len(todo) <= 1 or self.jobs == 1:
            for i in todo:
                results[i] = self._done(keys[i], *render_pdf(htmls[i]))
                if progress:
                    progress(1)
        else:
            context = multiprocessing.get_context("forkserver")
            context.set_forkserver_preload(["weasyprint"])
            # multiprocessing.Pool, not ProcessPoolExecutor: on Python 3.11 the executor
            # can hang when a worker retires after max_tasks_per_child. Retiring workers
            # gives WeasyPrint's memory back; each worker dies with this process.
            with context.Pool(
                min(self.jobs, len(todo)), initializer=die_with_parent, maxtasksperchild=8
            ) as pool:
                jobs = pool.imap_unordered(_render_indexed, [(i, htmls[i]) for i in todo])
                for i, pdf, refused in jobs:
                    results[i] = self._done(keys[i], pdf, refused)
                    if progress:
                        progress(1)
        self.rendered += len(todo)
        return [r for r in results if r is not None]

    def _done(self, key: str, pdf: bytes, refused: list[str]) -> bytes:
        self.refused.extend(refused)
        if self.cache_dir is not None and not refused:
            write_atomic(private_dir(self.cache_dir) / f"{key}.pdf", pdf)
        return pdf

    def _read_cache(self, key: str) -> bytes | None:
        if self.cache_dir is None:
            return None
        path = self.cache_dir / f"{key}.pdf"
        try:
            return path.read_bytes()
        except FileNotFoundError:
            return None


# --- building the parts -----------------------------------------------------------------


def _environment(translate: Any) -> Environment:
    env = Environment(
        loader=FileSystemLoader(str(TEMPLATES_DIR)),
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
    exhibits: list[Exhibit]
    documents: list[dict[str, Any]]
    document_bytes: list[bytes]
    embedded: list[Embedded]
    inserts: list[Insert]
    doc_ref: str
    page_word: str
    outline_titles: dict[str, str]


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
) -> ExportResult:
    config = store.config
    language = check_language(language or config.language)
    translate = translations(language)
    fmt = Formatter(language, config.zone)
    generated = generated_at or utcnow()
    env = _environment(translate)
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
        hours = opening_hours(config)
        timeline = build_timeline(
            session, customer_ref, config.zone, date_from, date_to, hours=hours
        )
        builder = ViewBuilder(session, fmt, translate.gettext, mail_limits=mail_limits(config))
        exhibits = builder.exhibits(timeline)
        claims = current_claims(case) if case is not None else []
        found = completeness(session, config.zone, timeline.start, timeline.end)
        reach = customer_reachability(
            session,
            timeline.items,
            config.zone,
            hours=hours,
            threshold=threshold_from_config(config),
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
            zone=config.zone,
            generated=generated,
            label=translate.gettext("verification"),
        )
        for proof_file in proofs.files:
            builder.embed(
                proof_file.name,
                proof_file.data,
                proof_file.mime_type,
                proof_file.description,
                translate.gettext("verification"),
            )
        context = _context(
            translate.gettext,
            fmt,
            language,
            timeline,
            exhibits,
            case,
            documents,
            document_bytes,
            builder.embedded,
            builder.inserts,
            generated,
            config.company_name,
        )
    exhibit_of = front.exhibit_numbers(exhibits)
    summary = summarize(
        timeline,
        config.zone,
        claims,
        is_open=_is_open(hours),
    )
    context.common.update(
        verification=proofs.view,
        claims=front.claims_view(claims, summary, exhibit_of, fmt, translate.gettext),
        summary=front.summary_view(summary, exhibit_of, timeline, fmt, translate.gettext),
        completeness=front.completeness_view(found, fmt, translate.gettext),
        reachability=front.reachability_view(reach, exhibit_of, fmt, translate.gettext),
    )
    context.common["linked"] = sorted(
        {n for c in context.common["claims"] for f in c["facts"] for n in f["links"]}
        | {n for r in context.common["summary"]["rows"] for n in r["links"]}
        | front.reachability_links(context.common["reachability"])
    )
    renderer = ChunkRenderer(
        config.home / "cache" / "render" if use_cache else None,
        jobs or min(2, os.cpu_count() or 1),
    )
    # Only the cover carries the generation time: every other part's HTML, and so
    # its cache key, depends on the evidence alone.
    timeless = {
        k: v
        for k, v in context.common.items()
        if k not in ("claims", "summary", "reachability", "completeness", "linked", "verification")
    } | {"created": ""}
    chunk_htmls = [
        env.get_template("items.html.j2").render(**timeless, exhibits=chunk, first_chunk=(n == 0))
        for n, chunk in enumerate(plan_chunks(exhibits))
    ]
    back_html = env.get_template("back.html.j2").render(
        **timeless, documents=documents, embedded=context.embedded, verification=proofs.view
    )
    rendered = renderer.render([*chunk_htmls, back_html], progress)
    chunk_parts = [assemble.open_part(pdf) for pdf in rendered[:-1]]
    back = assemble.open_part(rendered[-1])
    cover = _render_cover(env, context)
    index = _render_index(env, timeless, context, renderer, len(cover.pdf.pages), chunk_parts)
    stamp_font = assemble.StampFont(renderer.render([_stamp_sample_html(env, context)])[0])
    final = _assemble([cover, index, *chunk_parts, back], context, generated, stamp_font)
    subject = f"customer {customer_ref}" + (f", case {case.reference}" if case else "")
    final = sign_pdf(final, config, reason=f"evidence dossier: {subject}")
    output.parent.mkdir(parents=True, exist_ok=True)
    write_atomic(output, final, mode=0o666)  # the umask decides, as for any file the user asks for
    with pikepdf.open(io.BytesIO(final)) as check:
        pages = len(check.pages)
    digest = hashlib.sha256(final).hexdigest()
    # The export is itself evidence: who, when, what, and the SHA-256 of the PDF.
    log_event(
        store,
        action="export",
        subject=f"{subject} -> {output}",
        output_sha256=digest,
        details={
            "checkpoint_id": proofs.checkpoint_id,
            "tree_size": proofs.tree_size,
            "root": proofs.root,
            "items": len(timeline.items),
            "pages": pages,
            "from": date_from.isoformat() if date_from else None,
            "to": date_to.isoformat() if date_to else None,
            "signed": signing_configured(config),
        },
    )
    return ExportResult(
        pages=pages,
        items=len(timeline.items),
        sha256=digest,
        checkpoint_id=proofs.checkpoint_id,
        root=proofs.root,
        signed=signing_configured(config),
        embedded=context.embedded,
        refused_urls=renderer.refused,
        parts_rendered=renderer.rendered,
        parts_cached=renderer.cached,
    )


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


def _context(
    _: Callable[[str], str],
    fmt: Formatter,
    language: str,
    timeline: Timeline,
    exhibits: list[Exhibit],
    case: Case | None,
    documents: list[dict[str, Any]],
    document_bytes: list[bytes],
    embedded: list[Embedded],
    inserts_from_exhibits: list[Insert],
    generated: dt.datetime,
    company: str,
) -> Context:
    customer = timeline.customer
    counts = {k: len(timeline.of_kind(k)) for k in ("email", "call", "incident", "agent_pause")}
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
    common = {
        "lang": language,
        "css": (TEMPLATES_DIR / "dossier.css").read_text(encoding="utf-8"),
        "version": __version__,
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
    outline_titles = {
        "cover": _("Cover"),
        "claims": _("The customer's claims"),
        "summary": _("Summary"),
        "reachability": _("Reachability"),
        "absence": _("Evidence of absence"),
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
        exhibits,
        documents,
        document_bytes,
        embedded,
        inserts,
        doc_ref,
        _("page"),
        outline_titles,
    )


def _render_cover(env: Environment, context: Context) -> assemble.Part:
    """The cover: the PDF/A-3b base of the dossier (its metadata and output intent)."""
    html = env.get_template("cover.html.j2").render(**context.common)
    pdf, _refused = render_pdf(html, pdf_variant="pdf/a-3b")
    return assemble.open_part(pdf)


# Index rows have a fixed height; this is how many fit on the first page and the rest.
INDEX_ROWS_FIRST, INDEX_ROWS_PAGE = 55, 58


def _render_index(
    env: Environment,
    timeless: dict[str, Any],
    context: Context,
    renderer: ChunkRenderer,
    cover_pages: int,
    chunk_parts: list[assemble.Part],
) -> assemble.Part:
    """The index prints each exhibit's page, and those pages come after the index itself:
    render with a guess of its own length, and again if the guess was wrong."""
    local_pages: dict[str, int] = {}
    offset = 0
    for part in chunk_parts:
        for anchor, (index, _x, _y) in part.anchors.items():
            local_pages[anchor] = offset + index
        offset += len(part.pdf.pages)
    rows = len(context.exhibits)
    guess = 1 + max(0, -(-(rows - INDEX_ROWS_FIRST) // INDEX_ROWS_PAGE))
    template = env.get_template("index.html.j2")
    for _attempt in range(4):
        first = cover_pages + guess
        pages = {a: str(first + i + 1) for a, i in local_pages.items()}
        html = template.render(**timeless, exhibits=context.exhibits, pages=pages)
        part = assemble.open_part(renderer.render([html])[0])
        if len(part.pdf.pages) == guess:
            break
        guess = len(part.pdf.pages)
    return part


def _assemble(
    parts: list[assemble.Part],
    context: Context,
    generated: dt.datetime,
    font: assemble.StampFont,
) -> bytes:
    base, *rest = parts
    out = base.pdf  # the PDF/A-3b cover: its metadata and output intent carry over
    anchors: dict[str, tuple[int, float, float]] = dict(base.anchors)
    sources: list[pikepdf.Pdf] = []
    for part in rest:
        offset = len(out.pages)
        with warnings.catch_warnings():
            # Named destinations are rebuilt for the whole document below.
            warnings.simplefilter("ignore", pikepdf.exceptions.PageCopyWarning)
            out.pages.extend(part.pdf.pages)
        sources.append(part.pdf)
        # Parts come in page order; the exhibits come after the index, so an
        # exhibit's own anchor replaces the index's zero-height stand-in.
        for name, (index, x, y) in part.anchors.items():
            anchors[name] = (offset + index, x, y)
    # Appended PDFs (the case's documents, PDF attachments) follow their slip
    # sheets, unchanged; from the last page backwards so earlier indexes hold.
    inserts = [(anchors[i.anchor][0], i) for i in context.inserts if i.anchor in anchors]
    for slip_page, insert in sorted(inserts, key=lambda pair: pair[0], reverse=True):
        src = pikepdf.open(io.BytesIO(insert.data))
        sources.append(src)
        pages = list(src.pages)[: insert.max_pages]
        for i, page in enumerate(pages):
            out.pages.insert(slip_page + 1 + i, page)
        for name, (index, x, y) in list(anchors.items()):
            if index > slip_page:
                anchors[name] = (index + len(pages), x, y)
    assemble.build_destinations(out, anchors)
    assemble.build_outline(out, _outline(context), anchors)
    assemble.stamp_pages(out, font, context.doc_ref, context.page_word)
    assemble.pdfa_fixups(out)
    pdf_date = generated.astimezone(dt.UTC).strftime("D:%Y%m%d%H%M%SZ")
    assemble.embed_files(
        out,
        [(e.name, e.data, e.mime_type, e.description) for e in context.embedded],
        pdf_date,
    )
    buffer = io.BytesIO()
    out.save(buffer, deterministic_id=True)
    for src in sources:
        src.close()
    out.close()
    return buffer.getvalue()


def _stamp_sample_html(env: Environment, context: Context) -> str:
    glyphs = "".join(sorted(set(context.doc_ref + context.page_word + "0123456789/") - {" "}))
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
            "completeness",
            "index",
        )
    ]
    items = assemble.OutlineEntry(titles["items"], "items")
    for ex in context.exhibits:
        items.children.append(assemble.OutlineEntry(f"{ex.number} {ex.title}", ex.anchor))
    entries.append(items)
    entries.append(assemble.OutlineEntry(titles["manifest"], "manifest"))
    for n, doc in enumerate(context.documents, start=1):
        entries.append(
            assemble.OutlineEntry(f"{titles['appendices']} {n}: {doc['title']}", f"slip-{n}")
        )
    return entries
