"""Attachments shown, not just listed: images drawn, text printed, PDFs appended.

Everything is derived from the stored bytes and bounded, so one huge image or a
200-page PDF cannot stall an export. The original is always embedded as well.
Nothing an attachment holds is ever executed or opened by another program.
"""

from __future__ import annotations

import base64
import io
import warnings
from dataclasses import dataclass

import pikepdf
from PIL import Image, UnidentifiedImageError

from evidence.render.mailbody import decode_text

MAX_IMAGE_PIXELS = 50_000_000  # refuse to decode anything larger
DISPLAY_MAX_SIDE = 1800  # pixels: larger images are scaled down for the page
MAX_TEXT_CHARS = 100_000
MAX_APPENDED_PAGES = 100

IMAGE_TYPES = {"image/png", "image/jpeg", "image/gif", "image/webp", "image/heic", "image/heif"}
TEXT_TYPES = {
    "text/plain",
    "text/csv",
    "text/calendar",
    "text/x-vcalendar",
    "text/tab-separated-values",
}
TEXT_SUFFIXES = (".txt", ".csv", ".ics", ".log", ".tsv")
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".gif", ".webp", ".heic", ".heif")


@dataclass
class Shown:
    kind: str  # image, text, pdf, other
    image_src: str | None = None  # data: URI
    text: str | None = None
    note: str | None = None  # machine word: truncated, too-large, encrypted, damaged, ...
    pdf_pages: int = 0  # pages of a PDF attachment
    pdf_appended: int = 0  # pages appended (bounded)


def classify(content_type: str, filename: str | None) -> str:
    name = (filename or "").lower()
    if content_type in IMAGE_TYPES or name.endswith(IMAGE_SUFFIXES):
        return "image"
    if content_type == "application/pdf" or name.endswith(".pdf"):
        return "pdf"
    if content_type in TEXT_TYPES or name.endswith(TEXT_SUFFIXES):
        return "text"
    return "other"


def show(content_type: str, filename: str | None, data: bytes) -> Shown:
    kind = classify(content_type, filename)
    if kind == "image":
        return _image(data)
    if kind == "text":
        text, _note = decode_text(data, None)
        if len(text) > MAX_TEXT_CHARS:
            return Shown("text", text=text[:MAX_TEXT_CHARS], note="truncated")
        return Shown("text", text=text)
    if kind == "pdf":
        return _pdf(data)
    return Shown("other")


def _image(data: bytes) -> Shown:
    try:
        import pillow_heif

        pillow_heif.register_heif_opener()
    except ImportError:  # pragma: no cover - optional
        pass
    try:
        with warnings.catch_warnings():
            # Pillow warns of (and past twice its limit refuses) decompression bombs.
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            image = Image.open(io.BytesIO(data))
    except (Image.DecompressionBombWarning, Image.DecompressionBombError):
        return Shown("image", note="too-large")
    except (UnidentifiedImageError, OSError, ValueError):
        return Shown("image", note="unreadable")
    try:
        with image:
            width, height = image.size
            if width * height > MAX_IMAGE_PIXELS:
                return Shown("image", note="too-large")
            image.load()
            frame = image.convert("RGBA" if image.mode in ("RGBA", "LA", "P") else "RGB")
    except (OSError, ValueError, Image.DecompressionBombError):
        return Shown("image", note="unreadable")
    frame.thumbnail((DISPLAY_MAX_SIDE, DISPLAY_MAX_SIDE))
    out = io.BytesIO()
    frame.save(out, format="PNG", optimize=False)
    src = "data:image/png;base64," + base64.b64encode(out.getvalue()).decode("ascii")
    return Shown("image", image_src=src)


def _pdf(data: bytes) -> Shown:
    try:
        with pikepdf.open(io.BytesIO(data)) as pdf:
            pages = len(pdf.pages)
    except pikepdf.PasswordError:
        return Shown("pdf", note="encrypted")
    except pikepdf.PdfError:
        return Shown("pdf", note="damaged")
    appended = min(pages, MAX_APPENDED_PAGES)
    note = "truncated" if appended < pages else None
    return Shown("pdf", note=note, pdf_pages=pages, pdf_appended=appended)
