"""Figures for the Merkle log: checkpoints on import, `evidence verify`, proofs for a dossier.

Builds a throw-away SQLite store with N phone-system lines (one ledger entry
each, with a child row), then times the import (which ends with a signed
checkpoint), a checkpoint over the whole log, `verify_store`, and a tree with
500 inclusion proofs. Prints figures; asserts nothing about time.

    .venv/bin/python benchmarks/merkle_log.py [N]

Measured on the 2-core development machine (busy with other test runs), N = 20,000:
import 56-64 s (the importer itself; the checkpoint at its end reads and hashes the 20,000
leaves in 0.1-0.2 s), checkpoint with nothing new 0.005-0.01 s, verify_store 3.8 s (about
0.2 ms per ledger entry: JSON encoding of each row dominates), tree + 500 proofs 0.06 s; a
tree over 1,000,000 leaf hashes 2.2-2.4 s and 64 MB.
"""

from __future__ import annotations

import hashlib
import random
import sys
import tempfile
import time
from pathlib import Path

from evidence.config import load_config
from evidence.ingest.asterisk import import_calls
from evidence.store import merkle
from evidence.store.checkpoints import iter_leaf_hashes, write_checkpoint
from evidence.store.db import open_store, upgrade
from evidence.verify.store import verify_store


def queue_log(path: Path, n: int) -> None:
    start = 1773123670
    with path.open("w") as fh:
        for i in range(n):
            uid = f"{start + i}.{i}"
            fh.write(f"{start + i}|{uid}|laskutus|NONE|ENTERQUEUE||0401234{i % 1000:03d}|1\n")


def main() -> None:
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 20_000
    with tempfile.TemporaryDirectory() as tmp:
        home = Path(tmp)
        config = load_config({"EVIDENCE_HOME": str(home)})
        upgrade(config)
        store = open_store(config)
        log = home / "queue_log"
        queue_log(log, n)
        t0 = time.perf_counter()
        import_calls(store, log, "asterisk-queue-log")
        t_import = time.perf_counter() - t0
        print(f"import of {n:,} queue_log lines, ending with a checkpoint: {t_import:.2f} s")

        t0 = time.perf_counter()
        with store.writing() as session:
            write_checkpoint(session, config, "benchmark", always=True)
        print(f"checkpoint when nothing was added (frontier): {time.perf_counter() - t0:.3f} s")

        t0 = time.perf_counter()
        report = verify_store(store)
        t_verify = time.perf_counter() - t0
        assert report.intact, report.lines()
        print(f"evidence verify (store, {report.facts['tree_size']:,} entries): {t_verify:.2f} s")

        t0 = time.perf_counter()
        with store.session() as session:
            leaves = [h for _seq, h in iter_leaf_hashes(session)]
        t_leaves = time.perf_counter() - t0
        t0 = time.perf_counter()
        tree = merkle.Tree(leaves)
        t_tree = time.perf_counter() - t0
        rng = random.Random(1)
        t0 = time.perf_counter()
        for index in (rng.randrange(tree.size) for _ in range(500)):
            proof = tree.inclusion_proof(index)
            merkle.verify_inclusion(index, tree.size, leaves[index], proof, tree.root())
        t_proofs = time.perf_counter() - t0
        print(
            f"dossier proofs: read {len(leaves):,} leaves {t_leaves:.2f} s, "
            f"tree {t_tree:.2f} s, 500 proofs made and checked {t_proofs:.3f} s"
        )
        store.close()

    hashes = [hashlib.sha256(str(i).encode()).digest() for i in range(1_000_000)]
    t0 = time.perf_counter()
    big = merkle.Tree(hashes)
    print(
        f"tree over 1,000,000 leaf hashes: {time.perf_counter() - t0:.2f} s, "
        f"{sum(len(level) for level in big.levels) / 1e6:.0f} MB"
    )


if __name__ == "__main__":
    main()
