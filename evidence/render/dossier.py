"""The dossier: one PDF/A-3b with a cover, the index, every item in time order, the
originals embedded, and the case's PDFs appended whole.

Rendering never reaches the network or the disk on behalf of an email: the HTML
of a message is sanitised first (``mailbody``) and the renderer's URL fetcher
refuses every URL but ``data:``.

An export is a sequence of stages, each handing the next a typed result:

1. gather (:mod:`evidence.render.gather`), under the writer lock: the case, the timeline,
   the reports, the records to prove -> :class:`~evidence.render.gather.Gathered`;
2. views (:mod:`evidence.render.content`): the templates' data -> ``FrontMatter``, ``Views``;
3. proofs (:mod:`evidence.proofs.manifest`), in the same session: the signed checkpoint,
   manifest.json with every inclusion proof -> ``DossierProofs``;
4. parts (:mod:`evidence.render.parts`): the parts rendered on all cores, each cached
   under EVIDENCE_HOME by the SHA-256 of its HTML, so that a re-export after one new item
   renders a few parts -> ``RenderedParts``;
5. assembled (:func:`_assemble`, :mod:`evidence.render.assemble`): the dossier written
   from the parts, one at a time, with the page stamps, the bookmarks, the links across
   parts, the embedded originals and the pages' own signature -> :class:`_Assembled`;
6. signed (:func:`_sign`): the PAdES signature, if configured, and the file in place;
7. recorded (:func:`_record`): the audit event and the record of exports.

The front matter after the cover goes to the workers right after the views of it are
made, and renders while the exhibits' views and the proofs are made.
"""

from __future__ import annotations

import ctypes
import dataclasses
import datetime as dt
import functools
import gc
import os
import tempfile
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pikepdf
from sqlalchemy.orm import Session

from evidence.config import Config
from evidence.errors import IntegrityFailure
from evidence.files import private_dir, replace_synced, write_atomic
from evidence.ingest.mail import mail_limits
from evidence.proofs.manifest import MANIFEST_NAME, DossierProofs, prepare_dossier_proofs
from evidence.proofs.pages import page_digests, seal_pages
from evidence.proofs.signing import sign_pdf, signing_configured
from evidence.records.exports import ProvedAgainst, check_output, file_digest, record_export
from evidence.render import assemble
from evidence.render.content import Locale, exhibit_views, front_views
from evidence.render.gather import Selection, Subject, gather
from evidence.render.package import package_zip
from evidence.render.parts import PartRenderer, Placeholder, RenderedParts
from evidence.render.pool import SCRATCH_PREFIX, ChunkRenderer, render_limits, start_workers
from evidence.render.software import dossier_software
from evidence.render.views import Embedded
from evidence.store.blobs import read_blob
from evidence.store.checkpoints import ensure_signing_key, write_checkpoint
from evidence.store.db import Store
from evidence.store.models import ExportRecord
from evidence.timeutil import utcnow

# Named destinations where the assembler writes an index row's page number.
PAGE_OF = "page-of-"
INDEX_PAGE_CELL = float(12 * assemble.MM)  # width of that cell (.index-row .p): right-aligned


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


@dataclass(frozen=True)
class _Options:
    """How to render: the language, the generation time, the workers and the cache."""

    generated_at: dt.datetime | None
    language: str | None
    jobs: int | None
    use_cache: bool
    progress: Callable[[int], None] | None


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
    write = functools.partial(
        _write_dossier,
        store,
        Selection(customer_ref, case_ref, date_from, date_to),
        _Options(generated_at, language, jobs, use_cache, progress),
    )
    if fmt == "zip":
        written = _write_zip(store.config, write, output, force, generated_at)
    else:
        written = write(output, force)
    with store.writing() as session:
        record = _record(session, store.config, written, output, arguments, fmt, by)
    return dataclasses.replace(written.result, sha256=record.sha256, export_id=record.id)


@dataclass(frozen=True)
class _Written:
    """A dossier written to ``output``, not recorded yet."""

    output: Path
    result: ExportResult
    subject: Subject
    proved: ProvedAgainst
    details: dict[str, Any]  # for the audit event


def _write_zip(
    config: Config,
    write: Callable[[Path, bool], _Written],
    output: Path,
    force: bool,
    generated_at: dt.datetime | None,
) -> _Written:
    """The BagIt ZIP of the dossier, its PDF made in a scratch folder that goes after."""
    # Named as the renderer's scratch folders are: one left by a killed export goes too.
    with tempfile.TemporaryDirectory(
        prefix=f"{SCRATCH_PREFIX}zip-", dir=private_dir(config.home / "cache")
    ) as scratch:
        # The PDF inside the bag is named after the ZIP.
        written = write(Path(scratch) / f"{output.stem}.pdf", True)
        check_output(output, fmt="zip", force=force)  # did it appear meanwhile?
        package_zip(
            written.output,
            written.result.embedded,
            output,
            created=generated_at,
            scratch=Path(scratch),
        )
    return written


def _write_dossier(
    store: Store, selection: Selection, options: _Options, output: Path, force: bool
) -> _Written:
    """The stages up to the file at ``output`` (see the module's documentation)."""
    config = store.config
    locale = Locale.of(options.language or config.language, config.zone)
    generated = options.generated_at or utcnow()
    start_workers()
    renderer = ChunkRenderer(
        config.home / "cache" / "render" if options.use_cache else None,
        options.jobs or min(2, os.cpu_count() or 1),
        render_limits(config),
        scratch_root=config.home / "cache",
    )
    with renderer:
        parts = PartRenderer(renderer, locale, options.progress)
        rendered, proofs, subject = _first_stages(store, parts, locale, selection, generated)
        # Nothing below needs the store's records, the exhibits' views or the templates'
        # data: they went with the stages that used them.
        _give_back_memory()
        seal = _page_seal(config, proofs, locale.gettext("verification"))
        # Written straight to a file beside the output: the dossier is never held whole.
        unsigned = output.with_name(f".{output.name}.{os.getpid()}.unsigned")
        try:
            assembled = _assemble(rendered, generated, unsigned, seal)
            # A file that appeared at ``output`` while the pages were made is not replaced.
            check_output(output, force=force)
            signed = _sign(assembled, config, output, subject)
        except BaseException:
            unsigned.unlink(missing_ok=True)
            raise
    return _written(signed, rendered, proofs, subject, renderer)


def _first_stages(
    store: Store, parts: PartRenderer, locale: Locale, selection: Selection, generated: dt.datetime
) -> tuple[RenderedParts, DossierProofs, Subject]:
    """Gather, views and proofs under the writer lock (a checkpoint signed for this export
    covers what it shows), then the parts rendered. What the first stages made goes when
    this returns: only the rendered parts, the proofs and the subject are kept."""
    config = store.config
    with store.writing() as session:
        gathered = gather(session, config, selection)
        front = front_views(gathered, locale, generated=generated, company=config.company_name)
        early = parts.start_front(front)
        # The originals are read again when the PDF is written, not held meanwhile.
        views = exhibit_views(
            session,
            gathered,
            front,
            locale,
            mail_limits=mail_limits(config),
            read_later=_BlobReader(store.session),
        )
        # Verification (evidence/verify): the signed checkpoint, each exhibit's
        # inclusion proof, and manifest.json, embedded with the originals.
        proofs = prepare_dossier_proofs(
            session,
            config,
            gathered.records,
            embedded=views.binding.embedded,
            zone=config.zone,
            generated=generated,
            label=locale.gettext("verification"),
            software={c.name: c.version for c in dossier_software()},
        )
    return parts.render(views, proofs, early), proofs, gathered.subject


def _give_back_memory() -> None:
    """Collect garbage and hand the freed memory back to the system (glibc keeps it
    otherwise): what the records and views took (100+ MB for a long history) is not held
    while the PDF is written."""
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

    def __init__(self, open_session: Callable[[], Session]) -> None:
        self._open_session = open_session

    def __call__(self, digest: str) -> bytes:
        with self._open_session() as session:
            return read_blob(session, digest)


# --- assembled, signed, recorded ------------------------------------------------------


@dataclass(frozen=True)
class _Assembled:
    """The dossier's pages written to ``path`` (beside the output), not signed yet."""

    path: Path
    pages: int


def _page_seal(
    config: Config, proofs: DossierProofs, description: str
) -> Callable[[Path], list[assemble.EmbeddedFile]]:
    """What signs the assembled pages with the store's key (pages.json, pages.sig), before
    any PAdES signature (see evidence/proofs/pages.py): reads them back, gives the files
    to embed."""
    key = ensure_signing_key(config)[0].private
    manifest_sha256 = next(f.sha256 for f in proofs.files if f.name == MANIFEST_NAME)
    checkpoint = {"id": proofs.checkpoint_id, "tree_size": proofs.tree_size, "root": proofs.root}

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
    rendered: RenderedParts,
    generated: dt.datetime,
    target: Path,
    seal: Callable[[Path], list[assemble.EmbeddedFile]] | None = None,
) -> _Assembled:
    """Write the dossier to ``target`` (not yet flushed to the disk)."""
    binding = rendered.binding
    # Appended PDFs (the case's documents, PDF attachments) follow their slip sheets.
    layout = assemble.plan(
        rendered.parts,
        [assemble.Appended(i.anchor, i.data, i.max_pages) for i in binding.inserts],
    )
    pages = assemble.write(
        target,
        layout,
        assemble.Stamp(
            rendered.stamp_font, binding.doc_ref, binding.page_word, _index_numbers(layout)
        ),
        binding.outline,
        (
            assemble.EmbeddedFile(e.name, e.chunks, e.mime_type, e.description)
            for e in binding.embedded
        ),
        generated.astimezone(dt.UTC).strftime("D:%Y%m%d%H%M%SZ"),
        seal,
    )
    return _Assembled(target, pages)


def _index_numbers(layout: assemble.Layout) -> dict[int, list[tuple[float, float, str]]]:
    """Each index row's page number, where the row's empty page cell is (its anchor is
    taken out of ``layout``): the index parts do not depend on the page numbers, so they
    are cached like the exhibits."""
    anchors = layout.anchors
    numbers: dict[int, list[tuple[float, float, str]]] = {}
    for name in [n for n in anchors if n.startswith(PAGE_OF)]:
        index, x, y = anchors.pop(name)
        where = anchors.get(name[len(PAGE_OF) :])
        if where is not None:
            numbers.setdefault(index, []).append((x + INDEX_PAGE_CELL, y, str(where[0] + 1)))
    return numbers


@dataclass(frozen=True)
class _Signed:
    """The dossier in place at ``path``; ``signed``: with a PAdES signature."""

    path: Path
    pages: int
    signed: bool


def _sign(assembled: _Assembled, config: Config, output: Path, subject: Subject) -> _Signed:
    """Put the assembled dossier at ``output``, with a PAdES signature if one is
    configured."""
    if not signing_configured(config):
        replace_synced(assembled.path, output)
        return _Signed(output, assembled.pages, False)
    signed = sign_pdf(
        assembled.path.read_bytes(), config, reason=f"evidence dossier: {subject.describe()}"
    )
    write_atomic(output, signed)  # owner-only, as the unsigned dossier: it is personal data
    assembled.path.unlink()
    return _Signed(output, assembled.pages, True)


def _written(
    signed: _Signed,
    rendered: RenderedParts,
    proofs: DossierProofs,
    subject: Subject,
    renderer: ChunkRenderer,
) -> _Written:
    """What the export gives back, and what its record keeps."""
    digest, _size = file_digest(signed.path)
    result = ExportResult(
        pages=signed.pages,
        items=subject.items,
        sha256=digest,
        checkpoint_id=proofs.checkpoint_id,
        root=proofs.root,
        tree_size=proofs.tree_size,
        signed=signed.signed,
        embedded=rendered.binding.embedded,
        refused_urls=renderer.refused,
        parts_rendered=renderer.rendered,
        parts_cached=renderer.cached,
        placeholders=rendered.placeholders,
        worker_rss_mb=round(renderer.worker_peak_mb, 1),
        worker_cpu_s=round(renderer.worker_cpu, 2),
    )
    # For the audit event, with the checkpoint; "pdf_sha256": the PDF inside a ZIP.
    details = {
        "items": subject.items,
        "pages": signed.pages,
        "from": subject.date_from.isoformat() if subject.date_from else None,
        "to": subject.date_to.isoformat() if subject.date_to else None,
        "signed": signed.signed,
        "placeholders": [p.number for p in rendered.placeholders],
        "pdf_sha256": digest,
    }
    proved = ProvedAgainst(proofs.checkpoint_id, proofs.tree_size, proofs.root)
    return _Written(signed.path, result, subject, proved, details)


def _record(
    session: Session,
    config: Config,
    written: _Written,
    output: Path,
    arguments: Mapping[str, Any],
    fmt: str,
    by: str | None,
) -> ExportRecord:
    """Record the export (audit event and record of exports, naming ``actor(by)``) and sign
    a checkpoint that covers the record. The caller holds the writer lock."""
    record = record_export(
        session,
        output=output,
        proved=written.proved,
        arguments=arguments,
        customer_ref=written.subject.customer_ref,
        case_ref=written.subject.case_ref,
        fmt=fmt,
        by=by,
        details=written.details,
    )
    write_checkpoint(session, config, "audit export")
    return record
