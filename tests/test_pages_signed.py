"""The pages are covered (issue 19): what each page shows is signed with the store's key.

Every tampering a person can do with qpdf or pikepdf to what a regulator reads
(a page removed, added, reordered, a figure on the summary page changed) makes
`evidence verify` exit 5 naming the page, in a fresh process, as a user runs it;
a dossier re-signed with another key passes only until the company's key id is
pinned with --key-id. VERIFYING.md shows the same with qpdf, openssl and Python's
standard library, and its commands are run here exactly as written.
"""

from __future__ import annotations

import hashlib
import json
import re
import subprocess
from pathlib import Path

import pikepdf
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from evidence.proofs.pages import page_digests, seal_pages
from evidence.store.checkpoints import key_id, public_pem
from evidence.store.db import Store
from tests.conftest import Env, page_texts, pdf_text, run_evidence
from tests.test_verify_dossier import export, fill_sample

ROOT = Path(__file__).resolve().parents[1]
KEY_ID = re.compile(r"signed by key ([0-9a-f]{64})")


@pytest.fixture
def dossier(company_store: Store, tmp_path: Path) -> Path:
    fill_sample(company_store)
    out = tmp_path / "dossier.pdf"
    export(company_store, out)
    return out


def _verify(env: Env, pdf: Path, *args: str, code: int) -> subprocess.CompletedProcess[str]:
    """`evidence verify` in a fresh process; nothing on stderr (no warning, no traceback)."""
    proc = run_evidence(env, "verify", str(pdf), *args, check_code=code)
    assert proc.stderr == "", proc.stderr
    return proc


def _fails(proc: subprocess.CompletedProcess[str]) -> list[str]:
    return [line[len("  FAIL  ") :] for line in proc.stdout.splitlines() if "  FAIL  " in line]


def _company_key(env: Env) -> str:
    pem = (env.home / "checkpoint-key.pub.pem").read_text(encoding="ascii")
    from evidence.store.checkpoints import load_public_pem

    return key_id(load_public_pem(pem))


def _qpdf(*args: str) -> None:
    subprocess.run(["qpdf", *args], check=True, capture_output=True)


def test_an_untouched_dossier_verifies_and_names_its_key(env: Env, dossier: Path) -> None:
    company = _company_key(env)
    with pikepdf.open(dossier) as pdf:
        signed = json.loads(pdf.attachments["pages.json"].get_file().read_bytes())
        pages = len(pdf.pages)
        assert signed["pages"] == page_digests(pdf)
        manifest = pdf.attachments["manifest.json"].get_file().read_bytes()
    assert signed["page_count"] == pages and signed["key_id"] == company
    assert signed["manifest_sha256"] == hashlib.sha256(manifest).hexdigest()
    assert signed["checkpoint"]["root"] == json.loads(manifest)["checkpoint"]["root"]
    proc = _verify(env, dossier, code=0)
    lines = proc.stdout.splitlines()
    assert f"  ok    all {pages} pages show what key {company} signed (pages.json)" in lines
    # Without --key-id: the key found, and why only the company's published id settles it.
    [note] = [line for line in lines if line.startswith("  note  signed by key")]
    assert company in note and "only comparing this id with the one the company publishes" in note
    assert lines[-1] == "INTACT: every check passed"
    pinned = _verify(env, dossier, "--key-id", company.upper(), code=0)
    assert f"  ok    signed by key {company}, given with --key-id" in pinned.stdout
    # Re-written by qpdf (object numbers, object streams, compression): the same pages.
    rewritten = dossier.with_name("rewritten.pdf")
    _qpdf("--object-streams=disable", "--compress-streams=n", str(dossier), str(rewritten))
    _verify(env, rewritten, "--key-id", company, code=0)


@pytest.mark.parametrize("env", ["sqlite"], indirect=True)
def test_a_page_removed_added_or_reordered_is_named(
    env: Env, dossier: Path, tmp_path: Path
) -> None:
    removed = tmp_path / "removed.pdf"
    _qpdf(str(dossier), "--pages", str(dossier), "1-3,5-z", "--", str(removed))
    proc = _verify(env, removed, code=5)
    n = len(json.loads(_pages_json(dossier))["pages"])
    assert _fails(proc) == [
        f"pages: the dossier has {n - 1} pages, {n} were signed: pages were removed",
        "signed page 4: is not in the dossier: it was removed",
    ]
    assert proc.stdout.splitlines()[-1] == "NOT INTACT: 2 problems found"

    blank = tmp_path / "blank.pdf"
    with pikepdf.new() as pdf:
        pdf.add_blank_page(page_size=(595, 842))
        pdf.save(blank)
    added = tmp_path / "added.pdf"
    _qpdf(
        str(dossier),
        "--pages",
        str(dossier),
        "1-5",
        str(blank),
        str(dossier),
        "6-z",
        "--",
        str(added),
    )
    assert _fails(_verify(env, added, code=5)) == [
        f"pages: the dossier has {n + 1} pages, {n} were signed: pages were added",
        "page 6: is not a signed page: it was added",
    ]

    reordered = tmp_path / "reordered.pdf"
    _qpdf(str(dossier), "--pages", str(dossier), "1,3,2,4-z", "--", str(reordered))
    assert _fails(_verify(env, reordered, code=5)) == [
        "page 2: is signed page 3: the pages were reordered (or a page repeated)",
        "page 3: is signed page 2: the pages were reordered (or a page repeated)",
    ]
    # Two pages swapped across one that stays: both are named, the one in place is not.
    swapped = tmp_path / "swapped.pdf"
    _qpdf(str(dossier), "--pages", str(dossier), "1,4,3,2,5-z", "--", str(swapped))
    assert _fails(_verify(env, swapped, code=5)) == [
        "page 2: is signed page 4: the pages were reordered (or a page repeated)",
        "page 4: is signed page 2: the pages were reordered (or a page repeated)",
    ]


def _pages_json(pdf_path: Path) -> bytes:
    with pikepdf.open(pdf_path) as pdf:
        return bytes(pdf.attachments["pages.json"].get_file().read_bytes())


def _change_answered_count(src: Path, dst: Path) -> int:
    """ "vastattu 1" -> "vastattu 7" on the summary page, by editing its content stream
    (glyph 0x14 is "1", 0x1A is "7" in the dossier's DejaVu subsets). Its page number."""
    word = b"[<0059>0<0044>0<0056>0<0057>0<0044>0<0057>0<0057>0<0058>0] TJ"  # vastattu
    with pikepdf.open(src) as pdf:
        for n, page in enumerate(pdf.pages, start=1):
            for stream in page.obj.Contents:
                data = bytes(stream.read_bytes())
                at = data.find(word)
                one = data.find(b"[<0014>0] TJ", at)
                if at < 0 or one < 0 or one - at > 300:
                    continue
                changed = data[:one] + b"[<001A>0] TJ" + data[one + 12 :]
                stream.write(changed)
                pdf.save(dst)
                return n
    raise AssertionError("no 'vastattu 1' in the dossier")


@pytest.mark.parametrize("env", ["sqlite"], indirect=True)
def test_a_changed_figure_on_the_summary_page_is_named(
    env: Env, dossier: Path, tmp_path: Path
) -> None:
    assert re.search(r"vastattu +1\n", pdf_text(dossier))
    changed = tmp_path / "changed.pdf"
    n = _change_answered_count(dossier, changed)
    [text] = page_texts(changed, n, layout=True)[n - 1 :]
    assert re.search(r"vastattu +7\n", text) and not re.search(r"vastattu +1\n", text)
    proc = _verify(env, changed, code=5)
    assert _fails(proc) == [f"page {n}: shows something other than signed page {n}: it was changed"]
    # Every other check still passes: only what the pages show gives it away.
    assert "  ok    the cover prints the checkpoint's root" in proc.stdout


def _resign(src: Path, dst: Path, key: Ed25519PrivateKey) -> None:
    """What a forger with their own key can do: sign the checkpoint text again, and the
    pages as they now are, and replace the proofs and pages.json with theirs."""
    import base64

    with pikepdf.open(src) as pdf:
        files = {n: bytes(s.get_file().read_bytes()) for n, s in pdf.attachments.items()}
        manifest = json.loads(files["manifest.json"])
        checkpoint = manifest["checkpoint"]
        signature = key.sign(checkpoint["text"].encode("utf-8"))
        pem = public_pem(key.public_key())
        checkpoint |= {
            "signature": base64.b64encode(signature).decode("ascii"),
            "public_key": pem,
            "key_id": key_id(key.public_key()),
        }
        new_manifest = json.dumps(manifest).encode()
        sealed = seal_pages(
            page_digests(pdf),
            key,
            manifest_sha256=hashlib.sha256(new_manifest).hexdigest(),
            checkpoint={k: checkpoint[k] for k in ("id", "tree_size", "root")},
        )
        replaced = {
            "manifest.json": new_manifest,
            "checkpoint.sig": signature,
            "checkpoint-key.pub.pem": pem.encode("ascii"),
            **{name: data for name, data, _mime in sealed.files()},
        }
        for name, data in replaced.items():
            del pdf.attachments[name]
            pdf.attachments[name] = pikepdf.AttachedFileSpec(pdf, data, filename=name)
        pdf.save(dst)


@pytest.mark.parametrize("env", ["sqlite"], indirect=True)
def test_a_dossier_resigned_with_another_key_fails_when_the_key_is_pinned(
    env: Env, dossier: Path, tmp_path: Path
) -> None:
    company = _company_key(env)
    changed = tmp_path / "changed.pdf"
    _change_answered_count(dossier, changed)
    forged = tmp_path / "forged.pdf"
    other = Ed25519PrivateKey.generate()
    _resign(changed, forged, other)
    forger = key_id(other.public_key())
    # Unpinned, every signature holds; the cover still prints the company's key id.
    loose = _verify(env, forged, code=5)
    assert _fails(loose) == [
        f"cover: does not print the id of the key that signed the checkpoint ({forger}): the "
        "checkpoint was signed again with another key"
    ]
    assert f"note  signed by key {forger}: anyone can make a key" in loose.stdout
    # Pinned to the company's published id: exit 5, naming the key that signed.
    pinned = _verify(env, forged, "--key-id", company, code=5)
    assert _fails(pinned) == [
        _fails(loose)[0],
        f"key: signed by key {forger}, which is not one given with --key-id: another key "
        "signed this dossier (or re-signed it after a change)",
    ]
    # Pinned to both, only the cover gives it away: --key-id says whose key it must be.
    both = _verify(env, forged, "--key-id", company, "--key-id", forger, code=5)
    assert [f.split(":")[0] for f in _fails(both)] == ["cover"]
    # The genuine dossier passes the pin; a malformed id is a usage error.
    _verify(env, dossier, "--key-id", company, code=0)
    bad = run_evidence(env, "verify", str(dossier), "--key-id", "abc", check_code=2)
    assert "'abc' is not a key id: 64 hexadecimal digits" in bad.stderr
    store_check = run_evidence(env, "verify", "--key-id", company, check_code=2)
    assert "--key-id, --trust and --previous check a dossier: give its PDF" in store_check.stderr


@pytest.mark.parametrize("env", ["sqlite"], indirect=True)
def test_pages_json_replaced_or_removed_fails(env: Env, dossier: Path, tmp_path: Path) -> None:
    body = json.loads(_pages_json(dossier))
    body["pages"][0] = "00" * 32
    with pikepdf.open(dossier) as pdf:
        del pdf.attachments["pages.json"]
        pdf.attachments["pages.json"] = pikepdf.AttachedFileSpec(
            pdf, json.dumps(body).encode(), filename="pages.json"
        )
        pdf.save(tmp_path / "edited.pdf")
        del pdf.attachments["pages.json"]
        pdf.save(tmp_path / "none.pdf")
    assert _fails(_verify(env, tmp_path / "edited.pdf", code=5)) == [
        "pages.json: its signature (pages.sig) does not hold: pages.json was altered"
    ]
    [failure] = _fails(_verify(env, tmp_path / "none.pdf", code=5))
    assert failure.startswith("pages.json: not embedded: no signature covers the pages")


def _verifying_md_block(marker: str, lang: str) -> str:
    """The fenced block of VERIFYING.md that follows the line with ``marker``."""
    text = (ROOT / "VERIFYING.md").read_text(encoding="utf-8")
    at = text.index(marker)
    match = re.compile(rf"```{lang}\n(.*?)```", re.S).search(text, at)
    assert match is not None
    return match.group(1)


@pytest.mark.parametrize("env", ["sqlite"], indirect=True)
def test_verifying_md_checks_the_pages_with_standard_tools(
    env: Env, dossier: Path, tmp_path: Path
) -> None:
    """Section 7 of VERIFYING.md, its shell lines and its Python program run as written."""
    shell = _verifying_md_block("## 7. The pages", "sh")
    program = _verifying_md_block("check-pages.py", "python")

    def follow(pdf: Path, work: Path) -> subprocess.CompletedProcess[str]:
        work.mkdir()
        (work / "dossier.pdf").write_bytes(pdf.read_bytes())
        (work / "check-pages.py").write_text(program, encoding="utf-8")
        return subprocess.run(
            ["sh", "-c", "set -e\n" + shell],
            cwd=work,
            capture_output=True,
            text=True,
            env={"PATH": "/usr/bin:/bin"},
        )

    good = follow(dossier, tmp_path / "good")
    assert good.returncode == 0, (good.stdout, good.stderr)
    assert "Signature Verified Successfully" in good.stdout
    company = _company_key(env)
    assert company in good.stdout  # the key id, printed to compare with the published one
    n = len(json.loads(_pages_json(dossier))["pages"])
    assert good.stdout.count("ok   page ") == n and "FAIL" not in good.stdout

    changed = tmp_path / "changed.pdf"
    page = _change_answered_count(dossier, changed)
    bad = follow(changed, tmp_path / "bad")
    assert bad.returncode != 0
    assert f"FAIL page {page}\n" in bad.stdout

    removed = tmp_path / "removed.pdf"
    _qpdf(str(dossier), "--pages", str(dossier), "1-3,5-z", "--", str(removed))
    gone = follow(removed, tmp_path / "gone")
    assert gone.returncode != 0
    assert f"FAIL {n - 1} pages, {n} signed" in gone.stdout

    # pages.json changed by hand: openssl refuses it.
    edited = tmp_path / "edit"
    follow(dossier, edited)
    text = (edited / "files/pages.json").read_text()
    (edited / "files/pages.json").write_text(text.replace('"page_count": ', '"page_count":  '))
    check = subprocess.run(
        [
            "openssl",
            "pkeyutl",
            "-verify",
            "-pubin",
            "-inkey",
            "pages-key.pub.pem",
            "-rawin",
            "-in",
            "pages.json",
            "-sigfile",
            "pages.sig",
        ],
        cwd=edited / "files",
        capture_output=True,
        text=True,
    )
    assert check.returncode != 0


@pytest.mark.parametrize("env", ["sqlite"], indirect=True)
@pytest.mark.parametrize(
    ("lang", "heading", "pages_step", "english"),
    [
        ("sv", "Så kontrollerar du detta dokument", "Sidorna. Filen pages.json", True),
        ("fi", "Näin tarkistat tämän asiakirjan", "Sivut. Tiedostossa pages.json", True),
        ("en", "How to check this document", "The pages. pages.json lists", False),
    ],
)
def test_the_verification_page_is_in_the_dossiers_language(
    env: Env,
    company_store: Store,
    tmp_path: Path,
    lang: str,
    heading: str,
    pages_step: str,
    english: bool,
) -> None:
    from evidence.render.dossier import export_dossier
    from tests.samples import SAMPLE_CASE

    fill_sample(company_store)
    out = tmp_path / f"{lang}.pdf"
    export_dossier(
        company_store, customer_ref=None, case_ref=SAMPLE_CASE, output=out, language=lang
    )
    text = " ".join(pdf_text(out).split())
    assert heading in text and pages_step in text
    assert "openssl pkeyutl -verify -pubin -inkey pages-key.pub.pem -rawin" in text
    if english:
        assert "How to check this document" not in text and "The pages." not in text


@pytest.mark.parametrize("env", ["sqlite"], indirect=True)
def test_the_report_never_says_a_failed_check_holds(
    env: Env, dossier: Path, tmp_path: Path
) -> None:
    with pikepdf.open(dossier) as pdf:
        manifest = json.loads(pdf.attachments["manifest.json"].get_file().read_bytes())
        manifest["consistency"] = [
            {"checkpoint_id": 1, "tree_size": 1, "root": "00" * 32, "proof": []}
        ]
        del pdf.attachments["manifest.json"]
        pdf.attachments["manifest.json"] = pikepdf.AttachedFileSpec(
            pdf, json.dumps(manifest).encode(), filename="manifest.json"
        )
        pdf.save(tmp_path / "forged.pdf")
    proc = _verify(env, tmp_path / "forged.pdf", code=5)
    fails = _fails(proc)
    assert any(
        f.startswith("consistency with checkpoint #1: the proof does not hold") for f in fails
    )
    assert "pages.json: was signed for another manifest.json than the embedded one" in fails
    ok = [line for line in proc.stdout.splitlines() if line.startswith("  ok    ")]
    assert not [line for line in ok if "consistency" in line], ok
    assert not [line for line in ok if "pages show" in line], ok


@pytest.mark.parametrize("env", ["sqlite"], indirect=True)
def test_a_truncated_dossier_is_called_incomplete_in_clean_words(
    env: Env, dossier: Path, tmp_path: Path
) -> None:
    data = dossier.read_bytes()
    for keep in (len(data) // 2, 2000):
        cut = tmp_path / f"cut-{keep}.pdf"
        cut.write_bytes(data[:keep])
        proc = _verify(env, cut, code=5)
        [failure] = _fails(proc)
        assert failure.startswith("PDF: not a complete PDF: "), failure
        assert "0x" not in proc.stdout and "BytesIO" not in proc.stdout


@pytest.mark.parametrize("env", ["sqlite"], indirect=True)
def test_a_truncated_uncompressed_dossier_is_damage_not_a_bug(
    env: Env, dossier: Path, tmp_path: Path
) -> None:
    """qpdf reconstructs a cut file written with --qdf (no object streams) far enough to
    open it, and then fails reading the embedded files: a damaged dossier (exit 5) in clean
    words, never "this is a bug" (exit 1)."""
    qdf = tmp_path / "qdf.pdf"
    subprocess.run(
        ["qpdf", "--qdf", "--object-streams=disable", str(dossier), str(qdf)], check=True
    )
    data = qdf.read_bytes()
    for part in range(1, 9):  # the first fifth: where qpdf reconstructs and then fails
        cut = tmp_path / "cut.pdf"
        cut.write_bytes(data[: len(data) * part // 41])
        proc = _verify(env, cut, code=5)
        assert "bug" not in proc.stderr and proc.stdout.splitlines()[-1].startswith("NOT INTACT")
        assert "0x" not in proc.stdout and "BytesIO" not in proc.stdout


@pytest.mark.parametrize("env", ["sqlite"], indirect=True)
def test_a_dossier_is_checked_on_its_own_beside_a_damaged_store(
    env: Env, company_store: Store, dossier: Path
) -> None:
    """`verify DOSSIER.pdf` needs no store: a damaged one in EVIDENCE_HOME (or a settings
    file it cannot read) only keeps the check out of the audit log, and says so."""
    company_store.engine.dispose()  # the last connection folds the WAL into the file
    db = env.home / "evidence.db"
    data = bytearray(db.read_bytes())
    data[0] ^= 0xFF  # "SQLite format 3\0" no more
    db.write_bytes(bytes(data))
    proc = run_evidence(env, "verify", str(dossier), check_code=0)
    assert proc.stdout.splitlines()[-1] == "INTACT: every check passed"
    [note] = proc.stderr.splitlines()
    assert note.startswith("note: this check of the dossier is not in the audit log: ")
    assert "damaged" in note
    (env.home / "evidence.toml").write_text("[reports]\nservice_level_treshold = 30\n")
    proc = run_evidence(env, "verify", str(dossier), check_code=0)
    assert "unknown key 'service_level_treshold'" in proc.stderr
