"""The dossier renders hostile mail without reaching the network or the disk."""

from __future__ import annotations

import base64
import hashlib
import http.server
import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path

import pikepdf
import pytest

from evidence.ingest.mail import import_mail
from evidence.proofs.manifest import VERIFICATION_FILES
from evidence.proofs.pages import PAGE_FILES
from evidence.records.customers import add_customer
from evidence.render.dossier import export_dossier
from evidence.render.mailbody import sanitize_html
from evidence.store.db import Store
from tests.conftest import RENDER_ONLY, pdf_text


class Canary(http.server.BaseHTTPRequestHandler):
    hits: list[str] = []

    def do_GET(self) -> None:  # http.server's name
        Canary.hits.append(self.path)
        self.send_response(200)
        self.send_header("Content-Type", "text/css")
        self.end_headers()
        self.wfile.write(b"body { color: red }")

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def canary() -> Iterator[str]:
    Canary.hits = []
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Canary)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def hostile_html(base: str, secret_file: Path) -> str:
    """Every way HTML, SVG and CSS can make a renderer load a URL, at the canary or a file."""
    file_url = secret_file.as_uri()
    svg = (
        f"<svg xmlns='http://www.w3.org/2000/svg' xmlns:xlink='http://www.w3.org/1999/xlink'>"
        f"<image href='{base}/svg-in-data.png' width='9' height='9'/>"
        f"<use xlink:href='{base}/use.svg#x'/></svg>"
    )
    svg_uri = "data:image/svg+xml;base64," + base64.b64encode(svg.encode()).decode()
    css = (
        f"@import url('{base}/import.css'); @import '{base}/import2.css';"
        f"@namespace x url({base}/ns);"
        f"@font-face {{ font-family: x; src: url({base}/font.woff) }}"
        f"body {{ background: url({base}/bg.png); cursor: url({base}/cursor.cur), auto }}"
        f"p {{ list-style-image: url({base}/list.png); border-image: url({base}/border.png) 30 }}"
        f"p::before {{ content: url({base}/content.png) }}"
        f"div {{ background-image: image-set('{base}/set.png' 1x) }}"
        f"h1 {{ background: url({file_url}) }}"
    )
    return f"""<?xml-stylesheet href="{base}/pi.css"?><html><head>
<base href="{base}/base/">
<link rel="stylesheet" href="{base}/link.css"><link rel="icon" href="{base}/icon.png">
<link rel="preload" href="{base}/preload.png"><link rel="attachment" href="{file_url}">
<style>{css}</style>
<meta http-equiv="refresh" content="0; url={base}/refresh">
<script src="{base}/script.js"></script>
<script>document.write('<img src="{base}/script.png">')</script>
</head><body background="{base}/body-bg.png">
<p>Näkyvä teksti säilyy.</p>
<img src="{base}/img.png"><img srcset="{base}/srcset.png 2x" src="relative.png">
<img lowsrc="{base}/lowsrc.png" dynsrc="{base}/dynsrc.png">
<picture><source srcset="{base}/source.png"><img src="{base}/picture.png"></picture>
<img src="{file_url}"><img src="{svg_uri}"><img src="data:text/html,<img src={base}/x>">
<iframe src="{file_url}"></iframe><iframe srcdoc="<img src='{base}/srcdoc.png'>"></iframe>
<frame src="{base}/frame"><object data="{base}/object"></object>
<object data="{svg_uri}" type="image/svg+xml"></object><embed src="{base}/embed">
<video poster="{base}/poster.png" src="{base}/video.mp4"><track src="{base}/track.vtt"></video>
<audio src="{base}/audio.mp3"></audio><input type="image" src="{base}/input.png">
<table background="{base}/table-bg.png"><tr><td background="{base}/td-bg.png">solu</td></tr>
</table>
<div style="background-image: url('{base}/style.png'); behavior: url({base}/x.htc)">tyyli</div>
<svg><image href="{base}/svg.png"/><use href="{base}/use2.svg#a"/></svg>
<math href="{base}/math">x</math>
<a href="{base}/link">linkki</a><a rel="attachment" href="{file_url}">liite</a>
<a rel="attachment" href="{base}/attach.bin">liite2</a>
<map><area href="{base}/area" shape="rect" coords="0,0,1,1"></map>
<blockquote cite="{base}/cite">lainaus</blockquote><form action="{base}/form"></form>
</body></html>"""


@RENDER_ONLY
def test_hostile_html_reaches_nothing(company_store: Store, tmp_path: Path, canary: str) -> None:
    import urllib.request

    with urllib.request.urlopen(f"{canary}/alive") as response:  # the canary does sing
        assert response.status == 200
    assert Canary.hits == ["/alive"]
    Canary.hits = []
    secret = tmp_path / "secret.txt"
    secret.write_text("SALAINEN-SISALTO-123")
    html = hostile_html(canary, secret)
    raw = (
        "From: Matti <matti@example.net>\nTo: asiakaspalvelu@aurora-energia.example\n"
        "Subject: html\nMIME-Version: 1.0\nContent-Type: text/html; charset=utf-8\n\n" + html
    ).encode()
    mail_dir = tmp_path / "mail"
    mail_dir.mkdir()
    (mail_dir / "evil.eml").write_bytes(raw)
    add_customer(company_store, "1", "Matti", ["matti@example.net"], [])
    import_mail(company_store, [mail_dir])
    out = tmp_path / "d.pdf"
    result = export_dossier(company_store, customer_ref="1", output=out)
    assert Canary.hits == []
    text = pdf_text(out)
    assert "Näkyvä teksti säilyy." in text
    assert "SALAINEN-SISALTO-123" not in text
    assert "document.write" not in text
    # Nothing from outside was even attempted by the renderer: the sanitiser removed it.
    assert result.refused_urls == []


def test_sanitiser_keeps_only_cid_and_data() -> None:
    cleaned = sanitize_html(
        '<img src="https://x.example/a.png"><img src="file:///etc/passwd">'
        '<img src="data:image/png;base64,AAAA"><script>x()</script><p onclick="y()">t</p>'
    )
    assert "https://" not in cleaned and "file:" not in cleaned
    assert "data:image/png;base64,AAAA" in cleaned
    assert "script" not in cleaned and "onclick" not in cleaned


def test_dossier_embeds_each_original_byte_exact(company_store: Store, tmp_path: Path) -> None:
    mail_dir = tmp_path / "mail"
    mail_dir.mkdir()
    raw = b"From: m@example.net\nSubject: a\nDate: Mon, 28 Sep 2026 09:00:00 +0300\n\nhei\n"
    (mail_dir / "a.eml").write_bytes(raw)
    add_customer(company_store, "7", "M", ["m@example.net"], [])
    import_mail(company_store, [mail_dir])
    out = tmp_path / "d.pdf"
    export_dossier(company_store, customer_ref="7", output=out)
    with pikepdf.open(out) as pdf:
        files = {name: spec.get_file().read_bytes() for name, spec in pdf.attachments.items()}
    # Beside the original: the manifest and the signed checkpoint (tests/test_verify_dossier.py).
    # ... and the signature over the pages (tests/test_pages_signed.py).
    assert set(VERIFICATION_FILES) - set(files) == {"checkpoint.tst"}
    assert set(PAGE_FILES) <= set(files)
    [(name, data)] = [
        (n, d) for n, d in files.items() if n not in VERIFICATION_FILES and n not in PAGE_FILES
    ]
    assert name.endswith(".eml") and data == raw
    listed = subprocess.run(["pdfdetach", "-list", str(out)], capture_output=True, text=True).stdout
    assert name in listed
    assert hashlib.sha256(raw).hexdigest() in " ".join(pdf_text(out).split())


def test_fetcher_refuses_everything_but_data(tmp_path: Path, canary: str) -> None:
    """The second wall: even unsanitised HTML fetches nothing through our fetcher."""
    from weasyprint import HTML

    from evidence.render.pool import SealedFetcher

    secret = tmp_path / "secret.png"
    secret.write_bytes(b"not really a png")
    fetcher = SealedFetcher()
    html = (
        f'<link rel="stylesheet" href="{canary}/a.css"><img src="{canary}/b.png">'
        f'<img src="{secret.as_uri()}"><img src="data:image/gif;base64,'
        'R0lGODlhAQABAIAAAAAAAP///yH5BAEAAAAALAAAAAABAAEAAAIBRAA7">'
    )
    HTML(string=html, url_fetcher=fetcher).write_pdf()
    assert Canary.hits == []
    assert sorted(fetcher.refused) == sorted(
        [f"{canary}/a.css", f"{canary}/b.png", secret.as_uri()]
    )


PNG_1PX = base64.b64decode(
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAIAAACQd1PeAAAADElEQVR4nGP4z8AAAAMBAQDJ/pLvAAAAAElFTkSuQmCC"
)


@RENDER_ONLY
def test_forwarded_message_and_cid_image_shown_from_the_message(
    company_store: Store, tmp_path: Path
) -> None:
    image = base64.encodebytes(PNG_1PX)
    raw = (
        b"From: Matti <matti@example.net>\nTo: asiakaspalvelu@aurora-energia.example\n"
        b"Subject: kuva ja edelleenlahetys\nMIME-Version: 1.0\n"
        b'Content-Type: multipart/mixed; boundary="m"\n\n'
        b'--m\nContent-Type: multipart/related; boundary="r"\n\n'
        b"--r\nContent-Type: text/html; charset=utf-8\n\n"
        b'<p>Katso kuva:</p><img src="cid:kuva1@example.net" width="40" height="40">\n'
        b"--r\nContent-Type: image/png\nContent-ID: <kuva1@example.net>\n"
        b"Content-Transfer-Encoding: base64\n\n" + image + b"--r--\n"
        b"--m\nContent-Type: message/rfc822\n\n"
        b"From: Liisa <liisa@example.org>\nSubject: =?utf-8?q?Alkuper=C3=A4inen?=\n"
        b"Date: Sun, 27 Sep 2026 18:00:00 +0300\n"
        b'Content-Type: multipart/mixed; boundary="i"\n\n'
        b"--i\nContent-Type: text/plain; charset=iso-8859-1\n\nSis\xe4inen viesti\n"
        b"--i\nContent-Type: application/pdf\n"
        b'Content-Disposition: attachment; filename="sopimus.pdf"\n\n%PDF-1.4 x\n--i--\n'
        b"--m--\n"
    )
    mail_dir = tmp_path / "mail"
    mail_dir.mkdir()
    (mail_dir / "a.eml").write_bytes(raw)
    add_customer(company_store, "1", "Matti", ["matti@example.net"], [])
    import_mail(company_store, [mail_dir])
    out = tmp_path / "d.pdf"
    result = export_dossier(company_store, customer_ref="1", output=out)
    assert result.refused_urls == []
    text = pdf_text(out)
    assert "Katso kuva:" in text
    assert "Välitetty tai liitetty viesti" in text
    assert "Liisa <liisa@example.org>" in text and "Alkuperäinen" in text
    assert "Sisäinen viesti" in text and "sopimus.pdf" in text
    images = subprocess.run(
        ["pdfimages", "-list", str(out)], capture_output=True, text=True, check=True
    ).stdout.splitlines()[2:]
    # Only the message's own 1x1 PNG: inline in the HTML, and again under the message
    # as an attachment shown (columns: page num type width height ...).
    assert len(images) == 2 and all(line.split()[3:5] == ["1", "1"] for line in images)


@RENDER_ONLY
def test_header_injection_stays_text_in_the_dossier(company_store: Store, tmp_path: Path) -> None:
    evil = (
        b"From: Matti <matti@example.net>\nTo: asiakaspalvelu@aurora-energia.example\n"
        b"Subject: =?utf-8?q?hei=0D=0ABcc:_victim@example.org=0D=0A=0D=0A<b>lihava</b>"
        b"<img_src=3Dx>?=\n\nrunko\n"
    )
    mail_dir = tmp_path / "mail"
    mail_dir.mkdir()
    (mail_dir / "e.eml").write_bytes(evil)
    add_customer(company_store, "1", "Matti", ["matti@example.net"], [])
    import_mail(company_store, [mail_dir])
    out = tmp_path / "d.pdf"
    export_dossier(company_store, customer_ref="1", output=out)
    text = " ".join(pdf_text(out).split())
    # One line of text, markup and all: no new header, no bold, no image.
    assert "hei Bcc: victim@example.org <b>lihava</b><img src=x>" in text
