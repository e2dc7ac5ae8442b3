"""Checking that the pages show what was signed: ``pages.json`` (made by
:mod:`evidence.proofs.pages`) against the digests of the dossier's pages as they are now."""

from __future__ import annotations

import difflib
import hashlib
import json
from collections.abc import Mapping, Sequence
from typing import Any

from cryptography.exceptions import InvalidSignature

from evidence.errors import EvidenceError
from evidence.proofs.pages import PAGES_FORMAT, PAGES_KEY, PAGES_NAME, PAGES_SIGNATURE
from evidence.store.checkpoints import key_id, load_public_pem
from evidence.verify.report import Report


def check_pages(
    shown: Sequence[str],
    files: Mapping[str, bytes],
    manifest: Mapping[str, Any],
    report: Report,
) -> str | None:
    """Check ``pages.json`` against ``shown``, the digests of the dossier's pages
    (:func:`page_digests`); the id of the key that signed it."""
    data = files.get(PAGES_NAME)
    if data is None:
        report.fail(
            PAGES_NAME,
            "not embedded: no signature covers the pages (a dossier from before evidence "
            "signed its pages, or it was removed): what the pages show cannot be checked",
        )
        return None
    try:
        body = json.loads(data)
        if body.get("format") != PAGES_FORMAT:
            raise ValueError(f"format {body.get('format')!r}")
        signed = [str(d) for d in body["pages"]]
        if int(body["page_count"]) != len(signed):
            raise ValueError("its page count is not the number of its digests")
        public = load_public_pem(files.get(PAGES_KEY, b"").decode("ascii", "replace"))
    except (ValueError, KeyError, TypeError, AttributeError, EvidenceError) as exc:
        report.fail(PAGES_NAME, f"unreadable ({exc})")
        return None
    signer = key_id(public)
    try:
        public.verify(files.get(PAGES_SIGNATURE, b""), data)
    except InvalidSignature:
        report.fail(
            PAGES_NAME, f"its signature ({PAGES_SIGNATURE}) does not hold: pages.json was altered"
        )
        return signer
    before = len(report.failures)
    if body.get("key_id") != signer:
        report.fail(PAGES_NAME, f"names key {body.get('key_id')}, but key {signer} signed it")
    if body.get("manifest_sha256") != hashlib.sha256(files.get("manifest.json", b"")).hexdigest():
        report.fail(PAGES_NAME, "was signed for another manifest.json than the embedded one")
    checkpoint = manifest.get("checkpoint", {})
    if body.get("checkpoint", {}).get("root") != checkpoint.get("root"):
        report.fail(PAGES_NAME, "was signed for another checkpoint than the manifest's")
    _compare(signed, list(shown), report)
    if len(report.failures) == before:
        report.checks.append(
            f"all {len(signed)} pages show what key {signer} signed ({PAGES_NAME})"
        )
    return signer


def _compare(signed: list[str], shown: list[str], report: Report) -> None:
    """Name every page that differs from the signed ones: the two lists are aligned
    (difflib), so a removed page is named once, not every page after it."""
    if len(shown) != len(signed):
        change = "added" if len(shown) > len(signed) else "removed"
        report.fail(
            "pages",
            f"the dossier has {len(shown)} pages, {len(signed)} were signed: pages were {change}",
        )
    signed_at = {digest: n for n, digest in enumerate(signed, start=1)}
    if sorted(shown) == sorted(signed):  # the same pages in another order: name each moved one
        for j, digest in enumerate(shown):
            if digest != signed[j]:
                report.fail(
                    f"page {j + 1}",
                    f"is signed page {signed_at[digest]}: the pages were reordered "
                    "(or a page repeated)",
                )
        return
    present = set(shown)
    matcher = difflib.SequenceMatcher(None, signed, shown, autojunk=False)
    for tag, i1, i2, j1, j2 in matcher.get_opcodes():
        if tag == "equal":
            continue
        changed: set[int] = set()  # signed pages shown changed: named once, as changed
        for j in range(j1, j2):
            was = signed_at.get(shown[j])
            if was == j + 1:
                continue  # in its own place, though the pages around it moved
            if was is not None:
                report.fail(
                    f"page {j + 1}",
                    f"is signed page {was}: the pages were reordered (or a page repeated)",
                )
            elif tag == "replace" and j - j1 < i2 - i1:
                changed.add(i1 + j - j1)
                report.fail(
                    f"page {j + 1}",
                    f"shows something other than signed page {i1 + j - j1 + 1}: it was changed",
                )
            else:
                report.fail(f"page {j + 1}", "is not a signed page: it was added")
        for i in range(i1, i2):
            if signed[i] in present or i in changed:
                continue  # moved or changed: named above
            report.fail(f"signed page {i + 1}", "is not in the dossier: it was removed")
