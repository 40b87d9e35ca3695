"""The audit log's RFC 6962 tree: proofs that hold for every leaf and size, and fail for any other leaf,
position or root (the signed checkpoint binds the size to its root). Checked exhaustively on small trees,
where every shape of tree occurs."""

from __future__ import annotations

import hashlib

from hms.attest import merkle


def _leaves(n: int) -> list[bytes]:
    return [merkle.leaf_hash(str(i).encode()) for i in range(n)]


def _mth(leaves: list[bytes]) -> bytes:
    """RFC 9162 §2.1.1 as written (recursive): the reference the iterative root is held to."""
    if len(leaves) == 1:
        return leaves[0]
    k = 1 << ((len(leaves) - 1).bit_length() - 1)
    return hashlib.sha256(b"\x01" + _mth(leaves[:k]) + _mth(leaves[k:])).digest()


def test_the_root_is_rfc_9162s_tree_hash_including_the_empty_tree() -> None:
    assert merkle.root([]) == hashlib.sha256(b"").digest()
    for n in range(1, 70):
        assert merkle.root(_leaves(n)) == _mth(_leaves(n))


def test_every_leaf_of_every_small_tree_proves_its_inclusion_and_nothing_else_does() -> None:
    for n in range(1, 34):
        leaves = _leaves(n)
        top = merkle.root(leaves)
        for i in range(n):
            proof = merkle.inclusion_proof(i, leaves)
            assert merkle.verify_inclusion(leaves[i], i, n, proof, top)
            assert not merkle.verify_inclusion(merkle.leaf_hash(b"forged"), i, n, proof, top)
            assert not merkle.verify_inclusion(leaves[i], i, n, proof, merkle.root([*leaves, leaves[0]]))
            if n > 1:
                assert not merkle.verify_inclusion(leaves[i], (i + 1) % n, n, proof, top)


def test_every_prefix_of_every_small_tree_is_proved_consistent_and_a_rewritten_one_is_not() -> None:
    for n in range(1, 34):
        leaves = _leaves(n)
        for m in range(1, n + 1):
            proof = merkle.consistency_proof(m, leaves)
            old = merkle.root(leaves[:m])
            assert merkle.verify_consistency(m, n, old, merkle.root(leaves), proof)
            rewritten = [merkle.leaf_hash(b"edited"), *leaves[1:m]]
            assert not merkle.verify_consistency(m, n, merkle.root(rewritten), merkle.root(leaves), proof)
            if m < n:
                assert not merkle.verify_consistency(m, n, old, merkle.root([*leaves[:-1], leaves[0]]), proof)
