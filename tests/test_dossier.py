"""The dossier as a document: languages, bookmarks, links, page stamps, PDF/A, reproducibility.

Built from the project's own sample dispute (sample/), so it runs without ../shared.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import subprocess
from pathlib import Path

import pikepdf
import pytest
from pikepdf import NameTree, pdfa

from evidence.ingest.asterisk import import_calls
from evidence.ingest.mail import import_mail
from evidence.ingest.recordings import import_recordings
from evidence.proofs.pages import PAGE_FILES
from evidence.records.cases import add_claim, attach_document, open_case
from evidence.records.customers import add_customer
from evidence.records.incidents import add_incident
from evidence.render.dossier import export_dossier
from evidence.store.db import Store
from tests.conftest import RENDER_ONLY, Env, page_texts, pdf_text

SAMPLE = Path(__file__).resolve().parents[1] / "sample"
LETTER = SAMPLE / "letters/kkv-selvityspyynto.pdf"
PINNED = dt.datetime(2026, 3, 25, 10, 0, tzinfo=dt.UTC)


@pytest.fixture
def sample_store(env: Env, store: Store) -> Store:
    env.write_config(
        '[company]\nname = "Pohjolan Vesi Oy"\nmail_domains = ["pohjolanvesi.example"]\n'
    )
    from evidence.config import load_config

    store.config = load_config()
    add_customer(
        store, "200517", "Aino Laaksonen", ["aino.laaksonen@example.com"], ["050 765 4321"]
    )
    import_mail(store, sorted((SAMPLE / "mail").glob("*.eml")) + [SAMPLE / "mail/export.mbox"])
    import_calls(store, SAMPLE / "pbx/Master.csv", "asterisk-cdr")
    import_calls(store, SAMPLE / "pbx/queue_log", "asterisk-queue-log")
    import_recordings(store, SAMPLE / "recordings")
    add_incident(
        store,
        title="Puhelinjärjestelmän häiriö",
        start=dt.datetime(2026, 3, 10, 6, 40, tzinfo=dt.UTC),
        end=dt.datetime(2026, 3, 10, 9, 5, tzinfo=dt.UTC),
        channels=["phone"],
        note=None,
        logged_by="Mikko Heinonen",
    )
    open_case(
        store,
        "KKV/1234/2026",
        customer_ref="200517",
        authority="Kilpailu- ja kuluttajavirasto",
        received=dt.date(2026, 3, 20),
        deadline=dt.date(2026, 4, 3),
    )
    attach_document(store, "KKV/1234/2026", LETTER, title="Selvityspyyntö", document_date=None)
    return store


def _page_texts(out: Path, pages: int) -> list[str]:
    """The text (layout kept) of each of the first ``pages`` pages."""
    return page_texts(out, pages, layout=True)


def _export(store: Store, out: Path, **kwargs: object) -> object:
    return export_dossier(
        store,
        customer_ref=None,
        case_ref="KKV/1234/2026",
        output=out,
        **({"generated_at": PINNED} | kwargs),  # type: ignore[arg-type]
    )


@RENDER_ONLY
@pytest.mark.parametrize(
    ("language", "title", "moment"),
    [
        ("fi", "Asiakkaan yhteydenottohistoria", "10.3.2026 09.35.12 (UTC+2)"),
        ("sv", "Kundens kontakthistorik", "10.3.2026 kl. 09:35:12 (UTC+2)"),
        ("en", "Customer contact history", "10 Mar 2026 09:35:12 (UTC+2)"),
    ],
)
def test_languages(
    sample_store: Store, tmp_path: Path, language: str, title: str, moment: str
) -> None:
    out = tmp_path / f"{language}.pdf"
    _export(sample_store, out, language=language)
    flat = " ".join(pdf_text(out).split())
    assert title in flat
    assert moment in flat
    # Exhibit content is never translated.
    assert "Miksi puhelimeen ei vastata?" in flat


def test_structure_links_stamps_and_originals(sample_store: Store, tmp_path: Path) -> None:
    out = tmp_path / "d.pdf"
    result = _export(sample_store, out)
    with pikepdf.open(out) as pdf:
        total = len(pdf.pages)
        texts = _page_texts(out, total)
        # Every page stamped, the appended letter's page too.
        for n, text in enumerate(texts, start=1):
            assert f"sivu {n} / {total}" in text, n
            assert "KKV/1234/2026" in text
        assert "SELVITYSPYYNTÖ" in texts[-1] or "Selvityspyyntö" in texts[-1]
        # The appended page keeps its own content stream object, byte for byte.
        with pikepdf.open(LETTER) as letter:
            original = letter.pages[0].obj.Contents.read_raw_bytes()
        contents = pdf.pages[-1].obj.Contents
        assert any(c.read_raw_bytes() == original for c in contents)

        # Bookmarks: the sections and one per exhibit.
        with pdf.open_outline() as outline:
            top = [item.title for item in outline.root]
            exhibits = [c.title for item in outline.root for c in item.children]
        assert top[:8] == [
            "Kansilehti",
            "Yhteenveto",
            "Tavoitettavuus",
            "Näyttö tavoittamattomuudesta",
            "Asiakkaan tunnisteet ja valintasäännöt",
            "Lähteiden kattavuus",
            "Todisteluettelo",
            "Todisteet aikajärjestyksessä",
        ]
        assert "Upotetut alkuperäiset tiedostot" in top
        assert top[-1] == "Liite 1: Selvityspyyntö"
        assert len(exhibits) == 12 and exhibits[0].startswith("E-001 Sähköposti")

        # Index links (and the summary's) go to the page that holds the exhibit.
        dests = NameTree(pdf.Root.Names.Dests)
        page_of = {repr(p.objgen): i for i, p in enumerate(pdf.pages)}
        index_page = page_of[repr(dests["index"][0].objgen)]
        followed = 0
        for page in pdf.pages[: index_page + 1]:
            for annot in page.obj.get("/Annots", []):
                if "/Dest" not in annot:
                    continue
                name = str(annot.Dest)
                target = page_of[repr(dests[name][0].objgen)]
                assert name in texts[target], (name, target)
                followed += 1
        assert followed > 12  # every index row, and the summary's links

        # The index's page numbers (written at assembly) are the pages the exhibits are on.
        rows = [
            line.split()
            for line in texts[index_page].splitlines()
            if line.strip().startswith("E-0")
        ]
        assert len(rows) == 12
        for row in rows:
            number, page = row[0], int(row[-1])
            assert page == page_of[repr(dests[number][0].objgen)] + 1, row
            assert number in texts[page - 1]

        # The originals, byte for byte, and their digests on the manifest page.
        embedded = {n: s.get_file().read_bytes() for n, s in pdf.attachments.items()}
    # The signature over the pages is made from the finished pages: no page can print its
    # digests (the verification page names the files; VERIFYING.md step 7).
    signed_pages = {n: embedded.pop(n) for n in PAGE_FILES}
    flat = " ".join(" ".join(texts).split())
    assert LETTER.read_bytes() in embedded.values()
    for data in embedded.values():
        assert hashlib.sha256(data).hexdigest() in flat
    assert len(result.embedded) == len(embedded)  # type: ignore[attr-defined]
    for name in ("pages.json", "pages.sig"):
        assert hashlib.sha256(signed_pages[name]).hexdigest() not in flat
    # (pages-key.pub.pem is the checkpoint's key, listed as checkpoint-key.pub.pem)
    assert signed_pages["pages-key.pub.pem"] == embedded["checkpoint-key.pub.pem"]
    assert all(name in "".join(flat.split()) for name in PAGE_FILES)


@RENDER_ONLY
def test_the_dossier_opens_with_the_claims_and_what_the_record_shows(
    sample_store: Store, tmp_path: Path
) -> None:
    """Page 2: each claim with the record's findings, linked to its exhibits, and the
    summary right under them on the same page."""
    add_claim(
        sample_store,
        "KKV/1234/2026",
        "jonotin puoli tuntia",
        ["call:1773126750.1041", "call:1773129795.1044"],
    )
    out = tmp_path / "d.pdf"
    _export(sample_store, out)
    with pikepdf.open(out) as pdf:
        dests = NameTree(pdf.Root.Names.Dests)
        page_of = {p.obj.objgen: i for i, p in enumerate(pdf.pages)}
        claims, summary = (page_of[dests[name][0].objgen] for name in ("claims", "summary"))
        assert claims == summary == 1
        links = {str(a.Dest) for a in pdf.pages[1].obj.get("/Annots", []) if "/Dest" in a}
    second = " ".join(_page_texts(out, 2)[1].split())
    assert "jonotin puoli tuntia" in second and "Yhteenveto" in second
    assert second.index("jonotin puoli tuntia") < second.index("Yhteenveto")
    # The claim's findings lead to the two calls' exhibits.
    assert {"E-005", "E-007"} <= links, links


@RENDER_ONLY
def test_pdfa_and_qpdf_clean(sample_store: Store, tmp_path: Path) -> None:
    out = tmp_path / "d.pdf"
    _export(sample_store, out)
    check = subprocess.run(["qpdf", "--check", str(out)], capture_output=True, text=True)
    assert check.returncode == 0, check.stdout + check.stderr
    report = pdfa.validate_written(out, "3b")
    assert report.passed, [str(f) for f in report.findings][:10]


@RENDER_ONLY
def test_reproducible_and_cached(sample_store: Store, tmp_path: Path) -> None:
    first = _export(sample_store, tmp_path / "a.pdf")
    again = _export(sample_store, tmp_path / "b.pdf")
    fresh = _export(sample_store, tmp_path / "c.pdf", use_cache=False)
    assert fresh.parts_cached == 0  # type: ignore[attr-defined]
    assert (tmp_path / "a.pdf").read_bytes() == (tmp_path / "b.pdf").read_bytes()
    assert (tmp_path / "a.pdf").read_bytes() == (tmp_path / "c.pdf").read_bytes()
    assert first.parts_cached == 0  # type: ignore[attr-defined]
    assert again.parts_rendered == 0  # type: ignore[attr-defined]
    # Another generation time: rendered again are the cover page, which shows it, and the
    # last part of the list of embedded files (manifest.json has it, and a new SHA-256);
    # the claims and the summary are not.
    later = _export(
        sample_store, tmp_path / "later.pdf", generated_at=PINNED + dt.timedelta(hours=1)
    )
    assert later.parts_rendered == 2  # type: ignore[attr-defined]
    assert later.pages == first.pages  # type: ignore[attr-defined]

    # One new item.
    mail = tmp_path / "new"
    mail.mkdir()
    (mail / "n.eml").write_bytes(
        b"Received: by mx.pohjolanvesi.example; Wed, 11 Mar 2026 08:00:00 +0200\n"
        b"From: aino.laaksonen@example.com\nSubject: viela\n\nKiitos.\n"
    )
    import_mail(sample_store, [mail])
    after = _export(sample_store, tmp_path / "d.pdf")
    # Rendered again: the cover (new counts), the front matter up to the evidence of
    # absence (a new attempt; a short history's is one part), the completeness (a new
    # import), the new day's chunk, the index part and the list of embedded files that
    # hold it, and the back matter (new proofs); the rest is cached: the other chunks, and
    # the stamp font.
    assert after.parts_rendered == 7  # type: ignore[attr-defined]
    assert after.parts_cached >= 2  # type: ignore[attr-defined]
    assert "Kiitos." in pdf_text(tmp_path / "d.pdf")


def _front_matter(out: Path) -> tuple[list[str], list[str], list[tuple[str, int]]]:
    """The dossier's top-level bookmarks, the text of each page before the index, and
    every link on those pages with the page index it leads to."""
    with pikepdf.open(out) as pdf:
        with pdf.open_outline() as outline:
            top = [item.title for item in outline.root]
        dests = NameTree(pdf.Root.Names.Dests)
        page_of = {repr(p.objgen): i for i, p in enumerate(pdf.pages)}
        index_page = page_of[repr(dests["index"][0].objgen)]
        links = [
            (str(annot.Dest), page_of[repr(dests[str(annot.Dest)][0].objgen)])
            for page in pdf.pages[:index_page]
            for annot in page.obj.get("/Annots", [])
            if "/Dest" in annot
        ]
    return top, _page_texts(out, index_page), links


@RENDER_ONLY
def test_long_front_matter_is_rendered_in_parts(
    sample_store: Store, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A long history's attempts table and evidence of absence are laid out in parts of a
    few rows (one WeasyPrint document of thousands of rows takes many minutes): the same
    rows, sections, bookmarks and links as in one part."""
    from evidence.render import parts

    whole = _export(sample_store, tmp_path / "whole.pdf", use_cache=False)
    monkeypatch.setattr(parts, "FRONT_PART_WEIGHT", 4)
    monkeypatch.setattr(parts, "FRONT_HEAD_WEIGHT", 1)
    split = _export(sample_store, tmp_path / "split.pdf", use_cache=False)
    assert split.parts_rendered > whole.parts_rendered + 3  # type: ignore[attr-defined]

    top, texts, links = _front_matter(tmp_path / "whole.pdf")
    split_top, split_texts, split_links = _front_matter(tmp_path / "split.pdf")
    assert split_top == top
    flat = " ".join(" ".join(texts).split())
    split_flat = " ".join(" ".join(split_texts).split())
    # Every attempt and every entry of the evidence of absence, in the same order.
    rows = [w for w in flat.split() if w.startswith("E-0")]
    assert len(rows) > 12
    assert [w for w in split_flat.split() if w.startswith("E-0")] == rows
    assert "Näyttö tavoittamattomuudesta" in split_flat and "Lähteiden kattavuus" in split_flat
    # The same links, each to the page that holds its exhibit.
    assert sorted(name for name, _page in split_links) == sorted(name for name, _ in links)
    with pikepdf.open(tmp_path / "split.pdf") as pdf:
        all_texts = _page_texts(tmp_path / "split.pdf", len(pdf.pages))
    for name, page in split_links:
        assert name in all_texts[page], (name, page)


def test_zip_format_is_a_valid_bag(env: Env, sample_store: Store, tmp_path: Path) -> None:
    import zipfile

    import bagit

    from tests.conftest import Cli

    out = tmp_path / "kkv.zip"
    Cli(env)("export", "--case", "KKV/1234/2026", "-o", str(out), "--format", "zip",
             "--generated-at", "2026-03-25T12:00+02:00")  # fmt: skip
    unpacked = tmp_path / "unpacked"
    with zipfile.ZipFile(out) as archive:
        archive.extractall(unpacked)
    [bag_dir] = list(unpacked.iterdir())
    bag = bagit.Bag(str(bag_dir))
    assert bag.is_valid()
    payload = {p.name: p.read_bytes() for p in (bag_dir / "data").rglob("*") if p.is_file()}
    assert "kkv.pdf" in payload
    assert LETTER.read_bytes() in payload.values()
    assert "manifest.csv" in payload


def test_a_new_contact_changes_only_the_last_part_of_a_long_attempts_table() -> None:
    """The end of a long table is cut shorter and is a part of its own, so a re-export after
    one more contact renders a short part again and takes the rest from the cache."""
    from evidence.render import parts as dossier_parts

    def parts(n_attempts: int) -> list[list[tuple[str, tuple[str, ...]]]]:
        rows = [{"exhibit": f"E-{i:04d}", "links": []} for i in range(n_attempts)]
        absence = [{"exhibit": f"E-{i:04d}", "links": []} for i in range(0, n_attempts, 7)]
        common = {
            "claims": [],
            "summary": {"rows": []},
            "reachability": {"attempts": rows, "absence": absence[:40]},
            "completeness": [{}],
        }
        return [
            [(p["kind"], tuple(r["exhibit"] for r in p.get("rows", []))) for p in group]
            for group in dossier_parts.front_groups(common)
        ]

    before, after = parts(830), parts(831)
    changed = [n for n, (a, b) in enumerate(zip(before, after, strict=True)) if a != b]
    assert len(before) == len(after) and len(changed) == 1
    [last] = after[changed[0]]
    assert last[0] == "attempts" and last[1][-1] == "E-0830"
    assert len(last[1]) <= dossier_parts.FRONT_PART_WEIGHT // 3
    # Every attempt once, in order, whatever the cut.
    attempts = [e for group in after for kind, rows in group if kind == "attempts" for e in rows]
    assert attempts == [f"E-{i:04d}" for i in range(831)]
