"""Content-addressed raw bytes, kept in the database beside the records that cite them.

Keeping the bytes in the same database (not in loose files) makes a record and
its bytes one transaction: a crash leaves neither or both, and a team server
backs up one thing.
"""

from __future__ import annotations

import hashlib

from sqlalchemy import select
from sqlalchemy.orm import Session

from evidence.errors import ContentErased, IntegrityFailure, NotFound
from evidence.store import bulk
from evidence.store.models import Blob, ErasedBlob, Erasure
from evidence.timeutil import utcnow


def sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


EMPTY_SHA256 = sha256_hex(b"")


def put_blob(session: Session, data: bytes) -> str:
    """Store ``data`` once; return its SHA-256."""
    digest = sha256_hex(data)
    known: set[str] = session.info.setdefault("known_blobs", set())
    if digest in known:
        return digest
    exists = session.scalar(select(Blob.sha256).where(Blob.sha256 == digest))
    if exists is None:
        session.add(Blob(sha256=digest, size=len(data), data=data, stored_at=utcnow()))
    known.add(digest)
    return digest


def put_blobs(session: Session, blobs: dict[str, bytes]) -> None:
    """Store many ``{sha256: bytes}`` at once (bulk imports); those already stored are skipped."""
    known: set[str] = session.info.setdefault("known_blobs", set())
    wanted = [digest for digest in blobs if digest not in known]
    for start in range(0, len(wanted), 900):
        batch = wanted[start : start + 900]
        known.update(session.scalars(select(Blob.sha256).where(Blob.sha256.in_(batch))))
    now = utcnow()
    rows = [
        {"sha256": digest, "size": len(blobs[digest]), "data": blobs[digest], "stored_at": now}
        for digest in wanted
        if digest not in known
    ]
    if rows:
        bulk.insert_rows(session, Blob, rows)
        known.update(str(row["sha256"]) for row in rows)


def read_blob(session: Session, digest: str) -> bytes:
    """The stored bytes, checked against their hash on the way out."""
    data = session.scalar(select(Blob.data).where(Blob.sha256 == digest))
    if data is None:
        raise NotFound(f"no stored bytes with SHA-256 {digest}")
    data = bytes(data)
    if not data and digest != EMPTY_SHA256:
        _raise_if_erased(session, digest)
    if sha256_hex(data) != digest:
        raise IntegrityFailure(
            f"stored bytes {digest} no longer match their SHA-256: the store was altered; "
            "run `evidence verify` and restore from a backup"
        )
    return data


def _raise_if_erased(session: Session, digest: str) -> None:
    erasure = session.scalar(
        select(Erasure)
        .join(ErasedBlob, ErasedBlob.erasure_id == Erasure.id)
        .where(ErasedBlob.sha256 == digest)
    )
    if erasure is not None:
        raise ContentErased(
            f"the bytes {digest[:16]}… were erased on {erasure.erased_at:%Y-%m-%d} "
            f"(erasure #{erasure.id} of customer {erasure.customer_ref}: {erasure.reason})"
        )
