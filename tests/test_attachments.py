"""Attachments shown under their message: images drawn, text printed, PDFs appended."""

from __future__ import annotations

import base64
import io
import subprocess
from email.message import EmailMessage
from pathlib import Path

import pikepdf
import pytest
from PIL import Image

from evidence.ingest.mail import import_mail
from evidence.records.customers import add_customer
from evidence.render.attachments import show
from evidence.render.dossier import export_dossier
from evidence.store.db import Store
from tests.conftest import RENDER_ONLY, page_texts, pdf_text


def _image(fmt: str, size: tuple[int, int] = (40, 20)) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", size, (200, 30, 30)).save(out, format=fmt)
    return out.getvalue()


def _pdf(pages: int, text: str, password: str | None = None) -> bytes:
    from weasyprint import HTML

    html = "".join(f'<p style="page-break-after: always">{text} {n}</p>' for n in range(pages))
    data = HTML(string=html).write_pdf()
    assert data is not None
    if password is None:
        return data
    out = io.BytesIO()
    with pikepdf.open(io.BytesIO(data)) as pdf:
        pdf.save(out, encryption=pikepdf.Encryption(user=password, owner=password))
    return out.getvalue()


def _mail(attachments: list[tuple[str, str, bytes]]) -> bytes:
    msg = EmailMessage()
    msg["From"] = "aino@example.com"
    msg["To"] = "asiakaspalvelu@aurora-energia.example"
    msg["Subject"] = "liitteitä"
    msg["Date"] = "Tue, 10 Mar 2026 10:00:00 +0200"
    msg.set_content("Liitteinä kuvat ja tiedostot.\n")
    for filename, ctype, data in attachments:
        maintype, subtype = ctype.split("/")
        msg.add_attachment(data, maintype=maintype, subtype=subtype, filename=filename)
    return msg.as_bytes()


@pytest.mark.parametrize("fmt", ["PNG", "JPEG", "GIF", "WEBP"])
def test_images_are_drawn(fmt: str) -> None:
    shown = show(f"image/{fmt.lower()}", f"kuva.{fmt.lower()}", _image(fmt))
    assert shown.kind == "image" and shown.image_src is not None
    png = base64.b64decode(shown.image_src.split(",", 1)[1])
    assert Image.open(io.BytesIO(png)).size == (40, 20)


def test_huge_images_are_not_decoded() -> None:
    # 8000 x 7000 = 56 megapixels: above the limit, refused from the header alone.
    shown = show("image/png", "iso.png", _image("PNG", (8000, 7000)))
    assert (shown.kind, shown.image_src, shown.note) == ("image", None, "too-large")


@RENDER_ONLY
def test_every_kind_in_the_dossier(company_store: Store, tmp_path: Path) -> None:
    report = _pdf(3, "Mittausraportti sivu")
    locked = _pdf(1, "Salainen", password="salasana")
    ics = (
        b"BEGIN:VCALENDAR\r\nBEGIN:VEVENT\r\nSUMMARY:Mittarin vaihto\r\n"
        b"END:VEVENT\r\nEND:VCALENDAR\r\n"
    )
    raw = _mail(
        [
            ("kuva.png", "image/png", _image("PNG")),
            ("kuva.jpg", "image/jpeg", _image("JPEG")),
            ("lukemat.csv", "text/csv", b"pvm;lukema\n10.3.2026;04512\n"),
            ("kalenteri.ics", "text/calendar", ics),
            ("raportti.pdf", "application/pdf", report),
            ("lukittu.pdf", "application/pdf", locked),
            (
                "sopimus.docx",
                "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
                b"PK\x03\x04fake",
            ),
        ]
    )
    mail_dir = tmp_path / "mail"
    mail_dir.mkdir()
    (mail_dir / "a.eml").write_bytes(raw)
    add_customer(company_store, "1", "Aino", ["aino@example.com"], [])
    import_mail(company_store, [mail_dir])
    out = tmp_path / "d.pdf"
    export_dossier(company_store, customer_ref="1", output=out)
    text = pdf_text(out)
    flat = " ".join(text.split())
    assert "10.3.2026;04512" in flat  # CSV shown as text
    assert "SUMMARY:Mittarin vaihto" in flat  # calendar shown as text
    assert "salattu" in flat.lower()  # the locked PDF's slip note
    assert "sopimus.docx" in flat and "koskaan avattu tai suoritettu" in flat
    # The report's three pages follow its slip sheet, stamped like the rest.
    with pikepdf.open(out) as pdf:
        total = len(pdf.pages)
        pages = page_texts(out, total)
        images = sum(1 for page in pdf.pages for _img in page.get_images())
        names = set(pdf.attachments)
    slip = next(i for i, t in enumerate(pages) if "Liite viestiin E-001: raportti.pdf" in t)
    for k in range(3):
        assert f"Mittausraportti sivu {k}" in pages[slip + 1 + k]
        assert f"sivu {slip + 2 + k} / {total}" in pages[slip + 1 + k]
    assert images >= 2  # both images drawn
    assert any(n.endswith("raportti.pdf") for n in names)
    assert any(n.endswith("lukittu.pdf") for n in names)
    assert any(n.endswith("sopimus.docx") for n in names)


def _pages(path: Path) -> list[str]:
    with pikepdf.open(path) as pdf:
        total = len(pdf.pages)
    return [
        subprocess.run(
            ["pdftotext", "-f", str(n), "-l", str(n), str(path), "-"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout
        for n in range(1, total + 1)
    ]


@RENDER_ONLY
@pytest.mark.slow
def test_gif_webp_text_broken_and_long_pdfs(company_store: Store, tmp_path: Path) -> None:
    """The kinds the first test leaves out, each a real file: GIF, WebP and HEIC drawn with name
    and SHA-256, plain text printed, a damaged PDF on a slip sheet of its own, and a PDF
    longer than the limit appended up to the limit."""
    import hashlib

    import pillow_heif

    from evidence.render.attachments import MAX_APPENDED_PAGES

    pillow_heif.register_heif_opener()
    gif, webp, heic = _image("GIF"), _image("WEBP"), _image("HEIF", (44, 22))
    assert heic[4:12] == b"ftypheic"  # a real HEIC file, as an iPhone sends
    long_pdf = _pdf(MAX_APPENDED_PAGES + 3, "Pitkä liite sivu")
    broken = _pdf(1, "Rikki")[:300]  # the first 300 bytes of a real PDF: no xref, no pages
    raw = _mail(
        [
            ("kuva.gif", "image/gif", gif),
            ("kuva.webp", "image/webp", webp),
            ("kuva.heic", "image/heic", heic),
            ("muistio.txt", "text/plain", b"Mittari luettu 9.3.2026: 04433\n"),
            ("rikki.pdf", "application/pdf", broken),
            ("pitka.pdf", "application/pdf", long_pdf),
        ]
    )
    mail_dir = tmp_path / "mail"
    mail_dir.mkdir()
    (mail_dir / "b.eml").write_bytes(raw)
    add_customer(company_store, "1", "Aino", ["aino@example.com"], [])
    import_mail(company_store, [mail_dir])
    out = tmp_path / "d.pdf"
    export_dossier(company_store, customer_ref="1", output=out, language="en")
    flat = " ".join(pdf_text(out).split())
    for name, data in (("kuva.gif", gif), ("kuva.webp", webp), ("kuva.heic", heic)):
        assert f"{name} – image/" in flat
        assert f"SHA-256 {hashlib.sha256(data).hexdigest()}" in flat
    assert "Mittari luettu 9.3.2026: 04433" in flat
    pages = _pages(out)
    with pikepdf.open(out) as pdf:
        images = sum(1 for page in pdf.pages for _img in page.get_images())
        sizes = {
            (int(img.Width), int(img.Height))
            for page in pdf.pages
            for img in page.get_images().values()
        }
        names = set(pdf.attachments)
    assert images >= 3  # GIF, WebP and HEIC drawn
    assert (44, 22) in sizes  # the HEIC, decoded (the others are 40 x 20)
    # The damaged PDF: a slip sheet saying so, and the original still embedded.
    slip = next(t for t in pages if "Attachment to E-001: rikki.pdf" in t)
    assert "The PDF is damaged and cannot be shown; the original is embedded." in " ".join(
        slip.split()
    )
    assert any(n.endswith("rikki.pdf") for n in names)
    # The long PDF: its first MAX_APPENDED_PAGES pages after its slip sheet, no more.
    first = next(i for i, t in enumerate(pages) if "Attachment to E-001: pitka.pdf" in t)
    assert f"Only the first {MAX_APPENDED_PAGES} of {MAX_APPENDED_PAGES + 3} pages" in flat
    assert "Pitkä liite sivu 0" in pages[first + 1]
    last = MAX_APPENDED_PAGES - 1
    assert f"Pitkä liite sivu {last}" in pages[first + MAX_APPENDED_PAGES]
    assert f"Pitkä liite sivu {last + 1}" not in flat
    assert any(n.endswith("pitka.pdf") for n in names)
