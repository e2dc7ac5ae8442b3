"""The mail import as it was at revision 0009, frozen here, to build a store as the old code
did: the receive time chosen at import (only a Received: line whose ``by`` host is in the
company's mail domains counted, else the import time) and the direction frozen with it.
The rows and their chain entries are those the old importer wrote."""

from __future__ import annotations

import datetime as dt
import re
from pathlib import Path
from typing import Any

from evidence.ingest.mail import content_key, parse_date, parse_message
from evidence.store import bulk, ledger
from evidence.store.blobs import put_blobs
from evidence.store.checkpoints import write_checkpoint
from evidence.store.db import Store
from evidence.store.models import Direction, Email, EmailAddress, EmailAttachment, ReceivedSource
from evidence.timeutil import UTC, utcnow

_BY_HOST = re.compile(r"\bby\s+([^\s;()]+)", re.IGNORECASE)


def _own(address: str, domains: tuple[str, ...]) -> bool:
    domain = address.rpartition("@")[2].lower()
    return any(domain == d or domain.endswith("." + d) for d in domains)


def _old_received_time(raw: bytes, domains: tuple[str, ...]) -> dt.datetime | None:
    """The old ``our_received_time``."""
    from evidence.ingest.mime import MailLimits, decode_header, parse_headers, top_charset

    headers, _, _ = parse_headers(raw, 0, len(raw), MailLimits())
    fallback = top_charset(headers)
    for value in headers.get_all("received"):
        line = decode_header(value, fallback)
        if domains:
            match = _BY_HOST.search(line)
            if not match or not _own("x@" + match.group(1), domains):
                continue
        when = parse_date(line.rpartition(";")[2]) if ";" in line else None
        if when is not None:
            return when.astimezone(UTC)
        if not domains:
            return None
    return None


def import_the_old_way(store: Store, paths: list[Path]) -> None:
    config = store.config
    domains = config.mail_domains
    now = utcnow()
    with store.writing() as session:
        blobs: dict[str, bytes] = {}
        rows: list[dict[str, Any]] = []
        children: list[list[tuple[type[Any], dict[str, Any]]]] = []
        for path in paths:
            raw = path.read_bytes()
            parsed = parse_message(raw, config)
            blobs[parsed.raw_sha256] = raw
            outbound = bool(parsed.from_addr and _own(parsed.from_addr, domains))
            received = _old_received_time(raw, domains)
            if received is not None:
                at, source = received, ReceivedSource.RECEIVED_HEADER
            elif outbound and parsed.date_header is not None:
                at, source = parsed.date_header, ReceivedSource.OWN_DATE
            else:
                at, source = now, ReceivedSource.IMPORT_TIME
            offset = parsed.date_header.utcoffset() if parsed.date_header else None
            rows.append(
                {
                    "raw_sha256": parsed.raw_sha256,
                    "content_key": content_key(raw),
                    "message_id": parsed.message_id,
                    "message_id_reused": False,
                    "in_reply_to": parsed.in_reply_to,
                    "references": parsed.references,
                    "from_addr": parsed.from_addr,
                    "from_display": parsed.from_display,
                    "to_display": parsed.to_display,
                    "cc_display": parsed.cc_display,
                    "subject": parsed.subject,
                    "date_header": parsed.date_header,
                    "date_header_offset": (
                        int(offset.total_seconds() // 60) if offset is not None else None
                    ),
                    "date_header_raw": parsed.date_header_raw,
                    "received_at": at,
                    "received_source": source,
                    "direction": Direction.OUTBOUND if outbound else Direction.INBOUND,
                    "parse_defects": ",".join(parsed.defects) or None,
                    "imported_at": now,
                    "import_run_id": None,
                    "source": str(path),
                }
            )
            kids: list[tuple[type[Any], dict[str, Any]]] = []
            # From, To and Cc only: the old import kept no Bcc.
            for role, address in parsed.addresses:
                if role != "bcc":
                    kids.append((EmailAddress, {"role": role, "address": address}))
            for attachment, digest in parsed.attachments:
                blobs.setdefault(digest, attachment.data)
                kids.append(
                    (
                        EmailAttachment,
                        {
                            "part": attachment.part,
                            "filename": attachment.filename,
                            "content_type": attachment.content_type,
                            "size": len(attachment.data),
                            "sha256": digest,
                        },
                    )
                )
            children.append(kids)
        put_blobs(session, blobs)
        ids = bulk.reserve_ids(session, "emails", len(rows))
        for row, email_id in zip(rows, ids, strict=True):
            row["id"] = email_id
        bulk.insert_rows(session, Email, rows)
        for model in (EmailAddress, EmailAttachment):
            mine = [(row, kid) for row, kids in zip(rows, children, strict=True)
                    for m, kid in kids if m is model]  # fmt: skip
            kid_ids = bulk.reserve_ids(session, model.__tablename__, len(mine))
            for (row, kid), kid_id in zip(mine, kid_ids, strict=True):
                kid.update(id=kid_id, email_id=row["id"])
            bulk.insert_rows(session, model, [kid for _, kid in mine])
        ledger.append_payloads(
            session,
            [
                ("emails", str(row["id"]), ledger.payload_for_rows(Email, row, kids))
                for row, kids in zip(rows, children, strict=True)
            ],
        )
        write_checkpoint(session, config, "import mail")
