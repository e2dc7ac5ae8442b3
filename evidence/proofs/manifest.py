"""What a dossier carries so that anyone can check it without us: the machine-readable
manifest (every exhibit's files with their SHA-256, the ledger entries behind it
with their leaf index and inclusion proof) and the signed checkpoint it is proved
against, embedded as files beside the originals.

An export gathers the records to prove (``dossier_records``), then calls
``prepare_dossier_proofs`` inside its (writer-locked) session, embeds ``proofs.files`` and
passes ``proofs.view`` to the templates.
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import io
import json
import tempfile
import weakref
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO, Protocol
from zoneinfo import ZoneInfo

from sqlalchemy import String, cast, select
from sqlalchemy.orm import Session

from evidence import __version__
from evidence.config import Config
from evidence.errors import IntegrityFailure
from evidence.records.customers import Identity
from evidence.store import merkle
from evidence.store.checkpoints import iter_leaf_hashes, write_checkpoint
from evidence.store.models import (
    AuditEvent,
    Case,
    CaseDocument,
    Checkpoint,
    Email,
    Incident,
    LedgerEntry,
    QueueEvent,
)
from evidence.timeline.calls import AgentPause, Call
from evidence.timeutil import format_local, iso_utc

MANIFEST_NAME = "manifest.json"
CHECKPOINT_TEXT = "checkpoint.txt"
CHECKPOINT_SIGNATURE = "checkpoint.sig"
CHECKPOINT_KEY = "checkpoint-key.pub.pem"
CHECKPOINT_TIMESTAMP = "checkpoint.tst"
VERIFICATION_FILES = (
    MANIFEST_NAME,
    CHECKPOINT_TEXT,
    CHECKPOINT_SIGNATURE,
    CHECKPOINT_KEY,
    CHECKPOINT_TIMESTAMP,
)
MANIFEST_FORMAT = "evidence-dossier-manifest/1"
LEAF_RULE = (
    "leaf = the UTF-8 bytes of a ledger entry's canonical JSON payload; leaf index = "
    "ledger seq - 1; leaf hash = SHA-256(0x00 || leaf); node hash = SHA-256(0x01 || left || "
    "right) (RFC 6962 section 2.1); the root is the checkpoint's"
)


class _Embedded(Protocol):
    name: str
    sha256: str
    size: int
    exhibit: str


CHUNK = 1 << 20  # manifest.json is read back in pieces of this size


@dataclass
class ProofFile:
    """A file of the proofs: ``load`` gives its bytes in pieces (manifest.json waits on
    the disk)."""

    name: str
    mime_type: str
    description: str
    sha256: str
    size: int
    load: Callable[[], Iterable[bytes]] = field(repr=False, compare=False)

    @classmethod
    def of(cls, name: str, data: bytes, mime_type: str, description: str) -> ProofFile:
        digest = hashlib.sha256(data).hexdigest()
        return cls(name, mime_type, description, digest, len(data), lambda: (data,))


@dataclass(frozen=True)
class DossierProofs:
    checkpoint_id: int
    tree_size: int
    root: str
    # manifest.json is among the files, as a file: the parsed structure of a long history
    # (an inclusion proof for every record) is tens of MB, and nothing reads it again.
    files: list[ProofFile] = field(default_factory=list)
    view: dict[str, Any] = field(default_factory=dict)


SELECTION = "selection"  # manifest.json's entry for the records that selected the items


@dataclass(frozen=True)
class RecordGroup:
    """An entry of manifest.json (an exhibit, an appended case document, the selection)
    and the ledger records (table, id) behind it."""

    number: str  # E-001, appendix-1, selection
    kind: str
    records: tuple[tuple[str, str], ...]


@dataclass(frozen=True)
class DossierRecords:
    """Every record a dossier proves, by entry of manifest.json; ``appendix_of``: the
    entry of each appended case document, by its SHA-256."""

    groups: tuple[RecordGroup, ...]
    appendix_of: Mapping[str, str]


def records_of(session: Session, record: object) -> tuple[tuple[str, str], ...]:
    """The ledger records (table, id) behind one timeline item."""
    if isinstance(record, Email):
        # An email our SMTP receiver took: its envelopes (and receive time) are proved too.
        return (("emails", str(record.id)),) + tuple(
            ("smtp_deliveries", str(delivery.id)) for delivery in record.deliveries
        )
    if isinstance(record, Incident):
        return (("incidents", str(record.id)),)
    if isinstance(record, Call):
        return tuple(("source_lines", str(line.id)) for line in record.source_lines) + tuple(
            ("recordings", str(rec.id)) for rec in record.recordings
        )
    if isinstance(record, AgentPause):
        line_id = session.scalar(
            select(QueueEvent.source_line_id).where(QueueEvent.id == record.event_id)
        )
        return (("source_lines", str(line_id)),) if line_id is not None else ()
    return ()


def dossier_records(
    session: Session,
    exhibits: Iterable[tuple[str, str, object]],
    documents: Sequence[CaseDocument],
    selection: Sequence[tuple[str, str]],
) -> DossierRecords:
    """The records of a dossier's entries: each exhibit's (number, kind, timeline record),
    each appended case document's, and the records that selected the items
    (:func:`selection_records`)."""
    groups = [RecordGroup(n, kind, records_of(session, record)) for n, kind, record in exhibits]
    groups += [
        RecordGroup(f"appendix-{n}", "case_document", (("case_documents", str(doc.id)),))
        for n, doc in enumerate(documents, start=1)
    ]
    if selection:
        groups.append(RecordGroup(SELECTION, SELECTION, tuple(selection)))
    appendix_of = {doc.sha256: f"appendix-{n}" for n, doc in enumerate(documents, start=1)}
    return DossierRecords(tuple(groups), appendix_of)


def selection_records(identity: Identity, case: Case | None) -> list[tuple[str, str]]:
    """The records that decide what a dossier holds: the customer as added, their
    identifiers and every version of them (which addresses and numbers were theirs when),
    and the case (its period and claims) with its closing."""
    customer = identity.customer
    records = [("customers", str(customer.id))]
    records += [("customer_identifiers", str(i.id)) for i in customer.identifiers]
    records += [("customer_changes", str(c.id)) for c in identity.changes]
    if case is not None:
        records.append(("cases", str(case.id)))
        records += [("case_closures", str(c.id)) for c in case.closures]
        records += [("claims", str(c.id)) for c in case.claims]
    return records


def _ledger_entries(
    session: Session, wanted: Sequence[tuple[str, str]]
) -> dict[tuple[str, str], int]:
    """The first ledger entry (its seq) of each record; the payloads are read later, a
    few at a time (a long history's are tens of MB)."""
    by_type: dict[str, set[str]] = {}
    for table, record_id in wanted:
        by_type.setdefault(table, set()).add(record_id)
    found: dict[tuple[str, str], int] = {}
    for table, ids in by_type.items():
        ordered = sorted(ids)
        for start in range(0, len(ordered), 500):
            rows = session.execute(
                select(LedgerEntry.record_id, LedgerEntry.seq)
                .where(
                    LedgerEntry.record_type == table,
                    LedgerEntry.record_id.in_(ordered[start : start + 500]),
                )
                .order_by(LedgerEntry.seq)
            )
            for record_id, seq in rows:
                found.setdefault((table, str(record_id)), int(seq))
    return found


def _payloads(session: Session, seqs: Iterable[int]) -> dict[int, str]:
    ordered = sorted(set(seqs))
    found: dict[int, str] = {}
    for start in range(0, len(ordered), 500):
        found.update(
            (int(seq), str(payload))
            for seq, payload in session.execute(
                select(LedgerEntry.seq, LedgerEntry.payload).where(
                    LedgerEntry.seq.in_(ordered[start : start + 500])
                )
            )
        )
    return found


def prepare_dossier_proofs(
    session: Session,
    config: Config,
    records: DossierRecords,
    *,
    embedded: Sequence[_Embedded],
    zone: ZoneInfo,
    generated: dt.datetime,
    label: str,
    software: Mapping[str, str],
) -> DossierProofs:
    """The proofs stage of an export: sign a checkpoint now (unless one covers the
    records already) and prove every record of ``records`` against it.

    The caller holds the writer lock, so the records read in this session are exactly
    what the checkpoint covers. ``embedded``: the originals, listed in manifest.json
    under their exhibit; ``software``: the programs that made the dossier and their
    versions, for manifest.json.
    """
    wanted = [r for group in records.groups for r in group.records]
    entries = _ledger_entries(session, wanted)
    checkpoint, tree, consistency = _proved_log(session, config, entries)
    proving = _Proving(entries, checkpoint, tree, _files_by_exhibit(embedded, records))
    top: dict[str, Any] = {
        "format": MANIFEST_FORMAT,
        "generator": f"evidence {__version__}",
        "software": dict(software),
        "generated_at": iso_utc(generated),
        "leaf_rule": LEAF_RULE,
        "checkpoint": checkpoint_json(checkpoint),
        "consistency": consistency,
    }
    manifest = _spooled_manifest(
        config.home / "cache", top, proving.manifest_entries(session, records.groups), label
    )
    return DossierProofs(
        checkpoint_id=checkpoint.id,
        tree_size=checkpoint.tree_size,
        root=checkpoint.root_hash,
        files=[manifest, *_files(checkpoint, label)],
        view=_view(checkpoint, zone, len(wanted)),
    )


def _proved_log(
    session: Session, config: Config, entries: dict[tuple[str, str], int]
) -> tuple[Checkpoint, merkle.Tree, list[dict[str, Any]]]:
    """The checkpoint that covers ``entries``, the log's tree up to it, and the consistency
    proofs from the checkpoints of earlier dossiers; refused if the log was altered."""
    checkpoint = _covering_checkpoint(session, config, entries)
    tree = merkle.Tree(h for _seq, h in iter_leaf_hashes(session, upto_seq=checkpoint.tree_size))
    consistency = _consistency_with_earlier_dossiers(session, tree, checkpoint)
    if tree.size != checkpoint.tree_size or tree.root().hex() != checkpoint.root_hash:
        # The new checkpoint extends the last signed one; the entries now give another tree.
        raise IntegrityFailure(
            "the ledger was altered after it was signed: no dossier is made from it; "
            "run `evidence verify`"
        )
    return checkpoint, tree, consistency


def _files_by_exhibit(
    embedded: Sequence[_Embedded], records: DossierRecords
) -> dict[str, list[dict[str, Any]]]:
    """The embedded originals under the entry they belong to (the first of a name)."""
    files: dict[str, list[dict[str, Any]]] = {}
    seen: set[str] = set()
    for item in embedded:
        if item.name in seen:
            continue
        seen.add(item.name)
        number = item.exhibit or records.appendix_of.get(item.sha256, "")
        files.setdefault(number, []).append(
            {"name": item.name, "sha256": item.sha256, "size": item.size}
        )
    return files


@dataclass(frozen=True)
class _Proving:
    """What proves the records of manifest.json's entries: their ledger entries (seq), the
    checkpoint and the log's tree up to it."""

    entries: dict[tuple[str, str], int]
    checkpoint: Checkpoint
    tree: merkle.Tree
    files_by_exhibit: dict[str, list[dict[str, Any]]]

    def manifest_entries(
        self, session: Session, groups: Sequence[RecordGroup]
    ) -> Iterator[dict[str, Any]]:
        """manifest.json's entries in order, their ledger payloads read a few at a time."""
        for start in range(0, len(groups), 200):
            batch = groups[start : start + 200]
            seqs = [self.entries[r] for group in batch for r in group.records if r in self.entries]
            payloads = _payloads(session, seqs)
            for group in batch:
                yield self.entry(group, payloads)

    def entry(self, group: RecordGroup, payloads: dict[int, str]) -> dict[str, Any]:
        """manifest.json's entry of ``group``: its files, and each record's ledger entry
        with its inclusion proof."""
        proved = []
        for table, record_id in group.records:
            seq = self.entries.get((table, record_id))
            if seq is None or seq > self.checkpoint.tree_size:
                raise IntegrityFailure(
                    f"{table}/{record_id} of {group.number} has no ledger entry under the "
                    "checkpoint: run `evidence verify`"
                )
            payload = payloads[seq]
            index = seq - 1
            proved.append(
                {
                    "record": f"{table}/{record_id}",
                    "leaf_index": index,
                    "leaf": payload,
                    "leaf_hash": merkle.leaf_hash(payload.encode("utf-8")).hex(),
                    "inclusion_proof": [h.hex() for h in self.tree.inclusion_proof(index)],
                }
            )
        return {
            "exhibit": group.number,
            "kind": group.kind,
            "files": self.files_by_exhibit.get(group.number, []),
            "records": proved,
        }


def _spooled_manifest(
    scratch: Path, top: dict[str, Any], entries: Iterable[dict[str, Any]], label: str
) -> ProofFile:
    """manifest.json, written as it is made to an unnamed file under ``scratch`` (a long
    history's is tens of MB), which goes when the dossier's files are let go."""
    scratch.mkdir(parents=True, exist_ok=True)
    spool = tempfile.TemporaryFile(dir=scratch)
    written = _Hashing(spool)
    write_manifest_json(top, entries, written)

    def load_manifest() -> Iterator[bytes]:
        spool.seek(0)
        while chunk := spool.read(CHUNK):
            yield chunk

    # Closed (and so gone from the disk) when the last holder of the file lets it go.
    weakref.finalize(load_manifest, spool.close)
    return ProofFile(
        MANIFEST_NAME,
        "application/json",
        label,
        written.sha256.hexdigest(),
        written.size,
        load_manifest,
    )


def _view(checkpoint: Checkpoint, zone: ZoneInfo, records: int) -> dict[str, Any]:
    """What the dossier's pages say of its proofs (the cover, how to verify)."""
    return {
        "root": checkpoint.root_hash,
        "tree_size": checkpoint.tree_size,
        "checkpoint_id": checkpoint.id,
        "time": format_local(checkpoint.created_at, zone),
        "key_id": checkpoint.key_id,
        "tsa_url": checkpoint.tsa_url if checkpoint.timestamp_token else None,
        "records": records,
        "files": {
            "manifest": MANIFEST_NAME,
            "text": CHECKPOINT_TEXT,
            "signature": CHECKPOINT_SIGNATURE,
            "key": CHECKPOINT_KEY,
            "timestamp": CHECKPOINT_TIMESTAMP if checkpoint.timestamp_token else None,
        },
    }


def _covering_checkpoint(
    session: Session, config: Config, entries: dict[tuple[str, str], int]
) -> Checkpoint:
    """The first signed checkpoint that covers every record the dossier shows.

    Later entries (the audit log of other exports, other customers' mail) do not
    change it, so the same evidence gives the same proofs and the same PDF. A
    checkpoint is signed now only when no existing one covers the records yet.
    """
    needed = max(entries.values(), default=0)
    found = session.scalar(
        select(Checkpoint)
        .where(Checkpoint.tree_size >= needed, Checkpoint.tree_size > 0)
        .order_by(Checkpoint.tree_size, Checkpoint.id)
        .limit(1)
    )
    if found is not None:
        return found
    return write_checkpoint(session, config, "export")


def _consistency_with_earlier_dossiers(
    session: Session, tree: merkle.Tree, checkpoint: Checkpoint
) -> list[dict[str, Any]]:
    """A consistency proof from the checkpoint of every earlier dossier to this one.

    Whoever holds an earlier dossier can check that the log it was proved against
    is a prefix of this one (``evidence verify NEW.pdf --previous OLD.pdf``). An
    earlier checkpoint the log no longer contains stops the export.

    The earlier dossiers are those whose export the log up to ``checkpoint`` records:
    so the proofs, like the checkpoint, are the same however many exports come later
    (an export proved against an older checkpoint made after this one was signed would
    otherwise add a proof, and change the bytes of the same evidence's dossier).
    """
    logged = select(LedgerEntry.record_id).where(
        LedgerEntry.record_type == AuditEvent.__tablename__,
        LedgerEntry.seq <= checkpoint.tree_size,
    )
    proofs = []
    seen: set[int] = set()
    for details in session.scalars(
        select(AuditEvent.details)
        .where(AuditEvent.action == "export", cast(AuditEvent.id, String).in_(logged))
        .order_by(AuditEvent.id)
    ):
        info = json.loads(details or "{}")
        cp_id, size, root = info.get("checkpoint_id"), info.get("tree_size"), info.get("root")
        if cp_id is None or size is None or cp_id in seen or size > checkpoint.tree_size:
            continue
        seen.add(cp_id)
        if tree.root(size).hex() != root:
            raise IntegrityFailure(
                f"checkpoint #{cp_id}, printed on an earlier dossier, no longer matches the "
                "log: the store was altered; run `evidence verify`"
            )
        if cp_id == checkpoint.id:
            continue  # this dossier is proved against the same checkpoint: nothing to prove
        proofs.append(
            {
                "checkpoint_id": cp_id,
                "tree_size": size,
                "root": root,
                "proof": [h.hex() for h in tree.consistency_proof(size)],
            }
        )
    return proofs


def checkpoint_json(checkpoint: Checkpoint) -> dict[str, Any]:
    token = checkpoint.timestamp_token
    return {
        "id": checkpoint.id,
        "tree_size": checkpoint.tree_size,
        "root": checkpoint.root_hash,
        "time": iso_utc(checkpoint.created_at),
        "text": checkpoint.body,
        "signature": checkpoint.signature,
        "signature_algorithm": "Ed25519",
        "public_key": checkpoint.public_key,
        "key_id": checkpoint.key_id,
        "timestamp_token": base64.b64encode(token).decode("ascii") if token else None,
        "tsa_url": checkpoint.tsa_url if token else None,
    }


def _dumps(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, indent=1, sort_keys=True)


class _Hashing:
    """A binary file that keeps the SHA-256 and size of what is written to it."""

    def __init__(self, out: BinaryIO) -> None:
        self._out = out
        self.sha256 = hashlib.sha256()
        self.size = 0

    def write(self, data: bytes) -> int:
        self.sha256.update(data)
        self.size += len(data)
        return self._out.write(data)


def manifest_json(top: dict[str, Any], exhibits: Iterable[dict[str, Any]]) -> bytes:
    """``top`` with its ``"exhibits"`` list, as ``json.dumps(..., indent=1, sort_keys=True)``
    writes it, byte for byte."""
    out = io.BytesIO()
    write_manifest_json(top, exhibits, out)
    return out.getvalue()


def write_manifest_json(
    top: dict[str, Any], exhibits: Iterable[dict[str, Any]], out: BinaryIO | _Hashing
) -> None:
    """:func:`manifest_json` written to ``out`` one exhibit at a time: the whole structure
    of a long history (an inclusion proof for every record) would be hundreds of MB of
    objects."""
    marker = "\x00exhibits"
    head, tail = (_dumps(top | {"exhibits": marker}) + "\n").split(json.dumps(marker), 1)
    out.write(head.encode("utf-8"))
    empty = True
    for entry in exhibits:
        out.write(b"[\n  " if empty else b",\n  ")
        # JSON strings hold no raw line breaks: every one here is indentation.
        out.write(_dumps(entry).replace("\n", "\n  ").encode("utf-8"))
        empty = False
    out.write(b"[]" if empty else b"\n ]")
    out.write(tail.encode("utf-8"))


def _files(checkpoint: Checkpoint, label: str) -> list[ProofFile]:
    files = [
        ProofFile.of(CHECKPOINT_TEXT, checkpoint.body.encode("utf-8"), "text/plain", label),
        ProofFile.of(
            CHECKPOINT_SIGNATURE,
            base64.b64decode(checkpoint.signature),
            "application/octet-stream",
            label,
        ),
        ProofFile.of(
            CHECKPOINT_KEY,
            checkpoint.public_key.encode("ascii"),
            "application/x-pem-file",
            label,
        ),
    ]
    if checkpoint.timestamp_token:
        files.append(
            ProofFile.of(
                CHECKPOINT_TIMESTAMP,
                checkpoint.timestamp_token,
                "application/pkcs7-mime",
                label,
            )
        )
    return files
