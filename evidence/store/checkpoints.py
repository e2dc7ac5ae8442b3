"""Signed checkpoints of the ledger's Merkle tree, written at each import and export.

A checkpoint is a short text (``body``) that says how many ledger entries the
tree has and what its root is, signed with the store's Ed25519 key and, when
``[timestamping] url`` is set, timestamped by an RFC 3161 authority. Anyone with
the public key can check it with ``openssl pkeyutl -verify -rawin``.

The key: ``evidence init`` (or the first checkpoint) creates
``$EVIDENCE_HOME/checkpoint-key.pem`` (PKCS#8, mode 0600) and
``checkpoint-key.pub.pem`` beside it; ``[checkpoints] key`` in evidence.toml
points elsewhere (e.g. one key shared by a team). ``[checkpoints]
trusted_keys`` lists more public keys whose checkpoints `evidence verify`
accepts, e.g. a colleague's on a shared PostgreSQL store.
"""

from __future__ import annotations

import base64
import getpass
import hashlib
import json
import logging
import os
import socket
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from sqlalchemy import select
from sqlalchemy.orm import Session

from evidence.config import Config
from evidence.errors import EvidenceError, IntegrityFailure
from evidence.files import private_dir, write_atomic
from evidence.store import merkle, tsa
from evidence.store.models import Checkpoint, ErasedEntry, LedgerEntry
from evidence.timeutil import utcnow

KEY_FILE = "checkpoint-key.pem"
BODY_HEADER = "evidence checkpoint v1"
log = logging.getLogger(__name__)


# --- the key ----------------------------------------------------------------------


@dataclass(frozen=True)
class SigningKey:
    private: Ed25519PrivateKey
    path: Path

    @property
    def public(self) -> Ed25519PublicKey:
        return self.private.public_key()

    @property
    def public_pem(self) -> str:
        return public_pem(self.public)

    @property
    def key_id(self) -> str:
        return key_id(self.public)


def public_pem(key: Ed25519PublicKey) -> str:
    return key.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    ).decode("ascii")


def key_id(key: Ed25519PublicKey) -> str:
    """SHA-256 of the raw 32-byte public key: what the company publishes to be checked."""
    raw = key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return hashlib.sha256(raw).hexdigest()


def load_public_pem(pem: str) -> Ed25519PublicKey:
    try:
        key = serialization.load_pem_public_key(pem.encode("ascii"))
    except (ValueError, UnicodeError) as exc:
        raise EvidenceError(f"not a PEM public key: {exc}") from exc
    if not isinstance(key, Ed25519PublicKey):
        raise EvidenceError("checkpoint keys are Ed25519 keys")
    return key


def key_path(config: Config) -> Path:
    return config.checkpoints.key or config.home / KEY_FILE


def ensure_signing_key(config: Config) -> tuple[SigningKey, bool]:
    """The checkpoint key, created (owner-only) when missing. Returns (key, created)."""
    path = key_path(config)
    if path.exists():
        return load_signing_key(path), False
    private_dir(path.parent)
    private = Ed25519PrivateKey.generate()
    pem = private.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    try:
        fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600)
    except FileExistsError:  # another process made it first: use theirs
        return load_signing_key(path), False
    with os.fdopen(fd, "wb") as fh:
        fh.write(pem)
        fh.flush()
        os.fsync(fh.fileno())
    pub = path.with_name(path.name.removesuffix(".pem") + ".pub.pem")
    write_atomic(pub, public_pem(private.public_key()).encode("ascii"), mode=0o644)
    return SigningKey(private, path), True


def load_signing_key(path: Path) -> SigningKey:
    try:
        key = serialization.load_pem_private_key(path.read_bytes(), password=None)
    except (ValueError, TypeError) as exc:
        raise EvidenceError(f"{path} is not an unencrypted PEM private key: {exc}") from exc
    if not isinstance(key, Ed25519PrivateKey):
        raise EvidenceError(f"{path} is not an Ed25519 key: checkpoints are signed with Ed25519")
    return SigningKey(key, path)


def trusted_key_ids(config: Config) -> dict[str, str]:
    """Key ids whose checkpoints this machine accepts -> where the key came from."""
    trusted: dict[str, str] = {}
    own = key_path(config)
    if own.exists():
        trusted[load_signing_key(own).key_id] = str(own)
    for path in config.checkpoints.trusted_keys:
        try:
            trusted[key_id(load_public_pem(path.read_text(encoding="ascii")))] = str(path)
        except OSError as exc:
            raise EvidenceError(f"trusted key {path}: {exc.strerror or exc}") from exc
    return trusted


# --- the signed text ------------------------------------------------------------------


def checkpoint_body(tree_size: int, root: bytes, at_iso: str, reason: str) -> str:
    return (
        f"{BODY_HEADER}\n"
        f"tree size: {tree_size}\n"
        f"root: {root.hex()}\n"
        f"time: {at_iso}\n"
        f"reason: {reason}\n"
    )


@dataclass(frozen=True)
class ParsedBody:
    tree_size: int
    root: str
    time: str
    reason: str


def parse_body(body: str) -> ParsedBody:
    lines = body.split("\n")
    if not lines or lines[0] != BODY_HEADER or body[-1:] != "\n":
        raise ValueError("not an evidence checkpoint")
    fields = dict(line.split(": ", 1) for line in lines[1:] if line)
    try:
        return ParsedBody(
            int(fields["tree size"]), fields["root"], fields["time"], fields.get("reason", "")
        )
    except (KeyError, ValueError) as exc:
        raise ValueError(f"checkpoint text lacks {exc}") from exc


def signature_valid(body: str, signature_b64: str, public_key_pem: str) -> bool:
    try:
        key = load_public_pem(public_key_pem)
        key.verify(base64.b64decode(signature_b64, validate=True), body.encode("utf-8"))
    except (InvalidSignature, EvidenceError, ValueError):
        return False
    return True


# --- the tree over the ledger ---------------------------------------------------------


def iter_leaf_hashes(
    session: Session, after_seq: int = 0, upto_seq: int | None = None
) -> Iterator[tuple[int, bytes]]:
    """(seq, leaf hash) of ledger entries after ``after_seq``, in order.

    An entry redacted by an erasure has its original leaf hash in ``erased_entries``.
    """
    query = (
        select(LedgerEntry.seq, LedgerEntry.payload, ErasedEntry.leaf_hash)
        .outerjoin(ErasedEntry, ErasedEntry.seq == LedgerEntry.seq)
        .where(LedgerEntry.seq > after_seq)
    )
    if upto_seq is not None:
        query = query.where(LedgerEntry.seq <= upto_seq)
    rows = session.execute(query.order_by(LedgerEntry.seq).execution_options(yield_per=2000))
    for seq, payload, erased_leaf in rows:
        if erased_leaf is not None:
            yield int(seq), bytes.fromhex(erased_leaf)
        else:
            yield int(seq), merkle.leaf_hash(payload.encode("utf-8"))


def latest_checkpoint(session: Session) -> Checkpoint | None:
    return session.scalar(select(Checkpoint).order_by(Checkpoint.id.desc()).limit(1))


def _frontier_of(checkpoint: Checkpoint) -> merkle.Frontier:
    """The last checkpoint's frontier, refused unless it folds to the root it signed."""
    try:
        frontier = merkle.Frontier.from_hex(checkpoint.tree_size, json.loads(checkpoint.frontier))
    except (ValueError, TypeError) as exc:
        raise IntegrityFailure(
            f"checkpoint #{checkpoint.id} is damaged ({exc}): run `evidence verify`"
        ) from exc
    if frontier.root().hex() != checkpoint.root_hash or not signature_valid(
        checkpoint.body, checkpoint.signature, checkpoint.public_key
    ):
        raise IntegrityFailure(
            f"checkpoint #{checkpoint.id} no longer matches its signature: the store was "
            "altered; run `evidence verify`"
        )
    return frontier


def write_checkpoint(
    session: Session, config: Config, reason: str, *, always: bool = False
) -> Checkpoint:
    """Sign the tree as it is now in this transaction. The caller holds the writer lock.

    Only the entries added since the last checkpoint are hashed. When the last
    checkpoint already covers every entry, it is returned as it is, unless
    ``always`` (an export signs, and timestamps, a checkpoint of its own).
    """
    session.flush()
    last = latest_checkpoint(session)
    frontier = _frontier_of(last) if last is not None else merkle.Frontier()
    added = 0
    for seq, leaf in iter_leaf_hashes(session, after_seq=frontier.size):
        if seq != frontier.size + 1:
            raise IntegrityFailure(
                f"ledger entry #{frontier.size + 1} is missing: run `evidence verify`"
            )
        frontier.append(leaf)
        added += 1
    if last is not None and added == 0 and not always:
        return last
    key, _created = ensure_signing_key(config)
    now = utcnow()
    root = frontier.root()
    body = checkpoint_body(frontier.size, root, now.isoformat().replace("+00:00", "Z"), reason)
    checkpoint = Checkpoint(
        tree_size=frontier.size,
        root_hash=root.hex(),
        created_at=now,
        reason=reason[:40],
        body=body,
        signature=base64.b64encode(key.private.sign(body.encode("utf-8"))).decode("ascii"),
        key_id=key.key_id,
        public_key=key.public_pem,
        frontier=json.dumps(frontier.to_hex()),
    )
    url = config.timestamping.url
    if url:
        try:
            checkpoint.timestamp_token = tsa.timestamp(url, body.encode("utf-8"))
            checkpoint.tsa_url = url
        except tsa.TimestampFailed as exc:
            # The evidence is stored either way; a later checkpoint gets a timestamp.
            log.warning("evidence: checkpoint written without a timestamp: %s", exc)
    session.add(checkpoint)
    session.flush()
    return checkpoint


ACTOR_LENGTH = 300  # the width of every column that names who did something


def actor(by: str | None = None) -> str:
    """Who is doing this, the one rule for every record that names a person (exports and
    their audit events, erasures, holds, case closings, customer changes): ``by`` (a
    command's ``--by``), else EVIDENCE_USER, else the login name and host."""
    named = (by or "").strip() or os.environ.get("EVIDENCE_USER", "").strip()
    if not named:
        try:
            user = getpass.getuser()
        except (KeyError, OSError):  # no login name and no passwd entry (e.g. some containers)
            user = f"uid {os.getuid()}"
        named = f"{user}@{socket.gethostname()}"
    return named[:ACTOR_LENGTH]
