"""Reading MIME as it is found in real mailboxes: broken, hostile, or in any charset.

One iterative parser (no recursion, so no nesting depth can reach Python's
recursion limit) turns a raw message into a tree of entities that point into
the raw bytes. The importer uses it to index headers and list attachments; the
dossier uses the same tree to show the body, forwarded messages and inline
images. Limits (size, header size and line length, number of parts, nesting
depth) are checked while parsing: a message past one raises ``LimitExceeded``,
whose message is the quarantine reason.

Nothing here ever changes the raw bytes; everything is derived from them.
"""

from __future__ import annotations

import binascii
import codecs
import email.message
import email.utils
import hashlib
import mimetypes
import re
from collections.abc import Iterator
from dataclasses import dataclass, field

from evidence.config import MailLimits as MailLimits  # at home there, read from [mail.limits]

MB = 1024 * 1024


class LimitExceeded(ValueError):
    """The message is past one of the configured limits; the text says which."""


# --- header fields ----------------------------------------------------------------

# What Python's feedparser accepts as a header line; the first line that is not
# one ends the header section (the rest is body), as mail clients also read it.
_HEADER_LINE = re.compile(rb"^(From |[\041-\071\073-\176]*:|[\t ])")
_BLANK_LINE = re.compile(rb"\n\r?\n")
BOM = b"\xef\xbb\xbf"  # UTF-8 byte-order mark, found before some files' first header


@dataclass
class Headers:
    fields: list[tuple[str, bytes]]  # (lower-case name, unfolded raw value)

    def get(self, name: str) -> bytes | None:
        for key, value in self.fields:
            if key == name:
                return value
        return None

    def get_all(self, name: str) -> list[bytes]:
        return [value for key, value in self.fields if key == name]


def parse_headers(
    buf: bytes, start: int, end: int, limits: MailLimits
) -> tuple[Headers, int, list[str]]:
    """The header fields of the entity at ``buf[start:end]`` and where its body starts."""
    defects: list[str] = []
    if buf.startswith(BOM, start):
        start += len(BOM)
        defects.append("byte-order-mark")
    if buf.startswith(b"\n", start) or buf.startswith(b"\r\n", start):
        # No headers at all: the blank line opens the body.
        return Headers([]), start + (1 if buf[start] == 10 else 2), defects
    blank = _BLANK_LINE.search(buf, start, end)
    header_end = blank.start() + 1 if blank else end
    body_start = blank.end() if blank else end
    if (
        blank is not None
        and header_end - start < min(limits.max_header_line, limits.max_header_bytes)
        and _WELL_FORMED.fullmatch(buf, start, header_end)
    ):
        # The usual case, read by two regular expressions instead of line by line.
        return (
            Headers(
                [
                    (key.decode("ascii").lower(), _unfold_value(value))
                    for key, value in _FIELD.findall(buf, start, header_end)
                ]
            ),
            body_start,
            defects,
        )
    headers, body_start = _read_header_lines(buf, start, header_end, body_start, limits, defects)
    return headers, body_start, defects


def _read_header_lines(
    buf: bytes,
    start: int,
    header_end: int,
    body_start: int,
    limits: MailLimits,
    defects: list[str],
) -> tuple[Headers, int]:
    """A header section read line by line, adding to ``defects``: the fields and where the
    body starts (``body_start`` unless a line that is not a header opens the body)."""
    fields: list[tuple[str, bytes]] = []
    name: str | None = None
    value: list[bytes] = []
    pos = start
    first = True
    max_line = limits.max_header_line
    budget = start + limits.max_header_bytes
    # Never split more than the limit allows (a body after a missing blank line can be huge).
    scan_end = min(header_end, budget + 1)
    for line in buf[start:scan_end].split(b"\n"):
        if not line:
            break  # the empty piece after the last line end
        if len(line) >= max_line:
            raise LimitExceeded(
                f"a header line longer than the limit of {max_line:,} bytes (max_header_line)"
            )
        first_byte = line[0]
        if first_byte in (32, 9):
            if name is not None:
                value.append(line)
            else:
                defects.append("first-line-is-continuation")
        elif not _HEADER_LINE.match(line):
            # Not a header: the body starts here (no blank line in between).
            defects.append("missing-header-body-separator")
            body_start = pos
            break
        elif line.startswith(b"From "):
            if not first:
                defects.append("misplaced-unix-from")
        else:
            if name is not None:
                fields.append((name, _unfold(value)))
            key, _, rest = line.partition(b":")
            name = key.decode("ascii", "replace").strip().lower()
            value = [rest]
        first = False
        pos += len(line) + 1
        if pos > budget:
            raise LimitExceeded(
                f"header section over the limit of {limits.max_header_bytes:,} bytes "
                "(max_header_bytes)"
            )
    if name is not None:
        fields.append((name, _unfold(value)))
    return Headers(fields), body_start


_FIELD = re.compile(rb"([!-9;-~]+)[ \t]*:([^\n]*\n(?:[ \t][^\n]*\n)*)")
_WELL_FORMED = re.compile(rb"(?:[!-9;-~]+[ \t]*:[^\n]*\n(?:[ \t][^\n]*\n)*)+")


def _unfold_value(value: bytes) -> bytes:
    return value.replace(b"\r\n", b"").replace(b"\n", b"").strip()


def _unfold(lines: list[bytes]) -> bytes:
    if len(lines) == 1:
        return lines[0].strip()
    return b"".join(line.rstrip(b"\r") for line in lines).strip()


# --- decoding header text -----------------------------------------------------------

_CHARSET_ALIASES = {
    "ks_c_5601-1987": "cp949",
    "ks_c_5601": "cp949",
    "x-sjis": "shift_jis",
    "gb2312": "gb18030",
    "gbk": "gb18030",
    "iso-8859-8-i": "iso-8859-8",
    "unicode-1-1-utf-7": "utf-7",
    "x-mac-roman": "mac_roman",
    "macintosh": "mac_roman",
    "ansi_x3.4-1968": "ascii",
    "us-ascii": "ascii",
    "x-user-defined": "cp1252",
}


def codec_for(charset: str | None) -> str | None:
    """The Python codec for a declared charset, or None when it is unknown."""
    if not charset:
        return None
    token = re.match(r"[\s\"']*([A-Za-z0-9_.:+-]+)", charset)  # no comment, no RFC 2231 language
    if token is None:
        return None
    name = token.group(1).lower()
    name = _CHARSET_ALIASES.get(name, name)
    try:
        return codecs.lookup(name).name
    except (LookupError, ValueError):
        return None


_ENCODED_WORD = re.compile(rb"=\?([^?\s]{1,80})\?([bBqQ])\?([^?]*)\?=")
_CONTROL = re.compile(r"[\x00-\x08\x0a-\x1f\x7f]+")
_SPACES = re.compile(r"[ \t]+")


def decode_bytes(data: bytes, fallback: str | None = None) -> tuple[str, bool]:
    """Header bytes as text: UTF-8 (RFC 6532), else ``fallback``, else windows-1252.

    The flag says the charset was guessed (raw 8-bit bytes that are not UTF-8).
    """
    try:
        return data.decode("ascii"), False
    except UnicodeDecodeError:
        pass
    try:
        return data.decode("utf-8"), False
    except UnicodeDecodeError:
        pass
    for codec in (codec_for(fallback), "cp1252"):
        if codec:
            try:
                return data.decode(codec), True
            except UnicodeDecodeError:
                continue
    return data.decode("cp1252", "replace"), True


def _decode_word(charset: str, encoding: str, text: bytes) -> bytes | None:
    try:
        if encoding in "bB":
            return decode_transfer(text, "base64")
        return binascii.a2b_qp(text.replace(b"_", b" "))
    except (binascii.Error, ValueError):
        return None


def decode_header(value: bytes | str | None, fallback_charset: str | None = None) -> str:
    """Decode RFC 2047 encoded words (also broken ones) and raw 8-bit text.

    Adjacent encoded words in one charset are joined before decoding, so a
    character split between two words survives. CR, LF and other control
    characters become spaces: a decoded header never becomes a new header
    line, and never carries markup anywhere but as text.
    """
    if value is None:
        return ""
    raw = value.encode("utf-8", "surrogateescape") if isinstance(value, str) else value
    if b"=?" not in raw and raw.isascii():
        text = raw.decode("ascii")
        if _CONTROL.search(text):
            text = _CONTROL.sub(" ", text)
        return _SPACES.sub(" ", text).strip()
    pieces: list[str] = []
    pending: tuple[str, bytearray] | None = None  # adjacent words in one charset
    pos = 0

    def flush() -> None:
        nonlocal pending
        if pending is not None:
            codec = codec_for(pending[0]) or "cp1252"
            pieces.append(bytes(pending[1]).decode(codec, "replace"))
            pending = None

    for match in _ENCODED_WORD.finditer(raw):
        between = raw[pos : match.start()]
        decoded = _decode_word(match.group(1).decode("ascii", "replace"), *_word(match))
        if decoded is None:
            continue  # leave the malformed word as it is
        if between.strip(b" \t\r\n") or pending is None:
            flush()
            if between:
                pieces.append(decode_bytes(between, fallback_charset)[0])
        charset = match.group(1).decode("ascii", "replace").lower()
        if pending is not None and pending[0] == charset:
            pending[1].extend(decoded)
        else:
            flush()
            pending = (charset, bytearray(decoded))
        pos = match.end()
    flush()
    pieces.append(decode_bytes(raw[pos:], fallback_charset)[0])
    text = _CONTROL.sub(" ", "".join(pieces))
    return _SPACES.sub(" ", text).strip()


def _word(match: re.Match[bytes]) -> tuple[str, bytes]:
    return match.group(2).decode("ascii"), match.group(3)


def header_text(value: bytes | None, fallback_charset: str | None = None) -> str | None:
    if value is None:
        return None
    return decode_header(value, fallback_charset) or None


# One plain mailbox: "Name" <a@b>, Name <a@b> or a@b (anything else: the full parser).
_SIMPLE_ADDRESS = re.compile(
    rb'[ \t]*(?:"([ -!#-\[\]-~\x80-\xff]*)"[ \t]*|([A-Za-z0-9 .\'=?_+-]*?)[ \t]*)'
    rb"<([A-Za-z0-9._%+=-]+@[A-Za-z0-9.-]+)>[ \t]*\Z"
    rb"|[ \t]*([A-Za-z0-9._%+=-]+@[A-Za-z0-9.-]+)[ \t]*\Z"
)


_BARE_ADDRESS = re.compile(r"[A-Za-z0-9._%+=-]+@[A-Za-z0-9.-]+")


def addresses(values: list[bytes], fallback_charset: str | None = None) -> list[tuple[str, str]]:
    """(display name, lower-case address) pairs; names decoded after splitting.

    Splitting before decoding keeps an encoded comma in a name from cutting
    one address into two.
    """
    found: list[tuple[str, str]] = []
    if len(values) == 1:
        simple = _SIMPLE_ADDRESS.match(values[0])
        if simple:
            addr = (simple.group(3) or simple.group(4)).decode("ascii").lower()
            name = simple.group(1) or simple.group(2) or b""
            if len(addr) <= 320:
                found.append((decode_header(name, fallback_charset), addr))
            return found
    texts = [decode_bytes(v, fallback_charset)[0] for v in values]
    texts = [_CONTROL.sub(" ", t) for t in texts]
    try:
        pairs = email.utils.getaddresses(texts)
    except RecursionError:
        # The stdlib's address parser recurses into comments: keep the bare addresses.
        pairs = [("", addr) for addr in _BARE_ADDRESS.findall(" ".join(texts))]
    for name, addr in pairs:
        addr = addr.strip().lower()
        if "@" in addr and len(addr) <= 320:
            found.append((decode_header(name), addr))
    return found


# --- content type and parameters ---------------------------------------------------


@dataclass
class ContentInfo:
    content_type: str  # lower-case type/subtype
    params: dict[str, str]
    filename: str | None
    disposition: str | None
    charset: str | None
    transfer_encoding: str


_SIMPLE_TYPE = re.compile(rb"[ \t]*([A-Za-z0-9!#$&^_.+-]+)/([A-Za-z0-9!#$&^_.+-]+)[ \t]*(;.*)?\Z")
_SIMPLE_PARAM = re.compile(
    rb'[ \t]*([A-Za-z0-9_.-]+)[ \t]*=[ \t]*(?:"([^"\\]*)"|([^;"\s]*))[ \t]*;?'
)


def _simple_params(text: bytes) -> dict[str, str] | None:
    """Plain ``; key=value`` parameters, or None when the full parser is needed."""
    params: dict[str, str] = {}
    pos = 0
    while pos < len(text):
        match = _SIMPLE_PARAM.match(text, pos)
        if not match or match.end() == pos:
            return None if text[pos:].strip(b" \t;") else params
        value = match.group(2) if match.group(2) is not None else match.group(3)
        if not value.isascii():
            return None
        params[match.group(1).decode("ascii").lower()] = value.decode("ascii")
        pos = match.end()
    return params


def content_info(headers: Headers, default_type: str, fallback: str | None) -> ContentInfo:
    """Content-Type, -Disposition and -Transfer-Encoding, with RFC 2231 and 2047 names."""
    ctype = headers.get("content-type")
    disposition = headers.get("content-disposition")
    cte = (headers.get("content-transfer-encoding") or b"").decode("ascii", "replace")
    if disposition is None and (ctype is None or (b"*" not in ctype and b"=?" not in ctype)):
        simple = _SIMPLE_TYPE.match(ctype) if ctype is not None else None
        params = _simple_params((simple.group(3) or b";")[1:]) if simple else None
        if ctype is None or (simple and params is not None and "name" not in params):
            assert params is not None or ctype is None
            if simple is not None and params is not None:
                content_type = (simple.group(1) + b"/" + simple.group(2)).decode().lower()
            else:
                content_type, params = default_type, {}
            return ContentInfo(
                content_type=content_type[:255],
                params=params,
                filename=None,
                disposition=None,
                charset=params.get("charset"),
                transfer_encoding=_normal_cte(cte),
            )
    return _full_content_info(headers, default_type, fallback, cte)


def _full_content_info(
    headers: Headers, default_type: str, fallback: str | None, cte: str
) -> ContentInfo:
    shell = email.message.Message()
    ctype = headers.get("content-type")
    disposition = headers.get("content-disposition")
    if ctype is not None:
        shell["Content-Type"] = _CONTROL.sub(" ", decode_bytes(ctype, fallback)[0])
    if disposition is not None:
        shell["Content-Disposition"] = _CONTROL.sub(" ", decode_bytes(disposition, fallback)[0])
    shell.set_default_type(default_type)
    try:
        content_type = shell.get_content_type()
    except (ValueError, IndexError, AttributeError):
        content_type = default_type
    params: dict[str, str] = {}
    try:
        for key, val in shell.get_params(failobj=[], header="content-type")[1:]:
            params[key.lower()] = email.utils.collapse_rfc2231_value(val)
    except (ValueError, IndexError, TypeError, LookupError):
        pass
    filename = None
    try:
        name = shell.get_filename()
    except (ValueError, IndexError, TypeError, LookupError, UnicodeError):
        name = None
    if name:
        filename = decode_header(name) or None
    disp = None
    if disposition is not None:
        disp = decode_bytes(disposition)[0].split(";", 1)[0].strip().lower() or None
    return ContentInfo(
        content_type=content_type[:255],
        params=params,
        filename=filename,
        disposition=disp,
        charset=params.get("charset"),
        transfer_encoding=_normal_cte(cte),
    )


def _normal_cte(value: str) -> str:
    name = value.strip().strip(";").strip().lower().replace(" ", "-")
    return {
        "7-bit": "7bit",
        "8-bit": "8bit",
        "8bits": "8bit",
        "quoted_printable": "quoted-printable",
    }.get(name, name)


# --- the entity tree ------------------------------------------------------------------


@dataclass
class Entity:
    """One MIME entity: where its header and body are in ``buf``, and its children."""

    path: str  # "" for the message itself, then "1", "1.2", ... (IMAP part numbers)
    buf: bytes
    start: int
    body_start: int
    end: int
    headers: Headers
    info: ContentInfo
    depth: int
    children: list[Entity] = field(default_factory=list)
    message: Entity | None = None  # the attached message of a message/rfc822 part
    defects: list[str] = field(default_factory=list)

    @property
    def content_type(self) -> str:
        return self.info.content_type

    @property
    def raw_body(self) -> bytes:
        return self.buf[self.body_start : self.end]

    @property
    def raw_entity(self) -> bytes:
        return self.buf[self.start : self.end]

    def payload(self) -> bytes:
        """The body with its transfer encoding undone (never raises)."""
        return decode_transfer(self.raw_body, self.info.transfer_encoding)

    def walk(self) -> Iterator[Entity]:
        """Every entity in document order (iterative)."""
        stack: list[Entity] = [self]
        while stack:
            entity = stack.pop()
            yield entity
            inner = list(entity.children)
            if entity.message is not None:
                inner.append(entity.message)
            stack.extend(reversed(inner))


@dataclass
class Parsed:
    root: Entity
    fallback_charset: str | None  # the top-level charset, for raw 8-bit header bytes
    parts: int
    defects: list[str]


_TRANSFER_NESTED_OK = {"", "7bit", "8bit", "binary"}


# An entity still to read: (buf, start, end, path, depth, default type, parent, as_message)
_Pending = tuple[bytes, int, int, str, int, str, Entity | None, bool]


def parse(raw: bytes, limits: MailLimits | None = None) -> Parsed:
    """Parse ``raw`` into an entity tree; raise ``LimitExceeded`` past a limit."""
    limits = limits or MailLimits()
    if len(raw) > limits.max_message_bytes:
        raise LimitExceeded(
            f"message of {len(raw):,} bytes is over the limit of "
            f"{limits.max_message_bytes:,} (max_message_bytes)"
        )
    defects: list[str] = []
    parts = 0
    fallback: str | None = None
    root: Entity | None = None
    work: list[_Pending] = [(raw, 0, len(raw), "", 0, "text/plain", None, False)]
    while work:
        buf, start, end, path, depth, default_type, parent, as_message = work.pop()
        if depth > limits.max_depth:
            raise LimitExceeded(
                f"MIME nesting deeper than the limit of {limits.max_depth} (max_depth)"
            )
        parts += 1
        if parts > limits.max_parts:
            raise LimitExceeded(f"more than {limits.max_parts:,} MIME parts (max_parts)")
        headers, body_start, entity_defects = parse_headers(buf, start, end, limits)
        if root is None:
            fallback = top_charset(headers)
        info = content_info(headers, default_type, fallback)
        entity = Entity(path, buf, start, body_start, end, headers, info, depth)
        entity.defects = entity_defects
        if root is None:
            root = entity
        elif as_message and parent is not None:
            parent.message = entity
        elif parent is not None:
            parent.children.append(entity)
        work.extend(_inner_entities(entity))
    assert root is not None
    for entity in root.walk():
        defects.extend(entity.defects)
    return Parsed(root, fallback, parts, sorted(set(defects)))


def _inner_entities(entity: Entity) -> list[_Pending]:
    """The parts of a multipart entity (last first) or the message a message/rfc822 part
    holds, still to read; a broken multipart gets its defect noted and none."""
    info, buf, path, depth = entity.info, entity.buf, entity.path, entity.depth
    body_start, end = entity.body_start, entity.end
    inner: list[_Pending] = []
    maintype = info.content_type.split("/", 1)[0]
    if maintype == "multipart":
        boundary = info.params.get("boundary")
        if not boundary:
            entity.defects.append("multipart-without-boundary")
            return inner
        spans, closed = _split_multipart(buf, body_start, end, boundary)
        if not spans:
            entity.defects.append("boundary-never-occurs")
            return inner
        if not closed:
            entity.defects.append("missing-closing-boundary")
        child_type = "message/rfc822" if info.content_type == "multipart/digest" else ("text/plain")
        for index in range(len(spans), 0, -1):
            s, e = spans[index - 1]
            child_path = f"{path}.{index}" if path else str(index)
            inner.append((buf, s, e, child_path, depth + 1, child_type, entity, False))
    elif info.content_type in ("message/rfc822", "message/global"):
        if info.transfer_encoding in _TRANSFER_NESTED_OK:
            inner_buf, s, e = buf, body_start, end
        else:  # an attached message sent base64- or QP-encoded
            inner_buf = entity.payload()
            s, e = 0, len(inner_buf)
        if e > s:
            inner.append((inner_buf, s, e, path or "1", depth + 1, "text/plain", entity, True))
    return inner


def top_charset(headers: Headers) -> str | None:
    value = headers.get("content-type")
    if value is None:
        return None
    match = re.search(rb"charset\s*=\s*\"?([A-Za-z0-9_.:+-]{1,40})", value, re.IGNORECASE)
    return match.group(1).decode("ascii") if match else None


def _split_multipart(
    buf: bytes, start: int, end: int, boundary: str
) -> tuple[list[tuple[int, int]], bool]:
    """Spans of the parts between ``--boundary`` lines (the line end before one is its own)."""
    try:
        delimiter = b"--" + boundary.encode("ascii")
    except UnicodeEncodeError:
        delimiter = b"--" + boundary.encode("utf-8", "surrogateescape")
    spans: list[tuple[int, int]] = []
    part_start: int | None = None
    pos = start
    while True:
        at = buf.find(delimiter, pos, end)
        if at < 0:
            break
        pos = at + len(delimiter)
        if at > start and buf[at - 1] != 10:
            continue  # not at the start of a line
        line_end = buf.find(b"\n", pos, end)
        line_end = end if line_end < 0 else line_end
        rest = buf[pos:line_end].rstrip(b"\r")
        closing = rest.startswith(b"--")
        if rest[2 if closing else 0 :].strip(b" \t"):
            continue  # a longer boundary that starts with this one
        if part_start is not None:
            spans.append((part_start, _before_line_end(buf, at, part_start)))
        if closing:
            return spans, True
        part_start = min(line_end + 1, end)
        pos = part_start
    if part_start is not None:
        spans.append((part_start, end))
    return spans, False


def _before_line_end(buf: bytes, pos: int, floor: int) -> int:
    if pos > floor and buf[pos - 1] == 10:
        pos -= 1
        if pos > floor and buf[pos - 1] == 13:
            pos -= 1
    return pos


# --- transfer encodings --------------------------------------------------------------

_NOT_BASE64 = bytes(
    set(range(256)) - set(b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/")
)


def decode_transfer(data: bytes, encoding: str) -> bytes:
    """Undo a transfer encoding leniently; unknown encodings leave the bytes as they are."""
    try:
        if encoding == "base64":
            cleaned = data.translate(None, _NOT_BASE64)
            if len(cleaned) % 4 == 1:
                cleaned = cleaned[:-1]
            return binascii.a2b_base64(cleaned + b"=" * (-len(cleaned) % 4))
        if encoding == "quoted-printable":
            return binascii.a2b_qp(data)
        if encoding in ("x-uuencode", "uuencode", "x-uue", "uue"):
            files = list(find_uuencoded(data))
            return files[0][1] if files else data
    except (binascii.Error, ValueError):
        return data
    return data


_UU_BEGIN = re.compile(rb"^begin(?:-base64)? [0-7]{3,4} ([^\r\n]+)\r?$", re.MULTILINE)
_UU_END = re.compile(rb"^end[ \t]*\r?$", re.MULTILINE)


def find_uuencoded(data: bytes) -> Iterator[tuple[str, bytes, int, int]]:
    """uuencoded files in a text body: (file name, bytes, start, end of the block)."""
    pos = 0
    while True:
        begin = _UU_BEGIN.search(data, pos)
        if begin is None:
            return
        finish = _UU_END.search(data, begin.end())
        if finish is None:
            return
        out = bytearray()
        for line in data[begin.end() : finish.start()].splitlines():
            line = line.strip(b"\r")
            if not line or line == b"`":
                continue
            try:
                out += binascii.a2b_uu(line)
            except binascii.Error:
                # Some encoders pad short lines badly: decode what the length byte says.
                try:
                    count = (line[0] - 32) & 63
                    out += binascii.a2b_uu(line[: 1 + (count * 4 + 2) // 3])
                except (binascii.Error, IndexError):
                    continue
        name = decode_bytes(begin.group(1).strip())[0]
        yield name, bytes(out), begin.start(), finish.end()
        pos = finish.end()


# --- attachments ---------------------------------------------------------------------


@dataclass
class Attachment:
    part: str
    filename: str | None
    content_type: str
    data: bytes

    @property
    def sha256(self) -> str:
        return hashlib.sha256(self.data).hexdigest()


def is_attachment(entity: Entity) -> bool:
    """A file of the message rather than its text: named, marked, or not text."""
    info = entity.info
    maintype = info.content_type.split("/", 1)[0]
    if maintype == "multipart":
        return False
    if info.content_type in ("message/rfc822", "message/global"):
        return True
    if info.disposition == "attachment" or info.filename:
        return True
    return maintype not in ("text", "message")


def attachments(parsed: Parsed) -> Iterator[Attachment]:
    """Every file in the message at any depth, attached messages and their files included,
    and the files inside TNEF (winmail.dat) parts and uuencoded blocks."""
    for entity in parsed.root.walk():
        if entity.info.content_type.startswith("multipart/"):
            continue
        part = (entity.path or "1")[:200]
        if is_attachment(entity):
            if entity.info.content_type in ("message/rfc822", "message/global"):
                data = (
                    entity.raw_body
                    if entity.info.transfer_encoding in _TRANSFER_NESTED_OK
                    else entity.payload()
                )
            else:
                data = entity.payload()
            yield Attachment(part, entity.info.filename, entity.info.content_type, data)
            if is_tnef(entity):
                for index, (name, inner) in enumerate(unpack_tnef(data), start=1):
                    yield Attachment(f"{part}.tnef-{index}"[:200], name, _guess_type(name), inner)
        elif entity.info.content_type == "text/plain" or entity.info.transfer_encoding in (
            "x-uuencode",
            "uuencode",
        ):
            body = entity.raw_body
            if b"begin " not in body:
                continue
            found = find_uuencoded(entity.payload())
            for index, (name, inner, _s, _e) in enumerate(found, start=1):
                yield Attachment(f"{part}.uu-{index}"[:200], name, _guess_type(name), inner)


def is_tnef(entity: Entity) -> bool:
    name = (entity.info.filename or "").lower()
    return entity.info.content_type in ("application/ms-tnef", "application/vnd.ms-tnef") or (
        name == "winmail.dat"
    )


def unpack_tnef(data: bytes) -> list[tuple[str | None, bytes]]:
    """The files inside a TNEF stream (tnefparse); nothing when it cannot be read."""
    try:
        import tnefparse

        tnef = tnefparse.TNEF(data)
        found: list[tuple[str | None, bytes]] = []
        for item in tnef.attachments:
            name = item.long_filename() or item.name
            if isinstance(name, bytes):
                name = decode_bytes(name)[0]
            found.append((str(name).strip("\x00") or None, bytes(item.data or b"")))
        return found
    except Exception:  # a hostile TNEF stream is just not unpacked
        return []


def _guess_type(name: str | None) -> str:
    guessed = mimetypes.guess_type(name or "", strict=False)[0]
    return guessed or "application/octet-stream"
