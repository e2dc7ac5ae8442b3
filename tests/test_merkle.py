"""The RFC 6962 tree against the published transparency-dev vectors (tests/data/rfc6962)."""

from __future__ import annotations

import base64
import hashlib
import json
from pathlib import Path

import pytest

from evidence.store import merkle
from evidence.store.merkle import Frontier, ProofError, Tree

VECTORS_DIR = Path(__file__).parent / "data" / "rfc6962"
VECTORS = json.loads((VECTORS_DIR / "vectors.json").read_text())
LEAVES = [bytes.fromhex(h) for h in VECTORS["leaves_hex"]]
ROOTS = [bytes.fromhex(h) for h in VECTORS["roots_hex"]]
LEAF_HASHES = [merkle.leaf_hash(leaf) for leaf in LEAVES]


def _b64(value: str) -> bytes:
    return base64.b64decode(value)


def _files(kind: str) -> list[Path]:
    return sorted((VECTORS_DIR / kind).glob("*/*.json"))


@pytest.mark.parametrize("case", VECTORS["hasher"], ids=lambda c: c["desc"])
def test_hasher_vectors(case: dict) -> None:
    if case["kind"] == "empty_root":
        got = merkle.root_of([])
    elif case["kind"] == "leaf":
        got = merkle.leaf_hash(bytes.fromhex(case["input_hex"]))
    else:
        got = merkle.node_hash(bytes.fromhex(case["left_hex"]), bytes.fromhex(case["right_hex"]))
    assert got.hex() == case["want"]


def test_roots_of_every_prefix() -> None:
    tree = Tree(LEAF_HASHES)
    frontier = Frontier()
    for size in range(1, 9):
        frontier.append(LEAF_HASHES[size - 1])
        assert merkle.root_of(LEAF_HASHES[:size]) == ROOTS[size - 1]
        assert tree.root(size) == ROOTS[size - 1]
        assert frontier.root() == ROOTS[size - 1]
        assert len(frontier.nodes) == bin(size).count("1")


@pytest.mark.parametrize(
    "case", VECTORS["inclusion_proofs"], ids=lambda c: f"{c['leaf']}-of-{c['size']}"
)
def test_inclusion_proof_vectors(case: dict) -> None:
    index, size = case["leaf"] - 1, case["size"]
    want = [bytes.fromhex(h) for h in case["proof"]]
    assert Tree(LEAF_HASHES[:size]).inclusion_proof(index) == want
    assert Tree(LEAF_HASHES).inclusion_proof(index, size) == want
    merkle.verify_inclusion(index, size, LEAF_HASHES[index], want, ROOTS[size - 1])


@pytest.mark.parametrize(
    "case", VECTORS["consistency_proofs"], ids=lambda c: f"{c['size1']}-to-{c['size2']}"
)
def test_consistency_proof_vectors(case: dict) -> None:
    size1, size2 = case["size1"], case["size2"]
    want = [bytes.fromhex(h) for h in case["proof"]]
    assert Tree(LEAF_HASHES).consistency_proof(size1, size2) == want
    merkle.verify_consistency(size1, size2, ROOTS[size1 - 1], ROOTS[size2 - 1], want)


@pytest.mark.parametrize("path", _files("inclusion"), ids=lambda p: f"{p.parent.name}/{p.stem}")
def test_published_inclusion_probes(path: Path) -> None:
    case = json.loads(path.read_text())
    proof = [_b64(p) for p in case["proof"] or []]
    args = (case["leafIdx"], case["treeSize"], _b64(case["leafHash"]), proof, _b64(case["root"]))
    if case["wantErr"]:
        with pytest.raises(ProofError):
            merkle.verify_inclusion(*args)
    else:
        merkle.verify_inclusion(*args)


@pytest.mark.parametrize("path", _files("consistency"), ids=lambda p: f"{p.parent.name}/{p.stem}")
def test_published_consistency_probes(path: Path) -> None:
    case = json.loads(path.read_text())
    proof = [_b64(p) for p in case["proof"] or []]
    args = (case["size1"], case["size2"], _b64(case["root1"]), _b64(case["root2"]), proof)
    if case["wantErr"]:
        with pytest.raises(ProofError):
            merkle.verify_consistency(*args)
    else:
        merkle.verify_consistency(*args)


def _corrupt_inclusion(index: int, size: int, proof: list[bytes], root: bytes, leaf: bytes):
    """The probes of transparency-dev's corruptInclusionProof: each must be refused."""
    some = bytes.fromhex("abacaba000000000000000000000000000000000000000000060061e00123456")
    yield index - 1, size, leaf, proof, root
    yield index + 1, size, leaf, proof, root
    yield index ^ 2, size, leaf, proof, root
    yield index, size * 2, leaf, proof, root
    yield index, size // 2, leaf, proof, root
    yield index, size, b"WrongLeaf", proof, root
    yield index, size, leaf, proof, merkle.EMPTY_ROOT
    yield index, size, leaf, proof, some
    yield index, size, leaf, [*proof, b""], root
    yield index, size, leaf, [*proof, root], root
    yield index, size, leaf, [b"", *proof], root
    yield index, size, leaf, [root, *proof], root
    for i in range(len(proof)):
        flipped = list(proof)
        flipped[i] = bytes([proof[i][0] ^ 8]) + proof[i][1:]
        yield index, size, leaf, flipped, root
    if proof:
        yield index, size, leaf, proof[:-1], root
    if len(proof) > 1:
        yield index, size, leaf, [proof[0], some, *proof[1:]], root


def test_every_corrupted_inclusion_probe_is_refused() -> None:
    tree = Tree(LEAF_HASHES)
    for size in range(1, 9):
        for index in range(size):
            proof = tree.inclusion_proof(index, size)
            root = tree.root(size)
            merkle.verify_inclusion(index, size, LEAF_HASHES[index], proof, root)
            for probe in _corrupt_inclusion(index, size, proof, root, LEAF_HASHES[index]):
                with pytest.raises(ProofError):
                    merkle.verify_inclusion(*probe)


def test_every_consistency_proof_of_a_larger_tree() -> None:
    """Every (m, n) up to 40 leaves: our proofs verify, and a flipped bit or a wrong root fails."""
    hashes = [merkle.leaf_hash(hashlib.sha256(str(i).encode()).digest()) for i in range(40)]
    tree = Tree(hashes)
    roots = [tree.root(n) for n in range(41)]
    for n in range(1, 41):
        assert Frontier.from_hex(n, _frontier(hashes[:n]).to_hex()).root() == roots[n]
        for m in range(1, n + 1):
            proof = tree.consistency_proof(m, n)
            merkle.verify_consistency(m, n, roots[m], roots[n], proof)
            if m == n:
                continue
            with pytest.raises(ProofError):
                merkle.verify_consistency(
                    m, n, roots[m - 1] if m > 1 else b"x" * 32, roots[n], proof
                )
            for i in range(len(proof)):
                bad = list(proof)
                bad[i] = bytes([bad[i][0] ^ 16]) + bad[i][1:]
                with pytest.raises(ProofError):
                    merkle.verify_consistency(m, n, roots[m], roots[n], bad)
        for m in range(n):
            proof = tree.inclusion_proof(m, n)
            merkle.verify_inclusion(m, n, hashes[m], proof, roots[n])


def _frontier(hashes: list[bytes]) -> Frontier:
    frontier = Frontier()
    frontier.extend(hashes)
    return frontier
