"""Put the dossier together from separately rendered parts, writing the PDF as it goes.

The parts (front matter, chunks of exhibits, back matter) are WeasyPrint PDFs;
appended legal PDFs are inserted after their slip sheets. Every page gets the
running stamp (reference, "page n / N") as content streams around the page's own,
which stays untouched; the named destinations and the outline are made for the
whole document, and the originals are embedded as PDF/A-3 associated files.

It copies one part at a time: it opens the part with pikepdf, writes each page and
every object the page needs (renumbered) straight to the output file with the generic
writer of :mod:`evidence.render.pdfwriter`, and closes the part before the next. Only
the output's cross-reference table (a few bytes per object) grows with the document,
so a dossier of 10,000 exhibits is assembled in about the memory of one part. (Handing
every page to one pikepdf document and saving it held all parts, pages and embedded
files at once: about 420 MB at 10,000 items.) The pages of appended PDFs are made
inert first (:mod:`evidence.render.appended`).

Everything here is deterministic: same parts, same bytes.
"""

from __future__ import annotations

import bisect
import hashlib
import io
import re
import zlib
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path

import pikepdf
from pikepdf import Array, Dictionary, Name, NameTree, Pdf

from evidence.files import create_private
from evidence.render.appended import make_inert
from evidence.render.pdfwriter import (
    ObjectCopier,
    PageTree,
    PdfWriter,
    pdf_number,
    pdf_string,
    write_name_tree,
)

MM = Decimal("72") / Decimal("25.4")
STAMP_FONT = Name("/EvStampFont")
STAMP_SIZE = 7.5
INDEX_NUMBER_SIZE = 8.0  # .index-row's font size


@dataclass
class Part:
    """A rendered PDF on disk: its number of pages, and where its anchors are
    (name -> (page index, x, y)). The file is opened again when it is written."""

    source: Path
    pages: int
    anchors: dict[str, tuple[int, float, float]] = field(default_factory=dict)


def open_part(source: Path) -> Part:
    """Read a part's page count and named destinations, and close it again."""
    with Pdf.open(source) as pdf:
        anchors: dict[str, tuple[int, float, float]] = {}
        names = pdf.Root.get("/Names")
        if names is not None and "/Dests" in names:
            page_index = {page.obj.objgen: i for i, page in enumerate(pdf.pages)}
            for key, dest in NameTree(names.Dests).items():
                target = dest if isinstance(dest, Array) else dest.get("/D")
                if target is None or len(target) < 4:
                    continue
                index = page_index.get(target[0].objgen)
                if index is None:
                    continue
                anchors[str(key)] = (index, float(target[2] or 0), float(target[3] or 0))
        return Part(source, len(pdf.pages), anchors)


@dataclass
class Appended:
    """A PDF whose first ``max_pages`` pages go right after the page with ``anchor``."""

    anchor: str
    data: bytes
    max_pages: int


@dataclass
class Layout:
    """Where every page of the dossier comes from, and where every anchor is."""

    parts: list[Part]
    part_pages: list[list[int]]  # each part's pages' indexes in the dossier
    # after which page of which part an appended PDF goes, and its pages' indexes
    appended: list[tuple[int, int, Appended, list[int]]]
    anchors: dict[str, tuple[int, float, float]]
    total: int


def plan(parts: Sequence[Part], appended: Sequence[Appended]) -> Layout:
    """Page indexes and anchors of the dossier: the parts in order, each appended PDF
    after its slip sheet. A later part's anchor replaces an earlier one of the same
    name (an exhibit's own anchor replaces the index's zero-height stand-in)."""
    anchors: dict[str, tuple[int, float, float]] = {}
    starts: list[int] = []
    offset = 0
    for part in parts:
        starts.append(offset)
        for name, (index, x, y) in part.anchors.items():
            anchors[name] = (offset + index, x, y)
        offset += part.pages
    placed: list[tuple[int, int, Appended]] = []  # (slip's index before inserting, count, pdf)
    for pdf in appended:
        if pdf.anchor not in anchors:
            continue
        with Pdf.open(io.BytesIO(pdf.data)) as doc:
            count = min(pdf.max_pages, len(doc.pages))
        placed.append((anchors[pdf.anchor][0], count, pdf))
    counts_by_slip: dict[int, int] = {}
    for slip, count, _ in placed:
        counts_by_slip[slip] = counts_by_slip.get(slip, 0) + count
    ordered = sorted(counts_by_slip)
    before: list[int] = []  # pages inserted after ordered[0], ..., ordered[k], in all
    running = 0
    for slip in ordered:
        running += counts_by_slip[slip]
        before.append(running)

    def final(index: int) -> int:
        """A part page's index once the appended PDFs are in (they go after slips < it)."""
        k = bisect.bisect_left(ordered, index)
        return index + (before[k - 1] if k else 0)

    layout_appended: list[tuple[int, int, Appended, list[int]]] = []
    taken: dict[int, int] = {}
    for slip, count, pdf in placed:
        first = final(slip) + 1 + taken.get(slip, 0)
        taken[slip] = taken.get(slip, 0) + count
        part_n = bisect.bisect_right(starts, slip) - 1
        layout_appended.append(
            (part_n, slip - starts[part_n], pdf, list(range(first, first + count)))
        )
    return Layout(
        parts=list(parts),
        part_pages=[
            [final(start + i) for i in range(part.pages)]
            for start, part in zip(starts, parts, strict=True)
        ],
        appended=layout_appended,
        anchors={name: (final(i), x, y) for name, (i, x, y) in anchors.items()},
        total=offset + sum(count for _, count, _ in placed),
    )


@dataclass
class OutlineEntry:
    title: str
    anchor: str  # a named destination in the final document
    children: list[OutlineEntry] = field(default_factory=list)


class StampFont:
    """A font borrowed from a small WeasyPrint PDF, with its glyph ids and widths,
    so page stamps can be written as plain content streams (fast, deterministic)."""

    def __init__(self, sample_pdf: Path) -> None:
        self.pdf = Pdf.open(sample_pdf)
        page = self.pdf.pages[0]
        fonts = page.Resources.Font
        [key] = list(fonts.keys())
        self.font = fonts[key]
        self.gids = _cmap_to_gids(bytes(self.font.ToUnicode.read_bytes()))
        self.widths = _cid_widths(self.font.DescendantFonts[0])
        self.default_width = float(self.font.DescendantFonts[0].get("/DW", 1000))

    # WeasyPrint draws no glyph for a space: the stamp moves the pen instead.
    SPACE = 318.0  # DejaVu Sans's space advance, in 1/1000 em

    def show(self, text: str) -> bytes:
        """A ``TJ`` operation writing ``text``: glyph runs, spaces as pen moves."""
        missing = [c for c in text if c != " " and c not in self.gids]
        if missing:
            raise ValueError(f"stamp font lacks {missing!r}")
        parts: list[bytes] = []
        for run_index, run in enumerate(text.split(" ")):
            if run_index:
                parts.append(f" {-self.SPACE:g} ".encode())
            if run:
                hexed = b"".join(self.gids[c].to_bytes(2, "big") for c in run).hex().upper()
                parts.append(b"<" + hexed.encode("ascii") + b">")
        return b"[" + b"".join(parts) + b"] TJ"

    def width(self, text: str, size: float) -> float:
        total = sum(
            self.SPACE if c == " " else self.widths.get(self.gids[c], self.default_width)
            for c in text
        )
        return total * size / 1000


def _cmap_to_gids(cmap: bytes) -> dict[str, int]:
    """Invert a ToUnicode CMap (bfchar and bfrange) into char -> glyph id."""
    result: dict[str, int] = {}
    text = cmap.decode("latin-1")
    for block in re.findall(r"beginbfchar(.*?)endbfchar", text, re.S):
        for src, dst in re.findall(r"<([0-9A-Fa-f]+)>\s*<([0-9A-Fa-f]+)>", block):
            char = bytes.fromhex(dst).decode("utf-16-be")
            if len(char) == 1:
                result.setdefault(char, int(src, 16))
    for block in re.findall(r"beginbfrange(.*?)endbfrange", text, re.S):
        for lo, hi, dst in re.findall(
            r"<([0-9A-Fa-f]+)>\s*<([0-9A-Fa-f]+)>\s*<([0-9A-Fa-f]+)>", block
        ):
            start = ord(bytes.fromhex(dst).decode("utf-16-be"))
            for offset, gid in enumerate(range(int(lo, 16), int(hi, 16) + 1)):
                result.setdefault(chr(start + offset), gid)
    return result


def _cid_widths(descendant: pikepdf.Object) -> dict[int, float]:
    widths: dict[int, float] = {}
    w = descendant.get("/W")
    if w is None:
        return widths
    items = list(w)
    i = 0
    while i < len(items):
        first = int(items[i])
        nxt = items[i + 1]
        if isinstance(nxt, Array):
            for offset, each in enumerate(nxt):
                widths[first + offset] = float(each)
            i += 2
        else:
            last, same = int(nxt), float(items[i + 2])
            for gid in range(first, last + 1):
                widths[gid] = same
            i += 3
    return widths


INHERITED = ("/Resources", "/MediaBox", "/CropBox", "/Rotate")


def _prepare_page(
    page: pikepdf.Object, font: pikepdf.Object, done: set[tuple[int, int]], foreign: bool
) -> None:
    """Make a page stand alone and fit for PDF/A-3b, and give it the stamp's font; a
    ``foreign`` page (an appended PDF's) is made inert too (:mod:`.appended`)."""
    # A page taken out of its document takes along what it inherits from its page tree.
    for key in INHERITED:
        if key in page:
            continue
        parent = page.get("/Parent")
        while isinstance(parent, Dictionary):
            if key in parent:
                page[key] = parent[key]
                break
            parent = parent.get("/Parent")
    if "/Resources" not in page:
        page.Resources = Dictionary()
    if "/MediaBox" not in page:
        page.MediaBox = Array([0, 0, 612, 792])  # the default of PDF readers
    resources = page.Resources
    _clean_resources(resources, done)
    if "/Font" not in resources:
        resources.Font = Dictionary()
    resources.Font[STAMP_FONT] = font
    if foreign:
        make_inert(page)
    # Every annotation must say that it prints.
    for annot in page.get("/Annots", []):
        if isinstance(annot, Dictionary) and "/F" not in annot:
            annot.F = 4


def _clean_resources(resources: pikepdf.Object, done: set[tuple[int, int]]) -> None:
    """Small repairs so parts rendered without PDF/A settings pass as PDF/A-3b."""
    # WeasyPrint writes empty /Pattern and /Shading dictionaries: nothing to keep.
    for empty in ("/Pattern", "/Shading"):
        if empty in resources and len(resources[empty]) == 0:
            del resources[empty]
    for xobject in resources.get("/XObject", {}).values():
        if xobject.objgen in done:
            continue
        done.add(xobject.objgen)
        if xobject.get("/Subtype") == Name.Image and "/Interpolate" in xobject:
            del xobject["/Interpolate"]  # PDF/A: image interpolation is not allowed
        elif xobject.get("/Subtype") == Name.Form and "/Resources" in xobject:
            _clean_resources(xobject.Resources, done)


@dataclass
class Stamp:
    """What every page gets: ``left`` bottom-left, "``page_word`` n / N" bottom-right,
    and on some pages numbers written right-aligned (page index -> (right x, baseline
    y, text)): the index's page numbers."""

    font: StampFont
    left: str
    page_word: str
    numbers: dict[int, list[tuple[float, float, str]]] = field(default_factory=dict)

    def content(self, index: int, total: int, box: pikepdf.Object) -> bytes:
        font = self.font
        extra = b""
        for x_right, y_base, text in self.numbers.get(index, []):
            x = x_right - font.width(text, INDEX_NUMBER_SIZE)
            extra += (
                f" 0.067 g /EvStampFont {INDEX_NUMBER_SIZE:g} Tf "
                f"1 0 0 1 {x:.2f} {y_base:.2f} Tm ".encode()
                + font.show(text)
            )
        x0, y0, x1 = float(box[0]), float(box[1]), float(box[2])
        right_text = f"{self.page_word} {index + 1} / {total}"
        right_x = x1 - float(16 * MM) - font.width(right_text, STAMP_SIZE)
        y = y0 + float(9 * MM)
        return (
            b"Q q 0.33 g BT "
            + f"/EvStampFont {STAMP_SIZE} Tf 1 0 0 1 {x0 + float(18 * MM):.2f} {y:.2f} Tm ".encode()
            + font.show(self.left)
            + f" 1 0 0 1 {right_x:.2f} {y:.2f} Tm ".encode()
            + font.show(right_text)
            + extra
            + b" ET Q"
        )


@dataclass
class EmbeddedFile:
    name: str
    chunks: Callable[[], Iterable[bytes]]  # the bytes, in pieces; called once
    mime_type: str
    description: str


# The catalog entries of the cover (the PDF/A-3b part) that carry over to the dossier;
# the page tree, names, outline and associated files are the dossier's own.
CATALOG_OWN = {
    "/Type",
    "/Pages",
    "/Names",
    "/Dests",
    "/Outlines",
    "/AF",
    "/PageLabels",
    "/StructTreeRoot",
    "/OpenAction",
    "/AcroForm",
}


class _Dossier:
    def __init__(self, writer: PdfWriter, layout: Layout, stamp: Stamp) -> None:
        self.w = writer
        self.layout = layout
        self.stamp = stamp
        self.pages = [writer.reserve() for _ in range(layout.total)]
        self.tree = PageTree(writer, self.pages)
        # Around every page's own content: "q" before it, the stamp after it.
        self.save_state = writer.reserve()
        writer.stream(self.save_state, b"", b"q\n")
        sample = ObjectCopier(writer, stamp.font.pdf, {})
        font = sample.number(stamp.font.font.objgen)
        assert font is not None
        self.font = font
        sample.drain()
        self.catalog = b""  # the base's catalog entries that carry over
        self.info: int | None = None

    def copy(
        self,
        pdf: Pdf,
        pages: Sequence[tuple[pikepdf.Page, int]],
        base: bool = False,
        foreign: bool = False,
    ) -> ObjectCopier:
        """Begin copying ``pdf``'s ``pages`` (page, index in the dossier). ``base``: its
        catalog and document information carry over; ``foreign``: an appended PDF."""
        source = ObjectCopier(self.w, pdf, {page.obj.objgen: self.pages[i] for page, i in pages})
        # The stamp's font, as each page's resources name it.
        font = pdf.make_indirect(Dictionary())
        source.alias(font, self.font)
        done: set[tuple[int, int]] = set()
        for page, _ in pages:
            _prepare_page(page.obj, font, done, foreign)
        if base:
            self.catalog = source.entries(pdf.Root, CATALOG_OWN)
            info = pdf.trailer.get("/Info")
            if isinstance(info, Dictionary):
                self.info = self.w.reserve()
                self.w.object(self.info, b"<< " + source.entries(info) + b" >>")
        return source

    def page(self, source: ObjectCopier, page: pikepdf.Page, index: int) -> None:
        obj = page.obj
        contents = obj.get("/Contents")
        own: list[bytes] = []
        if isinstance(contents, Array):
            own = [source.value(c) for c in contents]
        elif contents is not None:
            own = [source.value(contents)]
        stamp = self.w.reserve()
        self.w.stream(
            stamp,
            b"/Filter /FlateDecode",
            zlib.compress(self.stamp.content(index, self.layout.total, obj.MediaBox)),
        )
        body = (
            b"<< "
            + source.entries(obj, ("/Parent", "/Contents"))
            + b" /Parent %d 0 R /Contents [ %d 0 R %s %d 0 R ] >>"
            % (self.tree.parent_of[index], self.save_state, b" ".join(own), stamp)
        )
        self.w.object(self.pages[index], body)
        source.drain()

    def destination(self, where: tuple[int, float, float]) -> bytes:
        index, x, y = where
        return b"[ %d 0 R /XYZ %s %s 0 ]" % (self.pages[index], pdf_number(x), pdf_number(y))

    def outline(self, entries: Sequence[OutlineEntry]) -> int | None:
        """The bookmarks, each to its anchor; an entry whose anchor is missing is left
        out with its children. Every entry is open."""
        anchors = self.layout.anchors

        def present(items: Sequence[OutlineEntry]) -> list[OutlineEntry]:
            return [item for item in items if item.anchor in anchors]

        def level(items: list[OutlineEntry], parent: int) -> tuple[int, int, int]:
            """Write ``items`` under ``parent``: (first, last, visible entries)."""
            numbers = [self.w.reserve() for _ in items]
            visible = 0
            for k, (item, num) in enumerate(zip(items, numbers, strict=True)):
                body = b"<< /Title %s /Parent %d 0 R /Dest %s" % (
                    pdf_string(item.title),
                    parent,
                    self.destination(anchors[item.anchor]),
                )
                if k:
                    body += b" /Prev %d 0 R" % numbers[k - 1]
                if k + 1 < len(items):
                    body += b" /Next %d 0 R" % numbers[k + 1]
                children = present(item.children)
                count = 0
                if children:
                    first, last, count = level(children, num)
                    body += b" /First %d 0 R /Last %d 0 R" % (first, last)
                self.w.object(num, body + b" /Count %d >>" % count)
                visible += 1 + count
            return numbers[0], numbers[-1], visible

        top = present(entries)
        if not top:
            return None
        root = self.w.reserve()
        first, last, visible = level(top, root)
        self.w.object(
            root,
            b"<< /Type /Outlines /First %d 0 R /Last %d 0 R /Count %d >>" % (first, last, visible),
        )
        return root

    def embed(
        self, files: Iterable[EmbeddedFile], pdf_date: str, seen: set[str]
    ) -> list[tuple[str, int]]:
        """Each original as an associated file (PDF/A-3 ``/AF``, relationship Source),
        compressed; the first of each name (``seen`` holds those written) wins. Each
        file's name and file spec."""
        specs: list[tuple[str, int]] = []
        date = pdf_string(pdf_date)
        for file in files:
            if file.name in seen:
                continue
            seen.add(file.name)
            # Compressed as it is read: manifest.json of a long history is tens of MB.
            compressor = zlib.compressobj()
            checksum = hashlib.md5(usedforsecurity=False)
            size = 0
            compressed: list[bytes] = []
            for chunk in file.chunks():
                checksum.update(chunk)
                size += len(chunk)
                compressed.append(compressor.compress(chunk))
            compressed.append(compressor.flush())
            stream = self.w.reserve()
            self.w.stream(
                stream,
                b"/Type /EmbeddedFile /Subtype %s /Params << /CheckSum <%s> /CreationDate %s"
                b" /ModDate %s /Size %d >> /Filter /FlateDecode"
                % (
                    bytes(Name("/" + file.mime_type).unparse()),
                    checksum.hexdigest().encode("ascii"),
                    date,
                    date,
                    size,
                ),
                compressed,
            )
            spec = self.w.reserve()
            name = pdf_string(file.name)
            self.w.object(
                spec,
                b"<< /Type /Filespec /F %s /UF %s /Desc %s /AFRelationship /Source"
                b" /EF << /F %d 0 R /UF %d 0 R >> >>"
                % (name, name, pdf_string(file.description), stream, stream),
            )
            specs.append((file.name, spec))
        return specs

    def finish(
        self,
        outline: Sequence[OutlineEntry],
        files: Iterable[EmbeddedFile],
        pdf_date: str,
        seal: Callable[[], Iterable[EmbeddedFile]] | None = None,
    ) -> None:
        """The page tree, destinations, outline, embedded files, catalog and trailer.
        With ``seal``: the file is first finished as it is, then ``seal`` reads it (the
        pages are all written) and gives more files; the ending is written again with
        them (the bytes before it stay), so the file has one revision only."""
        self.tree.write(self.w)
        dests = write_name_tree(
            self.w,
            [(name, self.destination(where)) for name, where in self.layout.anchors.items()],
        )
        bookmarks = self.outline(outline)
        seen: set[str] = set()
        specs = self.embed(files, pdf_date, seen)
        if seal is not None:
            mark = self.w.mark()
            self._end(dests, bookmarks, specs)
            self.w.flush()
            more = list(seal())
            self.w.rewind(mark)
            specs += self.embed(more, pdf_date, seen)
        self._end(dests, bookmarks, specs)

    def _end(self, dests: int, bookmarks: int | None, specs: list[tuple[str, int]]) -> None:
        """The embedded files' name tree, the associated files, the catalog, the trailer."""
        attached = write_name_tree(self.w, [(name, b"%d 0 R" % spec) for name, spec in specs])
        associated = self.w.reserve()
        self.w.object(associated, b"[ %s ]" % b" ".join(b"%d 0 R" % n for _, n in specs))
        catalog = self.w.reserve()
        body = (
            b"<< /Type /Catalog /Pages %d 0 R /Names << /Dests %d 0 R /EmbeddedFiles %d 0 R >>"
            % (
                self.tree.root,
                dests,
                attached,
            )
        )
        if bookmarks is not None:
            body += b" /Outlines %d 0 R" % bookmarks
        body += b" /AF %d 0 R" % associated
        self.w.object(catalog, body + b" " + self.catalog + b" >>")
        self.w.finish(catalog, self.info)


def write(
    target: Path,
    layout: Layout,
    stamp: Stamp,
    outline: Sequence[OutlineEntry],
    files: Iterable[EmbeddedFile],
    pdf_date: str,
    seal: Callable[[Path], Iterable[EmbeddedFile]] | None = None,
) -> int:
    """Write the dossier to ``target`` (not yet flushed to the disk); its number of
    pages. The first part is the PDF/A-3b base: its catalog's metadata, output intent
    and language, and its document information, carry over. ``seal``: files made from
    the finished pages (``target`` read back), embedded after the others."""
    appended_after: dict[tuple[int, int], list[tuple[Appended, list[int]]]] = {}
    for part_n, page_i, appended, indexes in layout.appended:
        appended_after.setdefault((part_n, page_i), []).append((appended, indexes))
    with create_private(target) as out:
        dossier = _Dossier(PdfWriter(out), layout, stamp)
        for n, part in enumerate(layout.parts):
            with Pdf.open(part.source) as pdf:
                # Each page names only the fonts and images it draws (WeasyPrint gives
                # a part's pages one shared set): what qpdf does when it copies pages,
                # so that copying a page changes nothing its digest covers (pages.py).
                pdf.remove_unreferenced_resources()
                pages = list(zip(pdf.pages, layout.part_pages[n], strict=True))
                source = dossier.copy(pdf, pages, base=(n == 0))
                for i, (page, index) in enumerate(pages):
                    dossier.page(source, page, index)
                    for appended, indexes in appended_after.get((n, i), []):
                        with Pdf.open(io.BytesIO(appended.data)) as doc:
                            doc.remove_unreferenced_resources()
                            shown = list(zip(doc.pages, indexes, strict=False))
                            inner = dossier.copy(doc, shown, foreign=True)
                            for each, at in shown:
                                dossier.page(inner, each, at)
        dossier.finish(outline, files, pdf_date, None if seal is None else (lambda: seal(target)))
    return layout.total
