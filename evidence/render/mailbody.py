"""What the dossier shows of an email: its text, decoded as the sender wrote it.

The raw message is never changed; this only derives a readable view from it,
with the same MIME reader the importer uses (``evidence.ingest.mime``):

- the text part (or, with no text, the sanitised HTML) of every displayed part,
  in order; in ``multipart/alternative`` the text alternative;
- a declared charset is used; a missing, unknown or wrong one is guessed
  (charset-normalizer) and the guess is said (``charset_note``);
- a forwarded ``message/rfc822`` becomes a ``NestedMessage`` with its own
  headers, body and attachments, at any depth;
- images that the HTML references by ``cid:`` are shown from the message itself
  (as ``data:`` URIs) and listed in ``inline_images``;
- uuencoded files in a text body are replaced by a note (they are listed among
  the attachments).

HTML is sanitised with nh3: no scripts, no styles, no attribute that loads
anything but a ``data:`` raster image or a ``cid:`` part of this message, no
link but ``mailto:``. The renderer's URL fetcher refuses everything else as a
second wall.
"""

from __future__ import annotations

import base64
import hashlib
import re
from dataclasses import dataclass, field

import charset_normalizer
import nh3

from evidence.ingest.mime import (
    Entity,
    LimitExceeded,
    MailLimits,
    codec_for,
    decode_header,
    find_uuencoded,
    is_attachment,
    parse,
)

MAX_INLINE_IMAGE = 5 * 1024 * 1024
ALLOWED_SCHEMES = {"cid", "data", "mailto"}
HTML_TAGS = set(nh3.ALLOWED_TAGS) - {"area", "map"}
_RASTER_DATA = re.compile(r"data:image/(png|jpeg|jpg|gif|webp|bmp);", re.IGNORECASE)
_CID_SRC = re.compile(r'src="cid:([^"]+)"', re.IGNORECASE)
_META_CHARSET = re.compile(rb"<meta[^>]{0,200}charset\s*=\s*[\"']?([A-Za-z0-9_.:-]{1,40})", re.I)
_SINGLE_BYTE = {"latin_1", "iso8859-1", "cp1252", "iso8859-15", "ascii"}
_MESSAGE_TYPES = ("message/rfc822", "message/global")


@dataclass
class InlineImage:
    """An image of the message that its HTML shows through ``cid:``."""

    content_id: str
    content_type: str
    size: int
    sha256: str


@dataclass
class PartInfo:
    """An attachment of a nested message, as the dossier lists it."""

    part: str
    filename: str | None
    content_type: str
    size: int
    sha256: str


@dataclass
class Body:
    text: str | None = None  # plain text, shown verbatim
    html: str | None = None  # sanitised HTML fragment
    charset_note: str | None = None  # e.g. a guessed charset
    from_html: bool = False
    nested: list[NestedMessage] = field(default_factory=list)
    inline_images: list[InlineImage] = field(default_factory=list)
    problem: str | None = None  # the message could not be read (e.g. past a limit)


@dataclass
class NestedMessage:
    """A forwarded or attached message, shown inside the one that carries it."""

    part: str
    sender: str | None
    to: str | None
    cc: str | None
    date: str | None
    subject: str | None
    message_id: str | None
    body: Body
    attachments: list[PartInfo] = field(default_factory=list)


def decode_text(payload: bytes, declared: str | None) -> tuple[str, str | None]:
    """Decode ``payload``; when the declared charset fails, guess and say so."""
    codec = codec_for(declared)
    if declared and codec is None:
        note = f"unknown charset {declared!r}"
    elif codec is not None:
        try:
            text = payload.decode(codec)
        except UnicodeDecodeError:
            note = f"declared charset {declared} does not fit the bytes"
        else:
            if codec in _SINGLE_BYTE and not payload.isascii() and _is_utf8(payload):
                # Mislabelled UTF-8 decodes "fine" as Latin-1 into mojibake.
                return payload.decode("utf-8"), (
                    f"declared charset {declared}, but the bytes are UTF-8; "
                    "decoded as utf-8 (a guess)"
                )
            return text, None
    else:
        if payload.isascii():
            return payload.decode("ascii"), None
        note = "no charset declared"
        if _is_utf8(payload):
            return payload.decode("utf-8"), f"{note}; decoded as utf-8 (a guess)"
    best = charset_normalizer.from_bytes(payload).best()
    if best is not None:
        return str(best), f"{note}; decoded as {best.encoding} (a guess)"
    return payload.decode("utf-8", "replace"), f"{note}; decoded as UTF-8 with replacements"


def _is_utf8(data: bytes) -> bool:
    try:
        data.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


def extract_body(raw: bytes, limits: MailLimits | None = None) -> Body:
    """The view of a stored message; never raises on hostile input."""
    try:
        parsed = parse(raw, limits)
    except LimitExceeded as exc:
        return Body(problem=str(exc))
    cids: dict[str, Entity] = {}
    for entity in parsed.root.walk():
        content_id = entity.headers.get("content-id")
        if content_id:
            cids.setdefault(content_id.decode("ascii", "replace").strip().strip("<>"), entity)
    return _body_of(parsed.root, cids, parsed.fallback_charset)


def _body_of(root: Entity, cids: dict[str, Entity], fallback: str | None) -> Body:
    body = Body()
    texts: list[str] = []
    htmls: list[str] = []
    notes: list[str] = []
    stack = [root]
    while stack:
        entity = stack.pop()
        ctype = entity.content_type
        if ctype.startswith("multipart/"):
            shown = _shown_children(entity)
            if shown is None:  # a multipart whose boundary never occurs: show its text
                text, note = decode_text(entity.raw_body, entity.info.charset or fallback)
                texts.append(text)
                notes.append(note or "")
                continue
            stack.extend(reversed(shown))
            continue
        if ctype in _MESSAGE_TYPES and entity.message is not None:
            body.nested.append(_nested(entity, cids, fallback))
            continue
        if entity is not root and is_attachment(entity):
            continue
        if entity is root and is_attachment(entity) and ctype.split("/")[0] != "text":
            continue
        payload = entity.payload()
        if ctype == "text/html":
            source, note = decode_text(payload, entity.info.charset or _meta_charset(payload))
            htmls.append(sanitize_html(source, cids, body.inline_images))
        else:
            source, note = decode_text(payload, entity.info.charset)
            texts.append(_without_uuencoded(source, payload).replace("\r\n", "\n"))
        notes.append(note or "")
    if texts:
        body.text = "\n\n".join(t.rstrip("\n") for t in texts) + "\n"
    elif htmls:
        body.html = "\n".join(htmls)
        body.from_html = True
    unique = [n for i, n in enumerate(notes) if n and n not in notes[:i]]
    body.charset_note = "; ".join(unique) or None
    return body


def _shown_children(entity: Entity) -> list[Entity] | None:
    children = entity.children
    if not children:
        return None
    if entity.content_type == "multipart/alternative":
        for wanted in ("text/plain", "text/html"):
            for child in children:
                if any(
                    e.content_type == wanted and not is_attachment(e)
                    for e in child.walk()
                    if e.content_type not in _MESSAGE_TYPES
                ):
                    return [child]
        return [children[-1]]
    if entity.content_type == "multipart/related":
        # The root is the part named by "start", else the first of the "type", else the first.
        start = entity.info.params.get("start", "").strip("<>")
        root_type = entity.info.params.get("type", "").lower()
        for child in children:
            content_id = (child.headers.get("content-id") or b"").strip(b" <>")
            if start and content_id.decode("ascii", "replace") == start:
                return [child]
        for child in children:
            if root_type and child.content_type == root_type:
                return [child]
        return [children[0]]
    return children


def _nested(entity: Entity, cids: dict[str, Entity], fallback: str | None) -> NestedMessage:
    inner = entity.message
    assert inner is not None
    headers = inner.headers

    def one(name: str) -> str | None:
        value = headers.get(name)
        return decode_header(value, fallback) or None if value is not None else None

    files = []
    for part in inner.walk():
        if part is inner or part.content_type.startswith("multipart/") or not is_attachment(part):
            continue
        data = part.payload() if part.content_type not in _MESSAGE_TYPES else part.raw_body
        files.append(
            PartInfo(
                part=part.path,
                filename=part.info.filename,
                content_type=part.content_type,
                size=len(data),
                sha256=hashlib.sha256(data).hexdigest(),
            )
        )
    return NestedMessage(
        part=entity.path or "1",
        sender=one("from"),
        to=one("to"),
        cc=one("cc"),
        date=one("date"),
        subject=one("subject"),
        message_id=one("message-id"),
        body=_body_of(inner, cids, fallback),
        attachments=files,
    )


def _meta_charset(payload: bytes) -> str | None:
    match = _META_CHARSET.search(payload[:4096])
    return match.group(1).decode("ascii") if match else None


def _without_uuencoded(text: str, payload: bytes) -> str:
    if "begin " not in text:
        return text
    blocks = list(find_uuencoded(payload))
    if not blocks:
        return text
    for name, data, _start, _end in blocks:
        pattern = re.compile(
            r"^begin(?:-base64)? [0-7]{3,4} " + re.escape(name) + r"\r?$.*?^end[ \t]*\r?$",
            re.MULTILINE | re.DOTALL,
        )
        note = f"[uuencoded file {name}, {len(data):,} bytes: see the attachments]"
        text = pattern.sub(note.replace("\\", "\\\\"), text, count=1)
    return text


def sanitize_html(
    source: str,
    cids: dict[str, Entity] | None = None,
    shown: list[InlineImage] | None = None,
) -> str:
    """Clean HTML; ``cid:`` images become ``data:`` URIs of the message's own parts."""

    def keep(tag: str, attribute: str, value: str) -> str | None:
        lowered = value.strip().lower()
        if attribute == "src":
            if lowered.startswith("cid:") or _RASTER_DATA.match(lowered):
                return value
            return None
        if attribute == "href":
            return value if lowered.startswith("mailto:") else None
        if attribute == "cite":
            return None
        return value

    cleaned = nh3.clean(
        source,
        tags=HTML_TAGS,
        clean_content_tags={
            "script",
            "style",
            "title",
            "head",
            "object",
            "iframe",
            "noscript",
            "svg",
            "math",
            "template",
        },
        url_schemes=ALLOWED_SCHEMES,
        attribute_filter=keep,
        strip_comments=True,
        link_rel="noopener noreferrer nofollow",
    )

    def inline(match: re.Match[str]) -> str:
        content_id = match.group(1)
        part = (cids or {}).get(content_id)
        if part is None or part.content_type.split("/")[0] != "image":
            return 'src=""'
        data = part.payload()
        if len(data) > MAX_INLINE_IMAGE or not _RASTER_DATA.match(f"data:{part.content_type};"):
            return 'src=""'
        if shown is not None:
            shown.append(
                InlineImage(
                    content_id, part.content_type, len(data), hashlib.sha256(data).hexdigest()
                )
            )
        encoded = base64.b64encode(data).decode("ascii")
        return f'src="data:{part.content_type};base64,{encoded}"'

    return _CID_SRC.sub(inline, cleaned)
