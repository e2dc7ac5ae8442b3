"""What the dossier shows of an email: its text, decoded as the sender wrote it.

The raw message is never changed; this only derives a readable body from it.
HTML is sanitised with nh3: no scripts, no styles, and no URL but ``cid:``
(replaced by the message's own part as a ``data:`` URI) and ``data:``. The
renderer's URL fetcher refuses everything else as a second wall.
"""

from __future__ import annotations

import base64
import email
import email.message
import re
from dataclasses import dataclass

import charset_normalizer
import nh3

MAX_INLINE_IMAGE = 5 * 1024 * 1024
_CID_SRC = re.compile(r'src="cid:([^"]+)"', re.IGNORECASE)
ALLOWED_SCHEMES = {"cid", "data", "mailto"}
HTML_TAGS = set(nh3.ALLOWED_TAGS)


@dataclass
class Body:
    text: str | None = None  # plain text, shown verbatim
    html: str | None = None  # sanitised HTML fragment
    charset_note: str | None = None  # e.g. a guessed charset
    from_html: bool = False


def decode_text(payload: bytes, declared: str | None) -> tuple[str, str | None]:
    """Decode ``payload``; when the declared charset fails, guess and say so."""
    if declared:
        try:
            return payload.decode(declared), None
        except LookupError:
            note = f"unknown charset {declared!r}"
        except UnicodeDecodeError:
            note = f"declared charset {declared} does not fit the bytes"
    else:
        try:
            return payload.decode("ascii"), None
        except UnicodeDecodeError:
            note = "no charset declared"
    best = charset_normalizer.from_bytes(payload).best()
    if best is not None:
        return str(best), f"{note}; decoded as {best.encoding} (a guess)"
    return payload.decode("utf-8", "replace"), f"{note}; decoded as UTF-8 with replacements"


def _is_body_part(part: email.message.Message) -> bool:
    disposition = (part.get("Content-Disposition") or "").split(";")[0].strip().lower()
    return disposition != "attachment" and not part.get_filename()


def _payload(part: email.message.Message) -> bytes:
    data = part.get_payload(decode=True)
    return data if isinstance(data, bytes) else b""


def extract_body(raw: bytes) -> Body:
    msg = email.message_from_bytes(raw)
    plain = html = None
    cids: dict[str, email.message.Message] = {}
    stack = [msg]
    while stack:
        part = stack.pop(0)
        payload = part.get_payload()
        if part.is_multipart() and isinstance(payload, list):
            if part.get_content_type() == "message/rfc822":
                continue  # a forwarded message is an attachment of its own
            stack = list(payload) + stack
            continue
        ctype = part.get_content_type()
        content_id = (part.get("Content-ID") or "").strip().strip("<>")
        if content_id:
            cids[content_id] = part
        if not _is_body_part(part):
            continue
        if ctype == "text/plain" and plain is None:
            plain = part
        elif ctype == "text/html" and html is None:
            html = part
    if plain is not None:
        text, note = decode_text(_payload(plain), plain.get_content_charset())
        return Body(text=text, charset_note=note)
    if html is not None:
        source, note = decode_text(_payload(html), html.get_content_charset())
        return Body(html=sanitize_html(source, cids), charset_note=note, from_html=True)
    if not msg.is_multipart() and msg.get_content_maintype() == "text":
        text, note = decode_text(_payload(msg), msg.get_content_charset())
        return Body(text=text, charset_note=note)
    return Body()


def sanitize_html(source: str, cids: dict[str, email.message.Message] | None = None) -> str:
    cleaned = nh3.clean(
        source,
        tags=HTML_TAGS,
        clean_content_tags={"script", "style", "title", "head", "object", "iframe", "noscript"},
        url_schemes=ALLOWED_SCHEMES,
        strip_comments=True,
        link_rel="noopener noreferrer nofollow",
    )

    def inline(match: re.Match[str]) -> str:
        part = (cids or {}).get(match.group(1))
        if part is None or part.get_content_maintype() != "image":
            return 'src=""'
        data = _payload(part)
        if len(data) > MAX_INLINE_IMAGE:
            return 'src=""'
        encoded = base64.b64encode(data).decode("ascii")
        return f'src="data:{part.get_content_type()};base64,{encoded}"'

    return _CID_SRC.sub(inline, cleaned)
