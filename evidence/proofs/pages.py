"""The pages are covered: a digest of what each page shows, signed with the store's key.

After the dossier is assembled (and before any PAdES signature), each page's
digest is computed from the written file and ``pages.json`` lists them in order,
with the page count, the SHA-256 of ``manifest.json`` and the checkpoint the
dossier is proved against. ``pages.sig`` is the Ed25519 signature of the store's
checkpoint key over the bytes of ``pages.json``, and ``pages-key.pub.pem`` the
public key. The three are embedded like the proofs; embedding them changes no
page, because a page's digest covers what it shows and nothing else.

What a page shows (``PAGE_RULE``), in qpdf's JSON (version 2) terms, so that
anyone can recompute it with qpdf and a few lines of Python (VERIFYING.md):

- its content streams, decoded (qpdf ``--decode-level=generalized``), joined by
  a newline: the SHA-256 of that;
- its ``/Resources``, ``/MediaBox``, ``/CropBox`` and ``/Rotate`` (inherited from
  the page tree when the page lacks them), and of each annotation ``ANNOTATION_KEYS``
  (an invisible signature field's widget, which a PAdES signature adds, is left out);
- every object they refer to is put in place of the reference, recursively (the
  object numbers are gone, so re-writing the file changes no digest); a stream is
  its dictionary without ``STREAM_KEYS_LEFT_OUT`` and the SHA-256 of its data,
  decoded as above (or as stored when qpdf cannot decode it: images in JPEG);
  ``SKIPPED_KEYS`` are left out of every dictionary (they point up the document,
  not at what is drawn); a reference to a page, the page tree or the catalog is
  ``"page"``, and to an object it is already inside of, ``"loop"``;
- numbers are written as plain decimals without trailing zeros (``0.50`` as ``0.5``,
  ``-0`` as ``0``) and prefixed with ``#``; names (``/Font``) and strings (``u:text``,
  ``b:hex``) as qpdf's JSON writes them;

and the page's digest is the SHA-256 of that structure as compact JSON with sorted
keys (``json.dumps(page, sort_keys=True, separators=(",", ":"))``, ASCII).
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from evidence.store.checkpoints import key_id, public_pem

PAGES_NAME = "pages.json"
PAGES_SIGNATURE = "pages.sig"
PAGES_KEY = "pages-key.pub.pem"
PAGE_FILES = (PAGES_NAME, PAGES_SIGNATURE, PAGES_KEY)
PAGES_FORMAT = "evidence-dossier-pages/1"
PAGE_RULE = (
    "page digest = SHA-256 of the compact sorted-key JSON of {contents: SHA-256 of the page's "
    "content streams decoded and joined by a newline, resources, mediabox, cropbox, rotate, "
    "annots}, every reference replaced by the object it refers to (a stream by its dictionary "
    "and the SHA-256 of its decoded data), in qpdf JSON v2 terms; see VERIFYING.md"
)
SKIPPED_KEYS = frozenset({"/Parent", "/P", "/Dest", "/A", "/AA", "/StructParent", "/StructParents"})
STREAM_KEYS_LEFT_OUT = frozenset({"/Length", "/Filter", "/DecodeParms"})
ANNOTATION_KEYS = (
    "/Subtype",
    "/Rect",
    "/AP",
    "/AS",
    "/F",
    "/Contents",
    "/Border",
    "/BS",
    "/C",
    "/QuadPoints",
    "/DA",
)
_REF = re.compile(r"(\d+) (\d+) R")

# (kind, JSON value, stream data): kind "stream" or "value"
Resolved = tuple[str, Any, bytes | None]


def load_json(text: str | bytes) -> Any:
    """qpdf's JSON with every number kept exact (as a Decimal)."""
    return json.loads(text, parse_float=Decimal, parse_int=Decimal)


def _number(value: Decimal) -> str:
    text = format(value.normalize(), "f")
    return "#0" if text == "-0" else "#" + text


class PageCanon:
    """Computes page digests over objects handed over by ``resolve`` (a reference such
    as ``"12 0 R"`` -> (kind, value, data)), each object's form computed once."""

    def __init__(self, resolve: Callable[[str], Resolved]) -> None:
        self._resolve = resolve
        self._done: dict[str, Any] = {}
        self._inside: set[str] = set()

    def value(self, value: Any) -> Any:
        if isinstance(value, bool) or value is None:
            return value
        if isinstance(value, Decimal):
            return _number(value)
        if isinstance(value, str):
            return self.ref(value) if _REF.fullmatch(value) else value
        if isinstance(value, list):
            return [self.value(v) for v in value]
        if isinstance(value, dict):
            return {k: self.value(v) for k, v in value.items() if k not in SKIPPED_KEYS}
        raise TypeError(f"not a qpdf JSON value: {type(value).__name__}")

    def ref(self, ref: str) -> Any:
        if ref in self._done:
            return self._done[ref]
        if ref in self._inside:
            return "loop"
        kind, value, data = self._resolve(ref)
        if isinstance(value, dict) and value.get("/Type") in ("/Page", "/Pages", "/Catalog"):
            return "page"
        self._inside.add(ref)
        try:
            if kind == "stream":
                entries = {k: v for k, v in value.items() if k not in STREAM_KEYS_LEFT_OUT}
                out: Any = {
                    "stream": self.value(entries),
                    "sha256": hashlib.sha256(data or b"").hexdigest(),
                }
            else:
                out = self.value(value)
        finally:
            self._inside.discard(ref)
        self._done[ref] = out
        return out

    def _deref(self, value: Any) -> Any:
        while isinstance(value, str) and _REF.fullmatch(value):
            kind, value, _data = self._resolve(value)
            if kind == "stream":
                return None
        return value

    def _inherited(self, page: dict[str, Any], key: str) -> Any:
        node: Any = page
        seen = 0
        while isinstance(node, dict) and seen < 64:
            if key in node:
                return node[key]
            node = self._deref(node.get("/Parent"))
            seen += 1
        return None

    def page(self, ref: str) -> str:
        """The digest of the page object ``ref``."""
        _kind, page, _data = self._resolve(ref)
        contents = page.get("/Contents")
        if isinstance(contents, str) and _REF.fullmatch(contents):
            resolved = self._resolve(contents)
            contents = [contents] if resolved[0] == "stream" else resolved[1]
        shown = []
        for each in contents if isinstance(contents, list) else []:
            kind, _value, data = self._resolve(each)
            shown.append(data if kind == "stream" and data is not None else b"")
        annots = []
        for each in self._deref(page.get("/Annots")) or []:
            annot = self._deref(each)
            if not isinstance(annot, dict) or _hidden_signature_widget(annot, self._deref):
                continue
            annots.append(self.value({k: annot[k] for k in ANNOTATION_KEYS if k in annot}))
        canon = {
            "contents": hashlib.sha256(b"\n".join(shown)).hexdigest(),
            "resources": self.value(self._inherited(page, "/Resources")),
            "mediabox": self.value(self._inherited(page, "/MediaBox")),
            "cropbox": self.value(self._inherited(page, "/CropBox")),
            "rotate": self.value(self._inherited(page, "/Rotate")),
            "annots": annots,
        }
        text = json.dumps(canon, sort_keys=True, separators=(",", ":"), ensure_ascii=True)
        return hashlib.sha256(text.encode("ascii")).hexdigest()


def _hidden_signature_widget(annot: dict[str, Any], deref: Callable[[Any], Any]) -> bool:
    """A signature field's widget with no area: it shows nothing (PAdES adds one)."""
    if annot.get("/Subtype") != "/Widget":
        return False
    field = annot
    while isinstance(field, dict) and "/FT" not in field and "/Parent" in field:
        field = deref(field.get("/Parent"))
    if not isinstance(field, dict) or field.get("/FT") != "/Sig":
        return False
    rect = [deref(v) for v in deref(annot.get("/Rect")) or []]
    if len(rect) != 4 or not all(isinstance(v, Decimal) for v in rect):
        return False
    return bool(rect[0] == rect[2] or rect[1] == rect[3])


def page_digests(pdf: Any) -> list[str]:
    """The digest of each page of an open ``pikepdf.Pdf``, in order."""
    import pikepdf

    def resolve(ref: str) -> Resolved:
        match = _REF.fullmatch(ref)
        assert match is not None
        obj = pdf.get_object((int(match.group(1)), int(match.group(2))))
        if obj is None:
            return "value", None, None
        if not isinstance(obj, pikepdf.Object):  # a number or a boolean, as Python's
            return "value", obj if isinstance(obj, bool) else Decimal(str(obj)), None
        value = load_json(obj.to_json(dereference=True, schema_version=2))
        if isinstance(obj, pikepdf.Stream):
            try:
                data = obj.read_bytes()
            except pikepdf.PdfError:  # not decodable by qpdf's generalized filters
                data = obj.read_raw_bytes()
            return "stream", value, data
        return "value", value, None

    canon = PageCanon(resolve)
    return [canon.page("{} {} R".format(*page.obj.objgen)) for page in pdf.pages]


@dataclass(frozen=True)
class PageSeal:
    """The three embedded files that cover the pages."""

    pages_json: bytes
    signature: bytes
    public_key: bytes

    def files(self) -> list[tuple[str, bytes, str]]:
        """(name, bytes, MIME type) of each."""
        return [
            (PAGES_NAME, self.pages_json, "application/json"),
            (PAGES_SIGNATURE, self.signature, "application/octet-stream"),
            (PAGES_KEY, self.public_key, "application/x-pem-file"),
        ]


def seal_pages(
    digests: Sequence[str],
    key: Ed25519PrivateKey,
    *,
    manifest_sha256: str,
    checkpoint: Mapping[str, Any],
) -> PageSeal:
    """``pages.json`` over ``digests`` and its signature by ``key`` (deterministic)."""
    public = key.public_key()
    body = {
        "format": PAGES_FORMAT,
        "page_rule": PAGE_RULE,
        "page_count": len(digests),
        "pages": list(digests),
        "manifest_sha256": manifest_sha256,
        "checkpoint": dict(checkpoint),
        "key_id": key_id(public),
    }
    data = (json.dumps(body, sort_keys=True, indent=1, ensure_ascii=True) + "\n").encode("ascii")
    return PageSeal(data, key.sign(data), public_pem(public).encode("ascii"))
