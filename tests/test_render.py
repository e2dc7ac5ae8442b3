"""The dossier renders hostile mail without reaching the network or the disk."""

from __future__ import annotations

import hashlib
import http.server
import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path

import pikepdf
import pytest

from evidence.customers import add_customer
from evidence.ingest.mail import import_mail
from evidence.render.dossier import export_dossier
from evidence.render.mailbody import sanitize_html
from evidence.store.db import Store
from evidence.verify.manifest import VERIFICATION_FILES
from tests.conftest import pdf_text


class Canary(http.server.BaseHTTPRequestHandler):
    hits: list[str] = []

    def do_GET(self) -> None:  # noqa: N802 - http.server's name
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
    file_url = secret_file.as_uri()
    return f"""<html><head>
<link rel="stylesheet" href="{base}/link.css">
<style>@import url("{base}/import.css"); body {{ background: url({base}/bg.png) }}</style>
<meta http-equiv="refresh" content="0; url={base}/refresh">
<script>document.write('<img src="{base}/script.png">')</script>
</head><body>
<p>Näkyvä teksti säilyy.</p>
<img src="{base}/img.png"><img srcset="{base}/srcset.png 2x">
<img src="{file_url}"><iframe src="{file_url}"></iframe>
<object data="{base}/object"></object><embed src="{base}/embed">
<link rel="attachment" href="{file_url}">
<div style="background-image: url('{base}/style.png')">tyyli</div>
<svg><image href="{base}/svg.png"/></svg>
<a href="{base}/link">linkki</a>
</body></html>"""


def test_hostile_html_reaches_nothing(company_store: Store, tmp_path: Path, canary: str) -> None:
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
    assert set(VERIFICATION_FILES) - set(files) == {"checkpoint.tst"}
    [(name, data)] = [(n, d) for n, d in files.items() if n not in VERIFICATION_FILES]
    assert name.endswith(".eml") and data == raw
    listed = subprocess.run(["pdfdetach", "-list", str(out)], capture_output=True, text=True).stdout
    assert name in listed
    assert hashlib.sha256(raw).hexdigest() in " ".join(pdf_text(out).split())


def test_fetcher_refuses_everything_but_data(tmp_path: Path, canary: str) -> None:
    """The second wall: even unsanitised HTML fetches nothing through our fetcher."""
    from weasyprint import HTML

    from evidence.render.dossier import SealedFetcher

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
