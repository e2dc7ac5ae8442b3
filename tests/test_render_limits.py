"""Render limits: a hostile email cannot stall or break an export (issue 9).

Two real hostile messages, both HTML-only, as a mailbox may hold them:
- a long table (600 rows of 12 cells): WeasyPrint needs some 20 s for it on this
  machine, far past the 4 s limit set here;
- a part nested 400 elements deep: WeasyPrint fails on it (RecursionError).
Each gets a placeholder page in the dossier's language that says what happened and
where the original is; every other exhibit is shown; the export names both.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import pikepdf
import pytest
from click.testing import CliRunner

from evidence.cli import main
from evidence.config import load_config
from evidence.ingest.mail import import_mail
from evidence.records.customers import add_customer
from evidence.render.dossier import export_dossier
from evidence.store.db import Store
from tests.conftest import RENDER_ONLY, Env, pdf_text

CUSTOMER = "asiakas@example.net"


def _mail(folder: Path, name: str, date: str, subject: str, body: str, html: bool) -> bytes:
    kind = "text/html" if html else "text/plain"
    raw = (
        f"Received: by mx.yhtio.example; {date}\nDate: {date}\nFrom: {CUSTOMER}\n"
        f"To: palvelu@yhtio.example\nSubject: {subject}\nMessage-ID: <{name}@example.net>\n"
        f"MIME-Version: 1.0\nContent-Type: {kind}; charset=utf-8\n\n{body}\n"
    ).encode()
    (folder / f"{name}.eml").write_bytes(raw)
    return raw


@pytest.fixture
def hostile_store(env: Env, store: Store, tmp_path: Path) -> tuple[Store, dict[str, bytes]]:
    env.write_config(
        '[company]\nname = "Yhtiö Oy"\nmail_domains = ["yhtio.example"]\n[render]\ntime_limit = 4\n'
    )
    store.config = load_config()
    add_customer(store, "7", "Asiakas Seitsemän", [CUSTOMER], [])
    folder = tmp_path / "mail"
    folder.mkdir()
    table = "<table>" + ("<tr>" + "<td>solu</td>" * 12 + "</tr>") * 600 + "</table>"
    nested = "<div>" * 400 + "syvällä" + "</div>" * 400
    raws = {
        "first": _mail(folder, "a", "Mon, 02 Mar 2026 09:00:00 +0200", "Lasku", "Hei.", False),
        "slow": _mail(folder, "b", "Tue, 03 Mar 2026 09:00:00 +0200", "Taulukko", table, True),
        "deep": _mail(folder, "c", "Wed, 04 Mar 2026 09:00:00 +0200", "Syvä", nested, True),
        "same_day": _mail(
            folder, "d", "Wed, 04 Mar 2026 10:00:00 +0200", "Kiitos", "Kiitos paljon.", False
        ),
    }
    import_mail(store, sorted(folder.glob("*.eml")))
    return store, raws


@RENDER_ONLY
@pytest.mark.slow
def test_hostile_emails_get_placeholders(
    hostile_store: tuple[Store, dict[str, bytes]], tmp_path: Path
) -> None:
    store, raws = hostile_store
    out = tmp_path / "d.pdf"
    result = export_dossier(store, customer_ref="7", output=out, use_cache=False, jobs=2)

    # Both hostile messages named, with why; the others rendered.
    named = {p.number: p for p in result.placeholders}
    assert sorted(named) == ["E-002", "E-003"]
    assert named["E-002"].failure.kind == "time"
    assert named["E-003"].failure.kind == "error"
    assert "RecursionError" in named["E-003"].failure.detail
    text = " ".join(pdf_text(out).split())
    assert "Hei." in text and "Kiitos paljon." in text  # E-003's day-mate is shown
    assert "syvällä" not in text and "solu solu" not in text
    # The placeholder, in Finnish: what happened, and where the original is.
    assert "sivujen taitto kesti kauemmin kuin 4 sekunnin raja salli" in text
    assert "taitto-ohjelma epäonnistui sen kohdalla (RecursionError" in text
    assert "Mitään ei ole jätetty pois" in text
    with pikepdf.open(out) as pdf:
        embedded = {n: s.get_file().read_bytes() for n, s in pdf.attachments.items()}
        with pdf.open_outline() as outline:
            titles = [c.title for item in outline.root for c in item.children]
    for key in ("slow", "deep"):
        digest = hashlib.sha256(raws[key]).hexdigest()
        [name] = [n for n, data in embedded.items() if data == raws[key]]
        assert name in text and digest in text
    # The placeholders keep their place: bookmarks for all four exhibits.
    assert [t[:5] for t in titles] == ["E-001", "E-002", "E-003", "E-004"]


@RENDER_ONLY
@pytest.mark.slow
def test_cli_names_the_hostile_email(
    hostile_store: tuple[Store, dict[str, bytes]], tmp_path: Path
) -> None:
    out = tmp_path / "d.pdf"
    run = CliRunner().invoke(main, ["export", "7", "-o", str(out), "--no-cache"])
    assert run.exit_code == 0, run.output
    assert "E-002 (Sähköposti" in run.stderr and "longer than 4 s" in run.stderr
    assert "E-003" in run.stderr and "RecursionError" in run.stderr
    assert out.exists()


def test_parts_submitted_early_come_back_in_order_and_close_stops_them(tmp_path: Path) -> None:
    """``submit`` hands parts to the workers without waiting (the export prepares the next
    parts meanwhile) and ``results`` gives them back in the order asked for; a renderer
    closed while a part renders (an export that failed) stops its workers and leaves
    nothing behind."""
    from evidence.render.pool import ChunkRenderer, Job

    root = tmp_path / "cache"
    cache = root / "render"
    with ChunkRenderer(cache, jobs=2, scratch_root=root) as renderer:
        first = renderer.submit([Job("<p>yksi</p>"), Job("<p>kaksi</p>")])
        second = renderer.submit([Job("<p>kolme</p>")])
        paths = renderer.results(second + first)
    assert [pdf_text(p).split() for p in paths] == [["kolme"], ["yksi"], ["kaksi"]]
    assert sorted(cache.iterdir()) == sorted(paths)

    long_table = "<table>" + "<tr><td>rivi</td></tr>" * 5000 + "</table>"
    with ChunkRenderer(cache, jobs=1, scratch_root=root) as renderer:
        renderer.submit([Job(long_table)])
        assert renderer.rendered == 0  # still rendering
    assert sorted(cache.iterdir()) == sorted(paths)
    assert [p.name for p in root.iterdir()] == ["render"]  # no scratch folder left
