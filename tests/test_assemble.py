"""The dossier's PDF writer (evidence.render.assemble over evidence.render.pdfwriter) on
its own: parts copied one at a time, appended PDFs after their slip sheets, page and name
trees of several levels, stamps, bookmarks and embedded files, read back with pikepdf,
qpdf and pdftotext."""

from __future__ import annotations

import hashlib
import subprocess
from pathlib import Path

import pikepdf
import pytest
from pikepdf import Dictionary, Name, NameTree

from evidence.render import assemble, pdfwriter
from evidence.render.pool import render_pdf
from tests.conftest import page_texts, pdf_text


def _weasy(tmp_path: Path, name: str, html: str, variant: str | None = None) -> Path:
    pdf, _refused = render_pdf(html, variant)
    path = tmp_path / name
    path.write_bytes(pdf)
    return path


def _pages_html(prefix: str, count: int) -> str:
    pages = "".join(
        f'<section id="{prefix}-{n}" style="break-after: page">{prefix} page {n}</section>'
        for n in range(1, count + 1)
    )
    return f'<html><body style="font-family: DejaVu Sans">{pages}</body></html>'


def _appended_pdf() -> bytes:
    """Three Letter pages whose MediaBox and Resources are on the page tree's root
    (inherited), the first with a link to the third: written by hand, since pikepdf
    writes the inherited entries into every page."""
    contents = [f"BT /F1 24 Tf 72 700 Td (Letter page {n}) Tj ET".encode() for n in (1, 2, 3)]
    objects = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"<< /Type /Pages /Kids [3 0 R 4 0 R 5 0 R] /Count 3 /MediaBox [0 0 612 792]"
        b" /Resources << /Font << /F1 6 0 R >> >> >>",
        b"<< /Type /Page /Parent 2 0 R /Contents 7 0 R /Annots [10 0 R 11 0 R 12 0 R 13 0 R"
        b" 14 0 R] /AA << /O << /S /JavaScript /JS (app.alert\\(1\\)) >> >> >>",
        b"<< /Type /Page /Parent 2 0 R /Contents 8 0 R >>",
        b"<< /Type /Page /Parent 2 0 R /Contents 9 0 R >>",
        b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>",
        *(b"<< /Length %d >>\nstream\n%s\nendstream" % (len(c), c) for c in contents),
        b"<< /Type /Annot /Subtype /Link /Rect [72 690 300 730] /Dest [5 0 R /XYZ 0 792 0] >>",
        # What a hostile attachment carries: a script, a tracker, a jump that launches a
        # program next, a media player.
        b"<< /Type /Annot /Subtype /Link /Rect [72 600 300 640]"
        b" /A << /S /JavaScript /JS (app.alert\\(2\\)) >> >>",
        b"<< /Type /Annot /Subtype /Link /Rect [72 550 300 590]"
        b" /A << /S /URI /URI (https://tracker.example/open?id=1) >> >>",
        b"<< /Type /Annot /Subtype /Link /Rect [72 500 300 540]"
        b" /A << /S /GoTo /D [3 0 R /Fit] /Next << /S /Launch /F (calc.exe) >> >> >>",
        b"<< /Type /Annot /Subtype /Screen /Rect [72 400 300 440] >>",
    ]
    out = bytearray(b"%PDF-1.4\n")
    offsets = []
    for num, body in enumerate(objects, start=1):
        offsets.append(len(out))
        out += b"%d 0 obj\n%s\nendobj\n" % (num, body)
    xref = len(out)
    out += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1)
    out += b"".join(b"%010d 00000 n \n" % offset for offset in offsets)
    out += b"trailer\n<< /Size %d /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (
        len(objects) + 1,
        xref,
    )
    return bytes(out)


@pytest.fixture
def small_trees(monkeypatch: pytest.MonkeyPatch) -> None:
    """Nodes of two kids and leaves of two names: a few pages make trees of several levels."""
    monkeypatch.setattr(pdfwriter, "PAGE_TREE_FANOUT", 2)
    monkeypatch.setattr(pdfwriter, "NAME_TREE_LEAF", 2)
    monkeypatch.setattr(pdfwriter, "OBJECT_STREAM_SIZE", 3)


def _write(tmp_path: Path, out: Path) -> tuple[assemble.Layout, list[bytes]]:
    base = _weasy(tmp_path, "base.pdf", _pages_html("base", 2), "pdf/a-3b")
    second = _weasy(tmp_path, "second.pdf", _pages_html("second", 3))
    sample = _weasy(
        tmp_path,
        "stamp.pdf",
        '<p style="font-family: DejaVu Sans">CASE/1page0123456789/</p>',
    )
    parts = [assemble.open_part(base), assemble.open_part(second)]
    letter = _appended_pdf()
    # After the second part's first page: its two first pages only.
    layout = assemble.plan(parts, [assemble.Appended("second-1", letter, 2)])
    files = [b"first original\n", "ääkköset €\n".encode(), b"third"]
    assemble.write(
        out,
        layout,
        assemble.Stamp(assemble.StampFont(sample), "CASE/1", "page", {0: [(300.0, 400.0, "42")]}),
        [
            assemble.OutlineEntry("Base", "base-1", [assemble.OutlineEntry("Two", "base-2")]),
            assemble.OutlineEntry("Missing", "no-such-anchor"),
            assemble.OutlineEntry("Second", "second-1"),
            assemble.OutlineEntry("Last", "second-3"),
        ],
        [
            assemble.EmbeddedFile(f"file-{n}.txt", lambda d=data: (d,), "text/plain", f"File {n}")
            for n, data in enumerate(files, start=1)
        ]
        + [assemble.EmbeddedFile("file-1.txt", lambda: (b"a second", b" of that name"), "x/y", "")],
        "D:20260101000000Z",
    )
    return layout, files


def test_parts_appended_pages_stamps_and_trees(tmp_path: Path, small_trees: None) -> None:
    out = tmp_path / "out.pdf"
    layout, files = _write(tmp_path, out)
    check = subprocess.run(["qpdf", "--check", str(out)], capture_output=True, text=True)
    assert check.returncode == 0, check.stdout + check.stderr

    # base 1-2, second 1, the letter's pages 1-2, second 2-3.
    assert layout.total == 7
    texts = page_texts(out, 7)
    order = ["base page 1", "base page 2", "second page 1", "Letter page 1", "Letter page 2"]
    order += ["second page 2", "second page 3"]
    for n, (text, expected) in enumerate(zip(texts, order, strict=True), start=1):
        assert expected in text, (n, text)
        assert f"page {n} / 7" in text and "CASE/1" in text
    assert "42" in texts[0]  # a number written on the first page
    assert "Letter page 3" not in pdf_text(out)

    with pikepdf.open(out) as pdf:
        assert len(pdf.pages) == 7
        # The letter's pages took along what they inherited; the link to its third
        # page, which is not in the dossier, goes nowhere.
        letter = pdf.pages[3].obj
        assert [float(v) for v in letter.MediaBox] == [0, 0, 612, 792]
        assert "/F1" in letter.Resources.Font and "/EvStampFont" in letter.Resources.Font
        link, script, tracker, jump = letter.Annots
        assert link.Dest[0] is None
        assert all(annot.F == 4 for annot in letter.Annots)
        # Shown, never run: no action but the jump, no media player, nothing that runs
        # anywhere in the file.
        assert "/AA" not in letter and "/A" not in script and "/A" not in tracker
        assert jump.A.S == Name.GoTo and "/Next" not in jump.A
        assert jump.A.D[0].objgen == letter.objgen
        kinds = {
            str(obj.get("/S")) for obj in pdf.objects if isinstance(obj, Dictionary) and "/S" in obj
        }
        assert not kinds & {"/JavaScript", "/URI", "/Launch"}, kinds
        # A page tree of several levels, and every page's parent holds it.
        assert pdf.Root.Pages.Count == 7
        for page in pdf.pages:
            assert any(kid.objgen == page.obj.objgen for kid in page.obj.Parent.Kids)
        # Named destinations, across leaves: an anchor of the second part is on the page
        # after the letter's.
        dests = NameTree(pdf.Root.Names.Dests)
        page_of = {p.obj.objgen: i for i, p in enumerate(pdf.pages)}
        assert page_of[dests["base-2"][0].objgen] == 1
        assert page_of[dests["second-1"][0].objgen] == 2
        assert page_of[dests["second-2"][0].objgen] == 5
        assert "/Kids" in pdf.Root.Names.Dests
        # Bookmarks: a missing anchor is left out, children kept.
        with pdf.open_outline() as outline:
            top = [(item.title, [c.title for c in item.children]) for item in outline.root]
        assert top == [("Base", ["Two"]), ("Second", []), ("Last", [])]
        # The originals, byte for byte, the first of a name kept, each an associated file.
        got = {name: spec.get_file().read_bytes() for name, spec in pdf.attachments.items()}
        assert got == {f"file-{n}.txt": data for n, data in enumerate(files, start=1)}
        assert len(pdf.Root.AF) == 3
        assert all(spec.AFRelationship == Name.Source for spec in pdf.Root.AF)
        # The PDF/A-3b base's metadata and output intent carry over.
        assert "/Metadata" in pdf.Root and "/OutputIntents" in pdf.Root
        assert pdf.trailer.ID[0] == pdf.trailer.ID[1]

    again = tmp_path / "again.pdf"
    _write(tmp_path, again)
    assert hashlib.sha256(again.read_bytes()).digest() == hashlib.sha256(out.read_bytes()).digest()


def test_pdfdetach_gives_the_originals(tmp_path: Path) -> None:
    out = tmp_path / "out.pdf"
    _layout, files = _write(tmp_path, out)
    folder = tmp_path / "detached"
    folder.mkdir()
    subprocess.run(["pdfdetach", "-saveall", "-o", str(folder), str(out)], check=True)
    assert sorted(p.read_bytes() for p in folder.iterdir()) == sorted(files)
