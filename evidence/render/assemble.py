"""Put the dossier together from separately rendered parts, writing the PDF as it goes.

The parts (front matter, chunks of exhibits, back matter) are WeasyPrint PDFs;
appended legal PDFs are inserted after their slip sheets. Every page gets the
running stamp (reference, "page n / N") as content streams around the page's own,
which stays untouched; the named destinations and the outline are made for the
whole document, and the originals are embedded as PDF/A-3 associated files.

The writer copies one part at a time: it opens the part with pikepdf, writes each
page and every object the page needs (renumbered) straight to the output file,
and closes the part before the next. Only the output's cross-reference table
(a few bytes per object) grows with the document, so a dossier of 10,000 exhibits
is assembled in about the memory of one part. (Handing every page to one pikepdf
document and saving it held all parts, pages and embedded files at once: about
420 MB at 10,000 items.) Non-stream objects go into compressed object streams and the
cross-reference table is a stream, as PDF 1.5 and PDF/A-2/3 allow.

Everything here is deterministic: same parts, same bytes (the file ID is the MD5
of the bytes before the cross-reference stream).
"""

from __future__ import annotations

import bisect
import hashlib
import io
import re
import zlib
from array import array
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import BinaryIO

import pikepdf
from pikepdf import Array, Dictionary, Name, NameTree, Pdf, String

MM = Decimal("72") / Decimal("25.4")
STAMP_FONT = Name("/EvStampFont")
STAMP_SIZE = 7.5
INDEX_NUMBER_SIZE = 8.0  # .index-row's font size
PAGE_TREE_FANOUT = 64  # kids per node of the output's page tree
NAME_TREE_LEAF = 64  # entries per leaf of a name tree
OBJECT_STREAM_SIZE = 100  # objects per object stream (as qpdf)


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


# A PDF token that may hold a reference: literal strings and hex strings are matched
# whole so that digits inside them are never taken for one.
_TOKEN = re.compile(rb"\((?:[^\\)]|\\.)*\)|<[0-9A-Fa-f\s]*>|(\d+) (\d+) R", re.S)


def _number(value: float) -> bytes:
    text = f"{value:.4f}".rstrip("0").rstrip(".")
    return b"0" if text in ("-0", "") else text.encode("ascii")


def _text(value: str) -> bytes:
    """A PDF text string (PDFDocEncoding where it suffices, else UTF-16)."""
    return bytes(String(value).unparse())


def _scalar(value: object) -> bytes:
    """What pikepdf hands back as a Python value, in PDF syntax."""
    if value is None:
        return b"null"
    if isinstance(value, bool):
        return b"true" if value else b"false"
    if isinstance(value, int):
        return b"%d" % value
    if isinstance(value, Decimal):
        return format(value, "f").encode("ascii")
    if isinstance(value, float):
        return _number(value)
    raise TypeError(f"cannot write {type(value).__name__} into a PDF")


@dataclass
class _Mark:
    pos: int
    md5: hashlib._Hash
    objects: int


class PdfWriter:
    """Writes a PDF to a file object by object: objects are given numbers first
    (``reserve``) and written when ready, in any order."""

    def __init__(self, out: BinaryIO) -> None:
        self._out = out
        self._pos = 0
        self._md5 = hashlib.md5(usedforsecurity=False)
        # The cross-reference entries: type (0 free, 1 at an offset, 2 in an object
        # stream), then offset or object stream, then generation or index in it.
        self._kind = array("B", [0])
        self._where = array("Q", [0])
        self._index = array("I", [65535])
        self._pending: list[tuple[int, bytes]] = []
        # A binary comment after the header: the file is binary (PDF/A asks for it).
        self._emit(b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n")

    def _emit(self, data: bytes) -> None:
        self._out.write(data)
        self._md5.update(data)
        self._pos += len(data)

    def reserve(self) -> int:
        self._kind.append(0)
        self._where.append(0)
        self._index.append(0)
        return len(self._kind) - 1

    def object(self, num: int, body: bytes) -> None:
        """A non-stream object: it goes into the next object stream."""
        self._pending.append((num, body))
        if len(self._pending) >= OBJECT_STREAM_SIZE:
            self._flush_objects()

    def stream(self, num: int, entries: bytes, data: bytes | Sequence[bytes]) -> None:
        """A stream object: ``entries`` is its dictionary's content without /Length;
        ``data`` its (encoded) data, in one piece or several."""
        pieces = [data] if isinstance(data, bytes) else data
        self._kind[num] = 1
        self._where[num] = self._pos
        length = sum(len(piece) for piece in pieces)
        self._emit(b"%d 0 obj\n<< %s /Length %d >>\nstream\n" % (num, entries, length))
        for piece in pieces:
            self._emit(piece)
        self._emit(b"\nendstream\nendobj\n")

    def _flush_objects(self) -> None:
        if not self._pending:
            return
        holder = self.reserve()
        offsets: list[bytes] = []
        bodies: list[bytes] = []
        at = 0
        for index, (num, body) in enumerate(self._pending):
            self._kind[num] = 2
            self._where[num] = holder
            self._index[num] = index
            offsets.append(b"%d %d" % (num, at))
            bodies.append(body)
            at += len(body) + 1
        head = b" ".join(offsets) + b"\n"
        data = zlib.compress(head + b"\n".join(bodies) + b"\n")
        self._pending = []
        self.stream(
            holder,
            b"/Type /ObjStm /N %d /First %d /Filter /FlateDecode" % (len(offsets), len(head)),
            data,
        )

    def mark(self) -> _Mark:
        """Where the file is now, everything pending written: :meth:`rewind` comes back."""
        self._flush_objects()
        return _Mark(self._pos, self._md5.copy(), len(self._kind))

    def rewind(self, mark: _Mark) -> None:
        """Forget everything written and numbered since ``mark``."""
        self._flush_objects()
        self._out.seek(mark.pos)
        self._out.truncate()
        self._pos = mark.pos
        self._md5 = mark.md5.copy()
        del self._kind[mark.objects :]
        del self._where[mark.objects :]
        del self._index[mark.objects :]

    def flush(self) -> None:
        self._out.flush()

    def finish(self, root: int, info: int | None) -> None:
        """Write what is pending, the cross-reference stream and the trailer."""
        self._flush_objects()
        xref = self.reserve()
        self._kind[xref] = 1
        self._where[xref] = self._pos
        file_id = self._md5.hexdigest().encode("ascii")
        width = max(1, (max(self._where).bit_length() + 7) // 8)
        rows = bytearray()
        for kind, where, index in zip(self._kind, self._where, self._index, strict=True):
            rows.append(kind)
            rows += where.to_bytes(width, "big")
            rows += index.to_bytes(2, "big")
        entries = b"/Type /XRef /Size %d /W [ 1 %d 2 ] /Root %d 0 R" % (
            len(self._kind),
            width,
            root,
        )
        if info is not None:
            entries += b" /Info %d 0 R" % info
        entries += b" /ID [ <%s> <%s> ] /Filter /FlateDecode" % (file_id, file_id)
        start = self._pos
        self.stream(xref, entries, zlib.compress(bytes(rows)))
        self._emit(b"startxref\n%d\n%%%%EOF\n" % start)


class _Source:
    """Copies objects of one open PDF into the writer, renumbered, each object once."""

    def __init__(self, writer: PdfWriter, pdf: Pdf, keep_pages: dict[tuple[int, int], int]):
        self._writer = writer
        self.pdf = pdf
        # Its pages that the dossier shows, already numbered in the output.
        self._numbers: dict[tuple[int, int], int] = dict(keep_pages)
        # Never copied: its catalog, its page tree, its pages that are left out. A
        # reference to one of them (a link to a page not appended, an annotation's
        # page) is written as null.
        self._dropped: set[tuple[int, int]] = {pdf.Root.objgen}
        for page in pdf.pages:
            if page.obj.objgen not in self._numbers:
                self._dropped.add(page.obj.objgen)
            parent = page.obj.get("/Parent")
            while isinstance(parent, Dictionary) and parent.objgen not in self._dropped:
                self._dropped.add(parent.objgen)
                parent = parent.get("/Parent")
        self._queue: list[tuple[int, pikepdf.Object]] = []

    def alias(self, obj: pikepdf.Object, num: int) -> None:
        """Write references to ``obj`` (an object of this PDF) as references to ``num``."""
        self._numbers[obj.objgen] = num

    def number(self, key: tuple[int, int]) -> int | None:
        """The output's number for object ``key`` of this PDF (queued to be written the
        first time), or None for what is not copied."""
        num = self._numbers.get(key)
        if num is None:
            if key in self._dropped:
                return None
            obj = self.pdf.get_object(key)
            if obj is None or (
                isinstance(obj, Dictionary)
                and obj.get("/Type") in (Name.Page, Name.Pages, Name.Catalog)
            ):
                self._dropped.add(key)
                return None
            num = self._writer.reserve()
            self._numbers[key] = num
            self._queue.append((num, obj))
        return num

    def _renumber(self, match: re.Match[bytes]) -> bytes:
        if match.group(1) is None:
            return match.group(0)
        num = self.number((int(match.group(1)), int(match.group(2))))
        return b"null" if num is None else b"%d 0 R" % num

    def value(self, value: object) -> bytes:
        """A value of this PDF in PDF syntax, with the objects it refers to queued."""
        if isinstance(value, pikepdf.Object):
            return _TOKEN.sub(self._renumber, bytes(value.unparse()))
        return _scalar(value)

    def entries(self, obj: pikepdf.Object, skip: Iterable[str] = ()) -> bytes:
        """A dictionary's (or stream dictionary's) entries, without the keys in ``skip``,
        in the order of their keys: pikepdf's ``keys()`` is a Python set, whose order
        changes with the hash seed, and the entries' order decides which referred-to
        objects are numbered first."""
        left_out = set(skip)
        return b" ".join(
            bytes(Name(key).unparse()) + b" " + self.value(obj[key])
            for key in sorted(obj.keys())
            if key not in left_out
        )

    def drain(self) -> None:
        """Write every queued object, and what those refer to in turn."""
        while self._queue:
            num, obj = self._queue.pop()
            if isinstance(obj, pikepdf.Stream):
                # The stream's data as stored, still encoded: never decoded and re-encoded.
                self._writer.stream(num, self.entries(obj, ("/Length",)), obj.read_raw_bytes())
            elif isinstance(obj, pikepdf.Object):
                body = _TOKEN.sub(self._renumber, bytes(obj.unparse(resolved=True)))
                self._writer.object(num, body)
            else:
                self._writer.object(num, _scalar(obj))


INHERITED = ("/Resources", "/MediaBox", "/CropBox", "/Rotate")


def _prepare_page(
    page: pikepdf.Object, font: pikepdf.Object, done: set[tuple[int, int]], foreign: bool
) -> None:
    """Make a page stand alone and fit for PDF/A-3b, and give it the stamp's font; a
    ``foreign`` page (an appended PDF's) is made inert too (see :func:`_inert`)."""
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
        _inert(page)
    # Every annotation must say that it prints.
    for annot in page.get("/Annots", []):
        if isinstance(annot, Dictionary) and "/F" not in annot:
            annot.F = 4


# Annotations PDF/A-3 does not allow (they play media or show 3D models).
MEDIA_ANNOTATIONS = {"/3D", "/Sound", "/Screen", "/Movie", "/RichMedia"}
# The named actions PDF/A-3 allows.
NAMED_ACTIONS = {"/NextPage", "/PrevPage", "/FirstPage", "/LastPage"}


def _inert(page: pikepdf.Object) -> None:
    """An appended PDF (a customer's attachment, a letter) is shown, never run: its page
    and annotations lose every action but a jump inside the dossier (JavaScript, Launch,
    URI, SubmitForm, ... are not allowed in PDF/A-3b either, and a web link in an email
    is not kept), and media annotations go. Its content stream is not touched, and
    its original is embedded unchanged."""
    if "/AA" in page:
        del page["/AA"]
    annots = page.get("/Annots")
    if not isinstance(annots, Array):
        return
    kept: list[pikepdf.Object] = []
    for annot in annots:
        if not isinstance(annot, Dictionary) or str(annot.get("/Subtype")) in MEDIA_ANNOTATIONS:
            continue
        if "/AA" in annot:
            del annot["/AA"]
        action = annot.get("/A")
        if isinstance(action, Dictionary) and not _harmless(action):
            del annot["/A"]
        field = annot.get("/Parent")  # a form field's own actions
        while isinstance(field, Dictionary) and "/Kids" in field:
            if "/AA" in field:
                del field["/AA"]
            field = field.get("/Parent")
        kept.append(annot)
    page.Annots = Array(kept)


def _harmless(action: pikepdf.Object) -> bool:
    kind = str(action.get("/S"))
    if "/Next" in action:
        del action["/Next"]  # what follows a jump may be anything
    return kind == "/GoTo" or (kind == "/Named" and str(action.get("/N")) in NAMED_ACTIONS)


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
        self.parent_of, self.tree = _page_tree(writer, self.pages)
        # Around every page's own content: "q" before it, the stamp after it.
        self.save_state = writer.reserve()
        writer.stream(self.save_state, b"", b"q\n")
        sample = _Source(writer, stamp.font.pdf, {})
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
    ) -> _Source:
        """Begin copying ``pdf``'s ``pages`` (page, index in the dossier). ``base``: its
        catalog and document information carry over; ``foreign``: an appended PDF."""
        source = _Source(self.w, pdf, {page.obj.objgen: self.pages[i] for page, i in pages})
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

    def page(self, source: _Source, page: pikepdf.Page, index: int) -> None:
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
            % (self.parent_of[index], self.save_state, b" ".join(own), stamp)
        )
        self.w.object(self.pages[index], body)
        source.drain()

    def name_tree(self, entries: Iterable[tuple[str, bytes]]) -> int:
        """A name tree of ``entries`` (key, value in PDF syntax): leaves of
        NAME_TREE_LEAF entries under as many levels as needed. Keys are sorted by
        their text, as qpdf (and so pikepdf) looks them up."""
        ordered = sorted(entries, key=lambda entry: entry[0])
        level: list[tuple[int, str, str]] = []  # (node, first key, last key)
        chunks = [
            ordered[i : i + NAME_TREE_LEAF] for i in range(0, len(ordered), NAME_TREE_LEAF)
        ] or [[]]
        if len(chunks) == 1:
            root = self.w.reserve()
            pairs = b" ".join(_text(key) + b" " + value for key, value in chunks[0])
            self.w.object(root, b"<< /Names [ %s ] >>" % pairs)
            return root
        for chunk in chunks:
            num = self.w.reserve()
            pairs = b" ".join(_text(key) + b" " + value for key, value in chunk)
            first, last = chunk[0][0], chunk[-1][0]
            limits = b"[ %s %s ]" % (_text(first), _text(last))
            self.w.object(num, b"<< /Names [ %s ] /Limits %s >>" % (pairs, limits))
            level.append((num, first, last))
        while len(level) > NAME_TREE_LEAF:
            upper: list[tuple[int, str, str]] = []
            for i in range(0, len(level), NAME_TREE_LEAF):
                group = level[i : i + NAME_TREE_LEAF]
                num = self.w.reserve()
                kids = b" ".join(b"%d 0 R" % kid for kid, _, _ in group)
                first, last = group[0][1], group[-1][2]
                limits = b"[ %s %s ]" % (_text(first), _text(last))
                self.w.object(num, b"<< /Kids [ %s ] /Limits %s >>" % (kids, limits))
                upper.append((num, first, last))
            level = upper
        root = self.w.reserve()
        kids = b" ".join(b"%d 0 R" % kid for kid, _, _ in level)
        self.w.object(root, b"<< /Kids [ %s ] >>" % kids)
        return root

    def destination(self, where: tuple[int, float, float]) -> bytes:
        index, x, y = where
        return b"[ %d 0 R /XYZ %s %s 0 ]" % (self.pages[index], _number(x), _number(y))

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
                    _text(item.title),
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
        date = _text(pdf_date)
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
            name = _text(file.name)
            self.w.object(
                spec,
                b"<< /Type /Filespec /F %s /UF %s /Desc %s /AFRelationship /Source"
                b" /EF << /F %d 0 R /UF %d 0 R >> >>"
                % (name, name, _text(file.description), stream, stream),
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
        for node in self.tree:
            body = b"<< /Type /Pages /Kids [ %s ] /Count %d" % (
                b" ".join(b"%d 0 R" % kid for kid in node.kids),
                node.count,
            )
            if node.parent is not None:
                body += b" /Parent %d 0 R" % node.parent
            self.w.object(node.num, body + b" >>")
        dests = self.name_tree(
            (name, self.destination(where)) for name, where in self.layout.anchors.items()
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
        attached = self.name_tree((name, b"%d 0 R" % spec) for name, spec in specs)
        associated = self.w.reserve()
        self.w.object(associated, b"[ %s ]" % b" ".join(b"%d 0 R" % n for _, n in specs))
        catalog = self.w.reserve()
        body = (
            b"<< /Type /Catalog /Pages %d 0 R /Names << /Dests %d 0 R /EmbeddedFiles %d 0 R >>"
            % (
                self.tree[-1].num,
                dests,
                attached,
            )
        )
        if bookmarks is not None:
            body += b" /Outlines %d 0 R" % bookmarks
        body += b" /AF %d 0 R" % associated
        self.w.object(catalog, body + b" " + self.catalog + b" >>")
        self.w.finish(catalog, self.info)


@dataclass
class _Node:
    num: int
    kids: list[int]
    count: int
    parent: int | None = None


def _page_tree(writer: PdfWriter, pages: list[int]) -> tuple[list[int], list[_Node]]:
    """A balanced page tree over ``pages``: each page's parent node, and the nodes
    (the root last)."""
    parent_of = [0] * len(pages)
    nodes: list[_Node] = []
    level: list[tuple[int, int]] = [(num, 1) for num in pages]  # (object, pages under it)
    below: dict[int, _Node] = {}
    leaves = True
    while True:
        made: list[_Node] = []
        for start in range(0, max(len(level), 1), PAGE_TREE_FANOUT):
            group = level[start : start + PAGE_TREE_FANOUT]
            node = _Node(writer.reserve(), [num for num, _ in group], sum(n for _, n in group))
            for offset, (num, _) in enumerate(group):
                if leaves:
                    parent_of[start + offset] = node.num
                else:
                    below[num].parent = node.num
            made.append(node)
        nodes.extend(made)
        below = {node.num: node for node in made}
        if len(made) == 1:
            return parent_of, nodes
        level = [(node.num, node.count) for node in made]
        leaves = False


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
    with open(target, "wb") as out:
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
