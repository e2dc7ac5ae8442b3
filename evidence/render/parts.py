"""The parts stage of an export: the dossier cut into parts, each rendered to a PDF on the
render workers (:mod:`evidence.render.pool`), from the cache when it can.

The parts: the cover alone (the only page that shows the generation time and the
checkpoint), the rest of the front matter in parts of about ``FRONT_PART_WEIGHT`` table
rows, the index in parts of whole pages, the exhibits in chunks of a local day (at most
``CHUNK_ITEMS``), the list of embedded files in parts of ``MANIFEST_PART_ROWS`` rows, and
the back matter. Each part's HTML, and so its cache key, depends on the evidence alone
(the cover's excepted), so a re-export after one new item renders a few parts again.

:meth:`PartRenderer.start_front` hands the front matter after the cover to the workers
as soon as its views are made, and it renders while the exhibits' views and the proofs
are made; :meth:`PartRenderer.render` renders the rest and gives the parts in the
dossier's order. An exhibit that cannot be rendered within the limits gets a
placeholder page (:class:`Placeholder`).
"""

from __future__ import annotations

import dataclasses
import gettext
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from jinja2 import Environment, FileSystemLoader, StrictUndefined, select_autoescape

from evidence.errors import EvidenceError
from evidence.proofs.manifest import DossierProofs
from evidence.render.assemble import Part, StampFont, open_part
from evidence.render.content import Binding, FrontMatter, Locale, Views
from evidence.render.pool import ChunkRenderer, Failure, Job, LazyJob, RenderLimits
from evidence.render.views import Embedded, Exhibit
from evidence.resources import templates_dir

CHUNK_ITEMS = 40
# Index rows have a fixed height: this many fit on its first page and on the others.
INDEX_ROWS_FIRST, INDEX_ROWS_PAGE = 55, 58
INDEX_PART_PAGES = 4  # the index is rendered in parts of this many pages
MANIFEST_PART_ROWS = 200  # and the list of embedded files in parts of this many rows
# The front matter is rendered in parts of about this many table rows (see front_groups);
# the claims with the summary count as FRONT_HEAD_WEIGHT rows, an entry of
# the evidence of absence (a heading and the phone system's lines) as ABSENCE_ROW_WEIGHT.
FRONT_PART_WEIGHT = 300
FRONT_HEAD_WEIGHT = 60
ABSENCE_ROW_WEIGHT = 4
CHUNK_COST = 2700.0  # about the HTML characters per exhibit: orders chunks among the parts
FRONT_ROW_COST = 500.0  # about the HTML characters per front-matter row: orders the parts

Progress = Callable[[int], None] | None
ChunkHtml = Callable[[Sequence[Exhibit], bool], str]
Rendered = list[Path | Failure]


@dataclass(frozen=True)
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


def template_environment(translate: gettext.NullTranslations) -> Environment:
    """The templates, in the language of ``translate``."""
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


@dataclass(frozen=True)
class FrontTickets:
    """The front matter's parts (each a group of pieces, the cover first), and the tickets
    of those after the cover and of the stamp font's sample, on their way."""

    groups: list[list[dict[str, Any]]]
    tickets: list[int]
    stamp: int


@dataclass(frozen=True)
class RenderedParts:
    """The dossier's parts, rendered, in order; the font of the page stamps; the exhibits
    shown by a placeholder; and what the assembler takes from the views and the proofs."""

    parts: list[Part]
    stamp_font: StampFont
    placeholders: list[Placeholder]
    binding: Binding


class PartRenderer:
    """The parts stage, on ``renderer`` (its workers, its cache)."""

    def __init__(self, renderer: ChunkRenderer, locale: Locale, progress: Progress) -> None:
        self.renderer = renderer
        self.env = template_environment(locale.translations)
        self._ = locale.gettext
        self.progress = progress

    def start_front(self, front: FrontMatter) -> FrontTickets:
        """Hand the front matter after the cover, and the stamp font's sample, to the
        workers. On a re-export after a new contact its longest part (the last slice of
        the customer's attempts) is rendered again."""
        groups = front_groups(front.common)
        tickets = self.renderer.submit(
            [
                _front_job(self.env, front, group, n)
                for n, group in enumerate(groups)
                if n > 0
            ]
            + [Job(_stamp_sample_html(self.env, front.common["doc_ref"], self._("page")))],
            self.progress,
        )
        stamp = tickets.pop()
        return FrontTickets(groups, tickets, stamp)

    def render(self, views: Views, proofs: DossierProofs, early: FrontTickets) -> RenderedParts:
        """Render the cover (now that the proofs are made), the index, the exhibits and the
        back matter, and wait for every part."""
        binding = _with_proofs(views.binding, proofs, self._("verification"))
        timeless = views.front.timeless
        cover = views.front.common | {"verification": proofs.view}
        # The cover first (on a re-export with nothing new it is the part that takes
        # longest, and it is the PDF/A-3b base of the dossier), then the rest, largest first.
        [cover_ticket] = self.renderer.submit(
            [Job(_front_html(self.env, cover, timeless, early.groups[0], 0), "pdf/a-3b")],
            self.progress,
        )
        chunks = plan_chunks(views.exhibits)
        chunk_html = self._chunk_html(timeless)
        index_htmls = self._index_htmls(timeless, views.exhibits)
        back_htmls = _back_htmls(self.env, timeless, binding, views.documents, proofs.view)
        tickets = self.renderer.submit(
            [
                *(Job(h) for h in index_htmls),
                *(_chunk_job(chunk_html, chunk, n == 0) for n, chunk in enumerate(chunks)),
                *(Job(h) for h in back_htmls),
            ],
            self.progress,
        )
        n_index = len(index_htmls)
        del index_htmls, back_htmls
        cover_pdf, *rest, stamp_pdf = self.renderer.results(
            [cover_ticket, *early.tickets, *tickets, early.stamp]
        )
        front_pdfs, rest = _split(rest, len(early.tickets))
        index_pdfs, rest = _split(rest, n_index)
        chunk_pdfs, back_pdfs = _split(rest, len(chunks))
        placeholders, chunk_parts = self._rescue(chunks, chunk_pdfs, chunk_html, binding)
        parts = [open_part(_ok(cover_pdf, "cover"))]
        parts += [open_part(_ok(pdf, "front matter")) for pdf in front_pdfs]
        parts += [open_part(_ok(pdf, "index")) for pdf in index_pdfs]
        parts += chunk_parts
        parts += [open_part(_ok(pdf, "list of embedded files")) for pdf in back_pdfs]
        stamp_font = StampFont(_ok(stamp_pdf, "stamp font"))
        return RenderedParts(parts, stamp_font, placeholders, binding)

    def _chunk_html(self, timeless: dict[str, Any]) -> ChunkHtml:
        """What makes a chunk's HTML (``first``: the first chunk, under the heading)."""
        template = self.env.get_template("items.html.j2")

        def chunk_html(chunk: Sequence[Exhibit], first: bool) -> str:
            return template.render(**timeless, exhibits=chunk, first_chunk=first)

        return chunk_html

    def _index_htmls(self, timeless: dict[str, Any], exhibits: Sequence[Exhibit]) -> list[str]:
        template = self.env.get_template("index.html.j2")
        return [
            template.render(**timeless, exhibits=rows, first=(n == 0))
            for n, rows in enumerate(_index_parts(exhibits))
        ]

    def _rescue(
        self,
        chunks: list[list[Exhibit]],
        results: Rendered,
        chunk_html: ChunkHtml,
        binding: Binding,
    ) -> tuple[list[Placeholder], list[Part]]:
        """Chunks that failed: render each of their exhibits alone to find the culprits,
        put a placeholder in place of each, and render those chunks again."""
        renderer, limits = self.renderer, self.renderer.limits
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
                files = [e for e in binding.embedded if e.exhibit == exhibit.number]
                placeholder = Placeholder(exhibit.number, exhibit.title, result, files)
                placeholders.append(placeholder)
                chunks[n][i] = dataclasses.replace(
                    exhibit, placeholder=_placeholder_view(placeholder, limits, self._)
                )
            again = renderer.render(
                [Job(chunk_html(chunks[n], n == 0), limited=True) for n in failed]
            )
            for n, result in zip(failed, again, strict=True):
                results[n] = result
        parts: list[Part] = []
        for n, result in enumerate(results):
            parts.append(open_part(_ok(result, f"exhibits of {chunks[n][0].day}")))
        return placeholders, parts


def _split(results: Rendered, n: int) -> tuple[Rendered, Rendered]:
    return results[:n], results[n:]


def _with_proofs(binding: Binding, proofs: DossierProofs, label: str) -> Binding:
    """The binding with the proofs' files (the signed checkpoint, manifest.json) among
    the embedded files, after the originals."""
    files = [
        Embedded(f.name, f.mime_type, f.description, label, f.sha256, f.size, f.load)
        for f in proofs.files
    ]
    return dataclasses.replace(binding, embedded=[*binding.embedded, *files])


def _chunk_job(chunk_html: ChunkHtml, chunk: Sequence[Exhibit], first: bool) -> LazyJob:
    # Made when its turn comes: the HTML of every chunk at once is tens of MB.
    return LazyJob(lambda: Job(chunk_html(chunk, first), limited=True), CHUNK_COST * len(chunk))


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


def front_groups(common: dict[str, Any]) -> list[list[dict[str, Any]]]:
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


def _front_job(
    env: Environment, front: FrontMatter, group: list[dict[str, Any]], n: int
) -> LazyJob:
    """Part ``n`` of the front matter, its HTML made when its turn comes: a long history's
    attempts tables are MBs of HTML, and most parts wait for a worker."""
    return LazyJob(
        lambda: Job(_front_html(env, front.common, front.timeless, group, n)),
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
    env: Environment,
    timeless: dict[str, Any],
    binding: Binding,
    documents: list[dict[str, Any]],
    verification: dict[str, Any],
) -> list[str]:
    """The list of embedded files in parts (the exhibits' originals change only when the
    exhibits do), then the rest of the list, how to verify, and the appendices' slips."""
    template = env.get_template("back.html.j2")
    of_exhibits = [e for e in binding.embedded if e.exhibit]
    others = [e for e in binding.embedded if not e.exhibit]
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
            documents=documents,
            verification=verification,
        )
    )
    return htmls


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


def _stamp_sample_html(env: Environment, doc_ref: str, page_word: str) -> str:
    glyphs = "".join(sorted(set(doc_ref + page_word + "0123456789/") - {" "}))
    return env.get_template("stamp.html.j2").render(glyphs=glyphs)
