"""Verification (checkers only): prove that the store and the dossiers made from it are
untouched. The proofs a dossier carries are made by :mod:`evidence.proofs`.

``verify_store`` recomputes everything the store claims (blob hashes, the
ledger's hash chain and Merkle tree, each record against its ledger entry, the
append-only triggers, every signed checkpoint). ``verify_dossier`` checks a
dossier PDF on its own, with no store: its embedded originals against the
manifest, the inclusion proofs against the checkpoint printed on the cover, the
checkpoint's signature and the PDF's own signature.
"""

from evidence.verify.report import Finding, Report

__all__ = ["Finding", "Report"]
