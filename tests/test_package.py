"""--format zip: the PDF, the originals, manifest.csv, and a BagIt bag that bagit validates."""

from __future__ import annotations

import csv
import datetime as dt
import hashlib
import io
import zipfile
from pathlib import Path

import bagit
import pytest

from evidence.config import load_config
from evidence.render.dossier import export_dossier
from evidence.render.package import package_zip
from evidence.render.views import Embedded
from evidence.store.db import open_store
from tests.conftest import Env
from tests.samples import AINO, SAMPLE_TOML, load_sample

GENERATED = dt.datetime(2026, 3, 21, 7, 0, tzinfo=dt.UTC)


@pytest.mark.parametrize("env", ["sqlite"], indirect=True)
def test_zip_holds_a_valid_reproducible_bag(env: Env, tmp_path: Path) -> None:
    env.write_config(SAMPLE_TOML)
    store = open_store(load_config())
    try:
        load_sample(store)
        pdf = tmp_path / "aino.pdf"
        result = export_dossier(store, customer_ref=AINO, output=pdf, generated_at=GENERATED)
    finally:
        store.close()
    assert len(result.embedded) >= 10  # 6 emails, 3 calls' lines, a recording

    out = package_zip(pdf, result.embedded, tmp_path / "a" / "aino.zip", created=GENERATED)
    again = package_zip(pdf, result.embedded, tmp_path / "b" / "aino.zip", created=GENERATED)
    assert out.read_bytes() == again.read_bytes()  # byte-identical

    with zipfile.ZipFile(out) as archive:
        names = archive.namelist()
        assert names == sorted(names)
        assert all(n.startswith("aino/") for n in names)
        assert {i.date_time for i in archive.infolist()} == {(2026, 3, 21, 7, 0, 0)}
        assert archive.read("aino/data/aino.pdf") == pdf.read_bytes()
        assert archive.read("aino/bagit.txt") == (
            b"BagIt-Version: 1.0\nTag-File-Character-Encoding: UTF-8\n"
        )
        assert b"Bagging-Date: 2026-03-21\n" in archive.read("aino/bag-info.txt")
        manifest = list(
            csv.DictReader(io.StringIO(archive.read("aino/data/manifest.csv").decode()))
        )
        originals = {n for n in names if n.startswith("aino/data/originals/")}
        archive.extractall(tmp_path / "auki")

    unique = {e.name: e for e in result.embedded}
    assert len(manifest) == len(unique) == len(originals)
    for row in manifest:
        item = unique[row["file"].removeprefix("originals/")]
        assert row["exhibit"] == item.exhibit
        # Exhibits' originals, and the verification files (manifest.json, checkpoint).
        assert row["exhibit"].startswith("E-") or row["exhibit"] == "tarkistustieto"
        assert int(row["size"]) == len(item.data)
        data = (tmp_path / "auki/aino/data" / row["file"]).read_bytes()
        assert data == item.data and hashlib.sha256(data).hexdigest() == row["sha256"]

    bag = bagit.Bag(str(tmp_path / "auki/aino"))
    bag.validate()  # bagit's own validator: manifests, tag manifest, Payload-Oxum
    assert bag.version_info == (1, 0)
    # The validator is not a formality: one changed byte is caught.
    first = sorted((tmp_path / "auki/aino/data/originals").iterdir())[0]
    first.write_bytes(first.read_bytes() + b" ")
    with pytest.raises(bagit.BagValidationError):
        bagit.Bag(str(tmp_path / "auki/aino")).validate()


def test_zip_refuses_unsafe_or_conflicting_names(tmp_path: Path) -> None:
    pdf = tmp_path / "d.pdf"
    pdf.write_bytes(b"%PDF-1.7\n")

    def item(name: str, data: bytes) -> Embedded:
        return Embedded.of(name, data, "text/plain", "", "E-001")

    with pytest.raises(ValueError, match="cannot be a file name"):
        package_zip(pdf, [item("../etc/passwd", b"x")], tmp_path / "x.zip")
    with pytest.raises(ValueError, match="two different originals"):
        package_zip(pdf, [item("a.txt", b"1"), item("a.txt", b"2")], tmp_path / "x.zip")
    assert not (tmp_path / "x.zip").exists()


def test_an_original_that_changed_after_the_export_was_prepared_is_refused() -> None:
    """The originals are read again when the PDF (or the zip) is written: bytes that no
    longer match the SHA-256 the manifest states stop the export."""
    from evidence.errors import IntegrityFailure

    digest = hashlib.sha256(b"the original").hexdigest()
    same = Embedded("a.txt", "text/plain", "", "E-001", digest, 12, lambda: (b"the ", b"original"))
    assert same.read() == b"the original"
    changed = Embedded("a.txt", "text/plain", "", "E-001", digest, 12, lambda: (b"the 0riginal",))
    with pytest.raises(IntegrityFailure):
        changed.read()
