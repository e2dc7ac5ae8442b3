"""What export produces so that a dossier proves itself: the manifest with inclusion proofs,
the signed page digests and the PAdES signature. Checking them is :mod:`evidence.verify`."""
