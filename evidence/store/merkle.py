"""The RFC 6962 Merkle tree over the ledger: hashes, roots, inclusion and consistency proofs.

Leaf hash = SHA-256(0x00 || leaf), node hash = SHA-256(0x01 || left || right)
(RFC 6962 section 2.1, unchanged in RFC 9162). The leaf of ledger entry ``seq``
is the UTF-8 bytes of its canonical JSON payload, at index ``seq - 1``.

Nothing here touches the database: the functions take leaf hashes, so they are
tested against the published transparency-dev vectors and reused by
``evidence verify dossier.pdf``, which has no store.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

HASH_SIZE = 32
EMPTY_ROOT = hashlib.sha256(b"").digest()


def leaf_hash(leaf: bytes) -> bytes:
    return hashlib.sha256(b"\x00" + leaf).digest()


def node_hash(left: bytes, right: bytes) -> bytes:
    return hashlib.sha256(b"\x01" + left + right).digest()


def _split(n: int) -> int:
    """The largest power of two smaller than ``n`` (n > 1)."""
    return 1 << ((n - 1).bit_length() - 1)


@dataclass
class Frontier:
    """The roots of the perfect subtrees that make up a tree of ``size`` leaves.

    Enough to extend the tree and compute its root in O(log n): a checkpoint keeps
    it, so the next checkpoint hashes only the leaves added since.
    """

    size: int = 0
    nodes: list[bytes] = field(default_factory=list)  # largest subtree first

    def append(self, leaf_hash_: bytes) -> None:
        self.nodes.append(leaf_hash_)
        self.size += 1
        # Merge equal-sized subtrees: one merge per trailing 1 bit of the old size.
        merges = (self.size ^ (self.size - 1)).bit_length() - 1
        for _ in range(merges):
            right = self.nodes.pop()
            left = self.nodes.pop()
            self.nodes.append(node_hash(left, right))

    def extend(self, leaf_hashes: Iterable[bytes]) -> None:
        for h in leaf_hashes:
            self.append(h)

    def root(self) -> bytes:
        if not self.nodes:
            return EMPTY_ROOT
        acc = self.nodes[-1]
        for node in reversed(self.nodes[:-1]):
            acc = node_hash(node, acc)
        return acc

    def copy(self) -> Frontier:
        return Frontier(self.size, list(self.nodes))

    def to_hex(self) -> list[str]:
        return [n.hex() for n in self.nodes]

    @classmethod
    def from_hex(cls, size: int, nodes: Sequence[str]) -> Frontier:
        frontier = cls(size, [bytes.fromhex(n) for n in nodes])
        if len(frontier.nodes) != bin(size).count("1"):
            raise ValueError(f"a frontier of a {size}-leaf tree has {bin(size).count('1')} nodes")
        return frontier


def root_of(leaf_hashes: Iterable[bytes]) -> bytes:
    frontier = Frontier()
    frontier.extend(leaf_hashes)
    return frontier.root()


class Tree:
    """All levels of a tree, for proofs of many leaves (the dossier's exhibits).

    Each level is one ``bytes`` of concatenated 32-byte hashes, so a million
    leaves take about 64 MB.
    """

    def __init__(self, leaf_hashes: Iterable[bytes]) -> None:
        level = b"".join(leaf_hashes)
        if len(level) % HASH_SIZE:
            raise ValueError("leaf hashes must be 32 bytes each")
        self.levels = [level]
        while len(level) >= 2 * HASH_SIZE:
            step = 2 * HASH_SIZE
            level = b"".join(
                hashlib.sha256(b"\x01" + level[i : i + step]).digest()
                for i in range(0, len(level) - step + 1, step)
            )
            self.levels.append(level)
        self.size = len(self.levels[0]) // HASH_SIZE

    def _node(self, height: int, index: int) -> bytes:
        level = self.levels[height]
        return level[index * HASH_SIZE : (index + 1) * HASH_SIZE]

    def subtree_root(self, start: int, end: int) -> bytes:
        """MTH(D[start:end]) for the ranges RFC 6962's recursion produces."""
        n = end - start
        if n == 0:
            return EMPTY_ROOT
        if n & (n - 1) == 0 and start % n == 0:
            return self._node(n.bit_length() - 1, start // n)
        k = _split(n)
        return node_hash(self.subtree_root(start, start + k), self.subtree_root(start + k, end))

    def root(self, size: int | None = None) -> bytes:
        return self.subtree_root(0, self.size if size is None else self._check_size(size))

    def _check_size(self, size: int) -> int:
        if not 0 <= size <= self.size:
            raise ValueError(f"the tree has {self.size} leaves, not {size}")
        return size

    def inclusion_proof(self, index: int, size: int | None = None) -> list[bytes]:
        """PATH(index, D[0:size]) of RFC 6962 section 2.1.1."""
        n = self.size if size is None else self._check_size(size)
        if not 0 <= index < n:
            raise ValueError(f"leaf {index} is not in a tree of {n} leaves")
        return self._path(index, 0, n)

    def _path(self, m: int, start: int, end: int) -> list[bytes]:
        n = end - start
        if n == 1:
            return []
        k = _split(n)
        if m < k:
            return [*self._path(m, start, start + k), self.subtree_root(start + k, end)]
        return [*self._path(m - k, start + k, end), self.subtree_root(start, start + k)]

    def consistency_proof(self, old_size: int, new_size: int | None = None) -> list[bytes]:
        """PROOF(old_size, D[0:new_size]) of RFC 6962 section 2.1.2."""
        n = self.size if new_size is None else self._check_size(new_size)
        if not 0 <= old_size <= n:
            raise ValueError(f"cannot prove {old_size} leaves consistent with {n}")
        if old_size == 0 or old_size == n:
            return []
        return self._subproof(old_size, 0, n, True)

    def _subproof(self, m: int, start: int, end: int, complete: bool) -> list[bytes]:
        n = end - start
        if m == n:
            return [] if complete else [self.subtree_root(start, end)]
        k = _split(n)
        if m <= k:
            return [
                *self._subproof(m, start, start + k, complete),
                self.subtree_root(start + k, end),
            ]
        return [*self._subproof(m - k, start + k, end, False), self.subtree_root(start, start + k)]


class ProofError(ValueError):
    """A proof that does not hold, with the reason."""


def _check_hashes(proof: Sequence[bytes]) -> None:
    for i, h in enumerate(proof):
        if len(h) != HASH_SIZE:
            raise ProofError(f"proof element {i} is {len(h)} bytes, not {HASH_SIZE}")


def root_from_inclusion_proof(
    index: int, size: int, leaf_hash_: bytes, proof: Sequence[bytes]
) -> bytes:
    """The root that ``proof`` leads to from leaf ``index`` (RFC 9162 section 2.1.3.2)."""
    if not 0 <= index < size:
        raise ProofError(f"leaf index {index} is outside a tree of {size} leaves")
    if len(leaf_hash_) != HASH_SIZE:
        raise ProofError("the leaf hash is not 32 bytes")
    _check_hashes(proof)
    fn, sn, r = index, size - 1, leaf_hash_
    for p in proof:
        if sn == 0:
            raise ProofError("the proof is longer than the tree is deep")
        if fn & 1 or fn == sn:
            r = node_hash(p, r)
            if not fn & 1:
                while fn and not fn & 1:
                    fn >>= 1
                    sn >>= 1
        else:
            r = node_hash(r, p)
        fn >>= 1
        sn >>= 1
    if sn != 0:
        raise ProofError("the proof is shorter than the tree is deep")
    return r


def verify_inclusion(
    index: int, size: int, leaf_hash_: bytes, proof: Sequence[bytes], root: bytes
) -> None:
    """Raise ProofError unless ``proof`` shows the leaf at ``index`` in the tree ``root``."""
    got = root_from_inclusion_proof(index, size, leaf_hash_, proof)
    if got != root:
        raise ProofError(f"the proof leads to root {got.hex()}, not {root.hex()}")


def verify_consistency(
    old_size: int, new_size: int, old_root: bytes, new_root: bytes, proof: Sequence[bytes]
) -> None:
    """Raise ProofError unless the tree ``old_root`` is a prefix of ``new_root``
    (RFC 9162 section 2.1.4.2)."""
    if old_size < 0 or new_size < old_size:
        raise ProofError(f"a tree of {new_size} leaves cannot extend one of {old_size}")
    _check_hashes(proof)
    if old_size == new_size:
        if proof:
            raise ProofError("equal sizes need an empty proof")
        if old_root != new_root:
            raise ProofError("equal sizes but different roots")
        return
    if old_size == 0:
        if proof:
            raise ProofError("an empty tree needs an empty proof")
        return
    if not proof:
        raise ProofError("the proof is empty")
    path = list(proof)
    if old_size & (old_size - 1) == 0:
        path.insert(0, old_root)
    fn, sn = old_size - 1, new_size - 1
    while fn & 1:
        fn >>= 1
        sn >>= 1
    fr = sr = path[0]
    for c in path[1:]:
        if sn == 0:
            raise ProofError("the proof is longer than needed")
        if fn & 1 or fn == sn:
            fr = node_hash(c, fr)
            sr = node_hash(c, sr)
            if not fn & 1:
                while fn and not fn & 1:
                    fn >>= 1
                    sn >>= 1
        else:
            sr = node_hash(sr, c)
        fn >>= 1
        sn >>= 1
    if sn != 0:
        raise ProofError("the proof is shorter than needed")
    if fr != old_root:
        raise ProofError("the proof does not lead to the old root")
    if sr != new_root:
        raise ProofError("the proof does not lead to the new root")
