"""``evidence verify dossier.pdf``: check a dossier on its own, with no store.

What holds when it passes: every embedded original has the SHA-256 the manifest
gives; each is cited by a ledger entry (its leaf) whose inclusion proof leads to
the root of the signed checkpoint printed on the cover (with its key id); the
checkpoint's Ed25519 signature holds; every page shows what ``pages.json``, signed
with the store's key, says it shows (evidence/proofs/pages.py); and, when the PDF
is signed, its PAdES signature covers the whole file. Who holds the key is a separate
question: compare the key id with the one the company publishes (``--key-id``, see
VERIFYING.md).
"""

from __future__ import annotations

import base64
import hashlib
import io
import json
import re
import shutil
import subprocess
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from evidence.proofs.manifest import (
    CHECKPOINT_KEY,
    CHECKPOINT_SIGNATURE,
    CHECKPOINT_TEXT,
    CHECKPOINT_TIMESTAMP,
    MANIFEST_FORMAT,
    MANIFEST_NAME,
    VERIFICATION_FILES,
)
from evidence.proofs.pages import PAGE_FILES, page_digests
from evidence.store import merkle
from evidence.store.checkpoints import key_id, load_public_pem, parse_body, signature_valid
from evidence.verify.pages import check_pages
from evidence.verify.report import Report
from evidence.verify.signatures import check_signatures
from evidence.verify.store import token_imprint


def verify_dossier(
    path: Path,
    trusted_certificates: list[Path] | None = None,
    previous: list[Path] | None = None,
    key_ids: Sequence[str] = (),
) -> Report:
    """Check ``path``; with ``previous`` dossiers, also that their logs are prefixes of its
    log; with ``key_ids`` (see :func:`parse_key_id`), that one of them signed it."""
    data = path.read_bytes()
    report = Report("dossier", str(path))
    report.facts["pdf_sha256"] = hashlib.sha256(data).hexdigest()
    opened = _read_pdf(data, report)
    if opened is None:
        return report
    files, shown = opened
    _check_signatures(data, trusted_certificates or [], report)
    read = _read_manifest(files, report)
    if read is None:
        return report
    manifest, checkpoint = read.data, read.checkpoint
    report.facts["checkpoint"] = {
        "id": checkpoint.get("id"),
        "tree_size": read.size,
        "root": checkpoint["root"],
        "key_id": checkpoint.get("key_id"),
    }
    _check_checkpoint(checkpoint, files, report)
    _check_cover(path, checkpoint["root"], str(checkpoint.get("key_id")), report)
    pages_key = check_pages(shown, files, manifest, report) if shown is not None else None
    listed = _check_exhibits(manifest, files, read.root, read.size, report)
    for name in sorted(set(files) - listed - set(VERIFICATION_FILES) - set(PAGE_FILES)):
        report.fail(name, "embedded in the PDF but not in its manifest: it was added")
    _check_consistency(manifest, read.root, read.size, report)
    for earlier in previous or []:
        _check_previous(earlier, checkpoint, manifest, report)
    _check_keys(checkpoint.get("key_id"), pages_key, key_ids, report)
    return report


def _read_pdf(data: bytes, report: Report) -> tuple[dict[str, bytes], list[str] | None] | None:
    """The dossier's embedded files and the digests of its pages (None if they cannot be
    read); None when the PDF itself or its embedded files cannot be read (reported)."""
    import pikepdf

    try:
        pdf = pikepdf.open(io.BytesIO(data))
    except pikepdf.PdfError as exc:
        report.fail("PDF", f"not a complete PDF: {_reason(exc)} (a truncated or damaged file)")
        return None
    shown: list[str] | None = None
    with pdf:
        problems = [_clean(str(p)) for p in pdf.check_pdf_syntax()]
        if problems:
            report.fail("PDF", "structure damaged: " + "; ".join(problems[:3]))
        else:
            report.checks.append("PDF structure readable")
        try:
            files = {name: spec.get_file().read_bytes() for name, spec in pdf.attachments.items()}
        except pikepdf.PdfError as exc:
            damaged = f"{_reason(exc)} (a truncated or damaged file)"
            report.fail("PDF", f"embedded files cannot be read: {damaged}")
            return None
        try:
            shown = page_digests(pdf)
        except (
            pikepdf.PdfError,
            ValueError,
            TypeError,
            KeyError,
            AttributeError,
            RecursionError,
        ) as exc:
            report.fail("pages", f"cannot be read: {_reason(exc)}")
    return files, shown


@dataclass(frozen=True)
class _Manifest:
    """The dossier's manifest and the checkpoint it was proved against."""

    data: dict[str, Any]
    checkpoint: dict[str, Any]
    root: bytes
    size: int


def _read_manifest(files: dict[str, bytes], report: Report) -> _Manifest | None:
    """The embedded manifest, or None when it is missing or unreadable (reported)."""
    raw_manifest = files.get(MANIFEST_NAME)
    if raw_manifest is None:
        report.fail(
            MANIFEST_NAME,
            "not embedded: this PDF is not an evidence dossier, or its manifest was removed",
        )
        return None
    try:
        manifest = json.loads(raw_manifest)
        if manifest.get("format") != MANIFEST_FORMAT:
            raise ValueError(f"format {manifest.get('format')!r}")
        checkpoint = manifest["checkpoint"]
        root = bytes.fromhex(checkpoint["root"])
        size = int(checkpoint["tree_size"])
    except (ValueError, KeyError, TypeError) as exc:
        report.fail(MANIFEST_NAME, f"unreadable ({exc})")
        return None
    return _Manifest(manifest, checkpoint, root, size)


def parse_key_id(text: str) -> str:
    """A key id as ``--key-id`` takes it: 64 hexadecimal digits (the SHA-256 of the raw
    Ed25519 public key), spaces and colons allowed between them."""
    cleaned = re.sub(r"[\s:]", "", text).lower()
    if not re.fullmatch(r"[0-9a-f]{64}", cleaned):
        raise ValueError(
            f"{text!r} is not a key id: 64 hexadecimal digits, as `evidence init` and "
            "`evidence status` print it"
        )
    return cleaned


def _check_keys(
    checkpoint_key: object, pages_key: str | None, pinned: Sequence[str], report: Report
) -> None:
    """Which key signed the dossier; with ``pinned``, that it is one of them."""
    found = sorted({str(k) for k in (checkpoint_key, pages_key) if k})
    report.facts["key_ids"] = found
    if pinned:
        wanted = {parse_key_id(k) for k in pinned}
        bad = [k for k in found if k not in wanted]
        for key in bad:
            report.fail(
                "key",
                f"signed by key {key}, which is not one given with --key-id: another key "
                "signed this dossier (or re-signed it after a change)",
            )
        if found and not bad:
            report.checks.append(f"signed by key {', '.join(found)}, given with --key-id")
    elif found:
        report.notes.append(
            f"signed by key {', '.join(found)}: anyone can make a key, so only comparing "
            "this id with the one the company publishes ties the dossier to the company "
            "(give it with --key-id to check)"
        )


def _clean(message: str) -> str:
    """A qpdf warning without the name it gave the file read from memory."""
    return re.sub(r"(stream )?<_io\.BytesIO object at 0x[0-9a-f]+>:\s*", "", message).strip()


def _reason(exc: Exception) -> str:
    """qpdf's message without the name it gave the file read from memory."""
    return re.sub(r"^(stream )?<[^>]*>:\s*", "", str(exc)).strip() or type(exc).__name__


def _check_consistency(manifest: dict[str, Any], root: bytes, size: int, report: Report) -> None:
    """Each earlier dossier's checkpoint, as this manifest lists it, is a prefix of this log."""
    entries = manifest.get("consistency", [])
    before = len(report.failures)
    for entry in entries:
        subject = f"consistency with checkpoint #{entry.get('checkpoint_id')}"
        try:
            proof = [bytes.fromhex(h) for h in entry["proof"]]
            merkle.verify_consistency(
                int(entry["tree_size"]), size, bytes.fromhex(entry["root"]), root, proof
            )
        except (merkle.ProofError, ValueError, KeyError, TypeError) as exc:
            report.fail(subject, f"the proof does not hold: {exc}")
    if entries and len(report.failures) == before:
        report.checks.append(
            f"consistency proofs from the checkpoints of {len(entries)} earlier dossier"
            f"{'s' if len(entries) != 1 else ''} hold"
        )


def _check_previous(
    earlier: Path, checkpoint: dict[str, Any], manifest: dict[str, Any], report: Report
) -> None:
    """The log ``earlier`` was proved against must be a prefix of this dossier's log."""
    import pikepdf

    subject = f"earlier dossier {earlier.name}"
    try:
        with pikepdf.open(earlier) as pdf:
            old = json.loads(pdf.attachments[MANIFEST_NAME].get_file().read_bytes())
        old_cp = old["checkpoint"]
        old_size, old_root = int(old_cp["tree_size"]), str(old_cp["root"])
    except (pikepdf.PdfError, KeyError, ValueError, TypeError, OSError) as exc:
        report.fail(subject, f"has no readable manifest ({type(exc).__name__}: {exc})")
        return
    if (
        not signature_valid(
            str(old_cp.get("text")), str(old_cp.get("signature")), str(old_cp.get("public_key"))
        )
        or parse_body(str(old_cp["text"])).root != old_root
    ):
        report.fail(subject, "its checkpoint's signature does not hold")
        return
    if old_cp.get("key_id") != checkpoint.get("key_id"):
        report.notes.append(
            f"{earlier.name} was signed by key {old_cp.get('key_id')}, this one by "
            f"{checkpoint.get('key_id')}"
        )
    size, root = int(checkpoint["tree_size"]), str(checkpoint["root"])
    if old_size == size and old_root == root:
        report.checks.append(f"{earlier.name} was proved against the same checkpoint")
        return
    for entry in manifest.get("consistency", []):
        if int(entry.get("tree_size", -1)) == old_size and entry.get("root") == old_root:
            try:
                merkle.verify_consistency(
                    old_size,
                    size,
                    bytes.fromhex(old_root),
                    bytes.fromhex(root),
                    [bytes.fromhex(h) for h in entry["proof"]],
                )
            except (merkle.ProofError, ValueError, KeyError) as exc:
                report.fail(subject, f"the consistency proof does not hold: {exc}")
                return
            report.checks.append(
                f"the log of {earlier.name} ({old_size} entries) is a prefix of this one's "
                f"({size}): nothing in it was changed or removed since"
            )
            return
    report.fail(
        subject,
        f"this dossier carries no proof that its log extends the one of {earlier.name} "
        f"(checkpoint of {old_size} entries, root {old_root[:16]}…): the log was rewritten, or "
        "the dossiers come from different stores",
    )


def _check_signatures(data: bytes, trusted: list[Path], report: Report) -> None:
    try:
        checks = check_signatures(data, trusted)
    except Exception as exc:  # pyHanko cannot even parse the file's signature structures
        report.fail("PDF signature", f"cannot be read ({type(exc).__name__}: {exc})")
        return
    if not checks:
        report.notes.append("the PDF carries no digital signature (signing is optional)")
    report.facts["signatures"] = [
        {
            "field": c.field_name,
            "signer": c.signer,
            "intact": c.intact,
            "valid": c.valid,
            "trusted": c.trusted,
            "whole_file": c.whole_file,
            "timestamp": c.timestamp,
        }
        for c in checks
    ]
    for c in checks:
        subject = f"PDF signature {c.field_name}"
        for problem in c.problems:
            report.fail(subject, problem)
        if not c.problems:
            when = f", timestamped {c.timestamp}" if c.timestamp else ""
            trust = (
                ", certificate chains to a trusted CA"
                if c.trusted
                else " (certificate not checked: give --trust CA.pem)"
            )
            report.checks.append(f"PDF signature by {c.signer} covers the whole file{when}{trust}")


def _check_checkpoint(checkpoint: dict[str, Any], files: dict[str, bytes], report: Report) -> None:
    subject = f"checkpoint #{checkpoint.get('id')}"
    text = str(checkpoint.get("text", ""))
    try:
        public = load_public_pem(str(checkpoint.get("public_key", "")))
    except Exception as exc:
        report.fail(subject, f"its public key is unreadable ({exc})")
        return
    if not signature_valid(text, str(checkpoint.get("signature", "")), checkpoint["public_key"]):
        report.fail(subject, "its signature does not match its text: it was altered")
        return
    try:
        body = parse_body(text)
    except ValueError as exc:
        report.fail(subject, str(exc))
        return
    if body.tree_size != int(checkpoint["tree_size"]) or body.root != checkpoint["root"]:
        report.fail(subject, "the manifest's tree size or root differs from the signed text")
        return
    if key_id(public) != checkpoint.get("key_id"):
        report.fail(subject, "the manifest's key id is not that of the key that signed")
        return
    embedded = {
        CHECKPOINT_TEXT: text.encode("utf-8"),
        CHECKPOINT_SIGNATURE: base64.b64decode(checkpoint["signature"]),
        CHECKPOINT_KEY: str(checkpoint["public_key"]).encode("ascii"),
    }
    token_b64 = checkpoint.get("timestamp_token")
    if token_b64:
        embedded[CHECKPOINT_TIMESTAMP] = base64.b64decode(token_b64)
    for name, expected in embedded.items():
        if name in files and files[name] != expected:
            report.fail(name, "differs from the checkpoint in the manifest")
    stamped = ""
    if token_b64:
        try:
            algorithm, imprint, when = token_imprint(base64.b64decode(token_b64))
        except Exception as exc:  # damaged ASN.1
            report.fail(subject, f"its timestamp token is unreadable ({type(exc).__name__})")
            return
        if algorithm != "sha256" or imprint != hashlib.sha256(text.encode("utf-8")).digest():
            report.fail(subject, "its timestamp token is for other data than its text")
            return
        stamped = f"; timestamped {when} by {checkpoint.get('tsa_url')}"
    report.checks.append(
        f"checkpoint #{checkpoint.get('id')}: {body.tree_size} entries, root {body.root}, "
        f"signed {body.time} by key {checkpoint['key_id']}{stamped}"
    )


def _check_cover(path: Path, root_hex: str, key_hex: str, report: Report) -> None:
    """The root a reader sees on the cover must be the one the proofs lead to, and the
    key id the one that signed the checkpoint."""
    if shutil.which("pdftotext") is None:
        report.notes.append("pdftotext is not installed: the root on the cover was not read")
        return
    proc = subprocess.run(
        ["pdftotext", "-f", "1", "-l", "1", "-layout", str(path), "-"],
        capture_output=True,
        text=True,
        check=False,
    )
    cover = "".join(proc.stdout.split())
    if root_hex in cover:
        report.checks.append("the cover prints the checkpoint's root")
    else:
        report.fail("cover", f"does not print the checkpoint's root {root_hex}")
    if key_hex in cover:
        report.checks.append("the cover prints the id of the key that signed the checkpoint")
    else:
        report.fail(
            "cover",
            f"does not print the id of the key that signed the checkpoint ({key_hex}): the "
            "checkpoint was signed again with another key",
        )


def _leaf_fields(leaf: str) -> dict[str, Any]:
    try:
        fields = json.loads(leaf)
    except ValueError:
        return {}
    return fields if isinstance(fields, dict) else {}


def _cited_digests(fields: dict[str, Any]) -> set[str]:
    """Every blob digest a leaf cites (its own and its child rows')."""
    cited = set()
    for row in [fields, *[c for c in fields.get("_children", []) if isinstance(c, dict)]]:
        for key in ("raw_sha256", "sha256"):
            if isinstance(row.get(key), str):
                cited.add(row[key])
    return cited


def _check_exhibits(
    manifest: dict[str, Any], files: dict[str, bytes], root: bytes, size: int, report: Report
) -> set[str]:
    listed: set[str] = set()
    for exhibit in manifest.get("exhibits", []):
        number = str(exhibit.get("exhibit"))
        bad_before = len(report.failures)
        leaves = []
        for record in exhibit.get("records", []):
            subject = f"{number} {record.get('record')}"
            leaf = str(record.get("leaf", ""))
            leaf_h = merkle.leaf_hash(leaf.encode("utf-8"))
            if record.get("leaf_hash") not in (None, leaf_h.hex()):
                report.fail(subject, "the manifest's leaf hash is not the hash of its leaf")
            try:
                proof = [bytes.fromhex(h) for h in record.get("inclusion_proof", [])]
                merkle.verify_inclusion(int(record["leaf_index"]), size, leaf_h, proof, root)
            except (merkle.ProofError, ValueError, KeyError, TypeError) as exc:
                report.fail(
                    subject,
                    f"leaf #{record.get('leaf_index')} is not proved in the checkpoint: {exc}",
                )
            leaves.append(_leaf_fields(leaf))
        cited = set().union(*(_cited_digests(f) for f in leaves)) if leaves else set()
        line_digests = [f["line_sha256"] for f in leaves if f.get("_table") == "source_lines"]
        for item in exhibit.get("files", []):
            name = str(item.get("name"))
            listed.add(name)
            data = files.get(name)
            if data is None:
                report.fail(name, f"listed for {number} but not embedded: it was removed")
                continue
            digest = hashlib.sha256(data).hexdigest()
            if digest != item.get("sha256"):
                report.fail(
                    name,
                    f"its SHA-256 is {digest}, the manifest says {item.get('sha256')}: "
                    "the file was changed",
                )
            elif digest not in cited and not _lines_match(data, line_digests):
                report.fail(name, f"is not cited by any ledger entry of {number}")
        if len(report.failures) == bad_before:
            n_files = len(exhibit.get("files", []))
            indices = ", ".join(f"#{r.get('leaf_index')}" for r in exhibit.get("records", []))
            files_text = (
                "no file"
                if n_files == 0
                else ("1 file matches" if n_files == 1 else f"{n_files} files match")
                + " the manifest"
            )
            leaves_text = "leaf" if len(exhibit.get("records", [])) == 1 else "leaves"
            report.checks.append(
                f"{number}: {files_text}; {leaves_text} {indices} proved in the checkpoint"
            )
    return listed


def _lines_match(data: bytes, line_digests: list[str]) -> bool:
    """The phone-system lines file: one line per source line, in order, each by its SHA-256."""
    if not line_digests or not data.endswith(b"\n"):
        return False
    lines = data[:-1].split(b"\n")
    return [hashlib.sha256(line).hexdigest() for line in lines] == line_digests
