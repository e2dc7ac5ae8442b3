"""A PDF written object by object to a file, knowing nothing of what the pages show.

Objects are numbered first (``reserve``) and written when ready, in any order;
non-stream objects go into compressed object streams and the cross-reference table is
a stream, as PDF 1.5 and PDF/A-2/3 allow. Only the cross-reference entries (a few bytes
per object) are held, so a document of any size is written in little memory.
:class:`ObjectCopier` copies the objects of an open PDF (pikepdf) into the writer,
renumbered; :class:`PageTree` and :func:`write_name_tree` make balanced trees of pages
and of names.

Everything here is deterministic: same calls, same bytes (the file ID is the MD5 of the
bytes before the cross-reference stream).
"""

from __future__ import annotations

import hashlib
import re
import zlib
from array import array
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import BinaryIO

import pikepdf
from pikepdf import Dictionary, Name, Pdf, String

PAGE_TREE_FANOUT = 64  # kids per node of a page tree
NAME_TREE_LEAF = 64  # entries per leaf of a name tree
OBJECT_STREAM_SIZE = 100  # objects per object stream (as qpdf)

# A PDF token that may hold a reference: literal strings and hex strings are matched
# whole so that digits inside them are never taken for one.
_TOKEN = re.compile(rb"\((?:[^\\)]|\\.)*\)|<[0-9A-Fa-f\s]*>|(\d+) (\d+) R", re.S)


def pdf_number(value: float) -> bytes:
    text = f"{value:.4f}".rstrip("0").rstrip(".")
    return b"0" if text in ("-0", "") else text.encode("ascii")


def pdf_string(value: str) -> bytes:
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
        return pdf_number(value)
    raise TypeError(f"cannot write {type(value).__name__} into a PDF")


@dataclass
class Mark:
    """A place in the file that :meth:`PdfWriter.rewind` comes back to."""

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

    def mark(self) -> Mark:
        """Where the file is now, everything pending written: :meth:`rewind` comes back."""
        self._flush_objects()
        return Mark(self._pos, self._md5.copy(), len(self._kind))

    def rewind(self, mark: Mark) -> None:
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


class ObjectCopier:
    """Copies objects of one open PDF into the writer, renumbered, each object once."""

    def __init__(self, writer: PdfWriter, pdf: Pdf, keep_pages: dict[tuple[int, int], int]):
        self._writer = writer
        self.pdf = pdf
        # Its pages that the output shows, already numbered there.
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



@dataclass
class PageTreeNode:
    num: int
    kids: list[int]
    count: int
    parent: int | None = None


class PageTree:
    """A balanced page tree over ``pages`` (their object numbers): each page's parent
    node, and the nodes (the root last), numbered when the tree is made and written by
    :meth:`write` once the pages are."""

    def __init__(self, writer: PdfWriter, pages: list[int]) -> None:
        self.parent_of = [0] * len(pages)
        self.nodes: list[PageTreeNode] = []
        level: list[tuple[int, int]] = [(num, 1) for num in pages]  # (object, pages under it)
        below: dict[int, PageTreeNode] = {}
        leaves = True
        while True:
            made: list[PageTreeNode] = []
            for start in range(0, max(len(level), 1), PAGE_TREE_FANOUT):
                group = level[start : start + PAGE_TREE_FANOUT]
                node = PageTreeNode(
                    writer.reserve(), [num for num, _ in group], sum(n for _, n in group)
                )
                for offset, (num, _) in enumerate(group):
                    if leaves:
                        self.parent_of[start + offset] = node.num
                    else:
                        below[num].parent = node.num
                made.append(node)
            self.nodes.extend(made)
            below = {node.num: node for node in made}
            if len(made) == 1:
                return
            level = [(node.num, node.count) for node in made]
            leaves = False

    @property
    def root(self) -> int:
        return self.nodes[-1].num

    def write(self, writer: PdfWriter) -> None:
        for node in self.nodes:
            body = b"<< /Type /Pages /Kids [ %s ] /Count %d" % (
                b" ".join(b"%d 0 R" % kid for kid in node.kids),
                node.count,
            )
            if node.parent is not None:
                body += b" /Parent %d 0 R" % node.parent
            writer.object(node.num, body + b" >>")


def write_name_tree(writer: PdfWriter, entries: Iterable[tuple[str, bytes]]) -> int:
    """A name tree of ``entries`` (key, value in PDF syntax): leaves of NAME_TREE_LEAF
    entries under as many levels as needed; its root's number. Keys are sorted by their
    text, as qpdf (and so pikepdf) looks them up."""
    ordered = sorted(entries, key=lambda entry: entry[0])
    chunks = [
        ordered[i : i + NAME_TREE_LEAF] for i in range(0, len(ordered), NAME_TREE_LEAF)
    ] or [[]]
    if len(chunks) == 1:
        root = writer.reserve()
        pairs = b" ".join(pdf_string(key) + b" " + value for key, value in chunks[0])
        writer.object(root, b"<< /Names [ %s ] >>" % pairs)
        return root
    level: list[tuple[int, str, str]] = []  # (node, first key, last key)
    for chunk in chunks:
        num = writer.reserve()
        pairs = b" ".join(pdf_string(key) + b" " + value for key, value in chunk)
        first, last = chunk[0][0], chunk[-1][0]
        limits = b"[ %s %s ]" % (pdf_string(first), pdf_string(last))
        writer.object(num, b"<< /Names [ %s ] /Limits %s >>" % (pairs, limits))
        level.append((num, first, last))
    while len(level) > NAME_TREE_LEAF:
        upper: list[tuple[int, str, str]] = []
        for i in range(0, len(level), NAME_TREE_LEAF):
            group = level[i : i + NAME_TREE_LEAF]
            num = writer.reserve()
            kids = b" ".join(b"%d 0 R" % kid for kid, _, _ in group)
            first, last = group[0][1], group[-1][2]
            limits = b"[ %s %s ]" % (pdf_string(first), pdf_string(last))
            writer.object(num, b"<< /Kids [ %s ] /Limits %s >>" % (kids, limits))
            upper.append((num, first, last))
        level = upper
    root = writer.reserve()
    kids = b" ".join(b"%d 0 R" % kid for kid, _, _ in level)
    writer.object(root, b"<< /Kids [ %s ] >>" % kids)
    return root
