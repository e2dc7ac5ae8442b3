"""Exports do not destroy or misstate (#19).

`evidence export` is run as a user runs it, in a process of its own, on a store made with the
defaults (no evidence.toml), on SQLite and PostgreSQL:
- an existing `-o` file is replaced only with `--force`, and a folder that cannot take the
  output is named, in words, before anything is rendered (PDF and ZIP alike);
- the audit event and the record of exports name the same person (`--by`, else
  EVIDENCE_USER, else login@host), and the record names the checkpoint the dossier states;
- no dossier of an erased customer, whoever asks (the library or the command);
- a ZIP export that fails mid-render leaves nothing behind in the temporary or cache folders.
"""

from __future__ import annotations

import datetime as dt
import getpass
import hashlib
import io
import json
import os
import signal
import socket
import subprocess
import sys
import time
import zipfile
from collections.abc import Iterator
from pathlib import Path

import pikepdf
import pytest

from evidence.errors import ContentErased, EvidenceError
from evidence.records.cases import close_case, open_case
from evidence.records.customers import add_customer
from evidence.records.erasure import erase_customer, erasures_of
from evidence.render.dossier import export_dossier
from evidence.store import checkpoints
from evidence.store.db import Store
from tests.conftest import Cli, Env, pdf_text, run_evidence
from tests.samples import AINO, load_sample

ERASED = "300001"


@pytest.fixture
def sample(store: Store) -> Store:
    """Aino's morning (the project's sample) in a store made with the defaults."""
    load_sample(store)
    return store


@pytest.fixture
def tmpdir_env(tmp_path: Path) -> dict[str, str]:
    """TMPDIR of the exporting process: a folder of this test's own, to look into after."""
    folder = tmp_path / "tmp"
    folder.mkdir()
    return {"TMPDIR": str(folder)}


@pytest.fixture
def usual_umask() -> Iterator[None]:
    """The umask most users have (022): a file it decides would be readable by all."""
    before = os.umask(0o022)
    yield
    os.umask(before)


def _json(env: Env, *args: str) -> list[dict]:
    """What `evidence ARGS --json` prints (in this process: it only reads)."""
    return json.loads(Cli(env)(*args, "--json").stdout)


def _leftovers(env: Env, tmpdir: str) -> list[str]:
    """What an export left in the temporary folder and in EVIDENCE_HOME/cache, page cache aside."""
    found = [str(p) for p in Path(tmpdir).iterdir()]
    cache = env.home / "cache"
    if cache.exists():
        found += [str(p) for p in cache.iterdir() if p.name != "render"]
    return found


def _nothing_rendered_or_recorded(env: Env, tmpdir: str) -> None:
    assert not (env.home / "cache" / "render").exists()  # not one page was rendered
    assert _leftovers(env, tmpdir) == []
    assert _json(env, "exports", "list") == []
    assert [e for e in _json(env, "audit") if e["action"] == "export"] == []


def _manifest(pdf: bytes) -> dict:
    with pikepdf.open(io.BytesIO(pdf)) as opened:
        return json.loads(opened.attachments["manifest.json"].get_file().read_bytes())


@pytest.mark.parametrize("fmt", ["pdf", "zip"])
def test_an_existing_output_is_replaced_only_with_force(
    env: Env,
    sample: Store,
    tmp_path: Path,
    tmpdir_env: dict[str, str],
    fmt: str,
    usual_umask: None,
) -> None:
    """And what the export records: who (`--by`, else login@host) in the audit event and in the
    record of exports alike, and the checkpoint its dossier states."""
    sent = tmp_path / f"sent.{fmt}"
    sent.write_bytes(b"the dossier sent to the regulator on Monday\n")
    proc = run_evidence(
        env, "export", AINO, "-o", str(sent), "--format", fmt, check_code=1, extra_env=tmpdir_env
    )
    assert (
        proc.stderr
        == f"evidence: {sent} already exists: give --force to replace it, or another -o\n"
    )
    assert proc.stdout == ""
    assert sent.read_bytes() == b"the dossier sent to the regulator on Monday\n"
    _nothing_rendered_or_recorded(env, tmpdir_env["TMPDIR"])

    # --force replaces it. The PDF is exported --by someone, with EVIDENCE_USER set too (--by
    # wins); the ZIP by nobody named: the login name and host.
    if fmt == "pdf":
        who = "Laura Lakimies"
        named = {"EVIDENCE_USER": "matti.m"}
        extra = ("--by", who)
    else:
        who = f"{getpass.getuser()}@{socket.gethostname()}"
        named = {"EVIDENCE_USER": ""}
        extra = ()
    proc = run_evidence(
        env, "export", AINO, "-o", str(sent), "--format", fmt, "--force", *extra,
        extra_env={**tmpdir_env, **named},
    )  # fmt: skip
    data = sent.read_bytes()
    digest = hashlib.sha256(data).hexdigest()
    wrote, proved = proc.stdout.splitlines()
    assert wrote.startswith(f"wrote {sent} (") and wrote.endswith(f", SHA-256 {digest})")
    assert _leftovers(env, tmpdir_env["TMPDIR"]) == []
    assert sent.stat().st_mode & 0o777 == 0o600  # personal data: owner-only, whatever the umask
    if fmt == "zip":
        with zipfile.ZipFile(sent) as archive:
            pdf = archive.read("sent/data/sent.pdf")
    else:
        pdf = data
    stated = _manifest(pdf)["checkpoint"]

    [record] = _json(env, "exports", "list")
    [event] = [e for e in _json(env, "audit") if e["action"] == "export"]
    assert record["sha256"] == event["output_sha256"] == digest
    assert record["format"] == fmt and record["arguments"]["force"] is True
    assert record["exported_by"] == event["actor"] == who
    # The checkpoint the dossier was proved against: in the record, the audit event, the
    # dossier's manifest.json, its cover and what the command printed.
    assert (record["checkpoint_id"], record["checkpoint_tree_size"], record["checkpoint_root"]) == (
        stated["id"], stated["tree_size"], stated["root"]
    )  # fmt: skip
    details = event["details"]
    assert (details["checkpoint_id"], details["tree_size"], details["root"]) == (
        stated["id"], stated["tree_size"], stated["root"]
    )  # fmt: skip
    assert proved == f"proved against checkpoint #{stated['id']} (root {stated['root']})"
    cover = tmp_path / "cover.pdf"
    cover.write_bytes(pdf)
    assert stated["root"] in "".join(pdf_text(cover).split("\f")[0].split())
    # ... which is not the head of the ledger when the export was recorded.
    assert record["chain_seq"] > stated["tree_size"]


def _unprivileged(
    env: Env, *args: str, extra_env: dict[str, str]
) -> subprocess.CompletedProcess[str]:
    """`evidence ARGS` in a process of its own, as run_evidence, but as root without its
    override of file permissions (CAP_DAC_OVERRIDE): a read-only folder is read-only to it."""
    prefix = []
    if os.geteuid() == 0:
        prefix = ["setpriv", "--bounding-set=-dac_override,-dac_read_search"]
    return subprocess.run(
        [*prefix, sys.executable, "-m", "evidence", *args],
        env={**os.environ, **env.vars, **extra_env},
        capture_output=True,
        text=True,
        timeout=300,
    )


@pytest.mark.parametrize("fmt", ["pdf", "zip"])
@pytest.mark.parametrize("where", ["read-only folder", "missing folder", "a folder as -o"])
def test_an_unwritable_output_is_refused_before_rendering(
    env: Env, store: Store, tmp_path: Path, tmpdir_env: dict[str, str], fmt: str, where: str
) -> None:
    add_customer(store, AINO, "Aino Laaksonen", ["aino.laaksonen@example.com"], [])
    if where == "read-only folder":
        folder = tmp_path / "ro"
        folder.mkdir(mode=0o555)
        output = folder / f"d.{fmt}"
        said = f"cannot write to {folder}/: permission denied"
    elif where == "missing folder":
        folder = tmp_path / "no-such-folder"
        output = folder / f"d.{fmt}"
        said = f"cannot write to {folder}/: no such folder"
    else:
        output = tmp_path / f"out.{fmt}"
        output.mkdir()
        said = f"cannot write to {output}/: it is a folder; -o names the file to write"
    proc = _unprivileged(
        env, "export", AINO, "-o", str(output), "--format", fmt, extra_env=tmpdir_env
    )
    assert (proc.returncode, proc.stdout, proc.stderr) == (1, "", f"evidence: {said}\n")
    _nothing_rendered_or_recorded(env, tmpdir_env["TMPDIR"])
    if where == "read-only folder":
        assert list(folder.iterdir()) == []


def test_one_rule_names_who_did_it(monkeypatch: pytest.MonkeyPatch) -> None:
    """`--by`, else EVIDENCE_USER, else login@host: for every record that names a person."""
    monkeypatch.setenv("EVIDENCE_USER", "matti.m")
    assert checkpoints.actor("  Laura Lakimies ") == "Laura Lakimies"
    assert checkpoints.actor() == checkpoints.actor("  ") == "matti.m"
    monkeypatch.delenv("EVIDENCE_USER")
    assert checkpoints.actor() == f"{getpass.getuser()}@{socket.gethostname()}"
    assert checkpoints.actor("x" * 400) == "x" * 300  # the width of the columns


@pytest.fixture
def erased(store: Store, tmp_path: Path) -> Store:
    """A customer whose case was closed and whose content was then erased."""
    add_customer(store, ERASED, "Eero Esimerkki", ["eero@example.net"], ["040 765 0001"])
    open_case(
        store, "KKV/9/2026", customer_ref=ERASED, authority="KKV", received=dt.date(2026, 3, 20),
        deadline=None,
    )  # fmt: skip
    close_case(store, "KKV/9/2026", reason="settled")
    erase_customer(store, ERASED, reason="erasure request 2026-11-21", by="Tietosuojavastaava")
    return store


def _erased_message(store: Store) -> str:
    with store.session() as session:
        [erasure] = erasures_of(session, ERASED)
    return (
        f"customer {ERASED}'s personal content was erased on "
        f"{erasure.erased_at:%Y-%m-%d %H:%M} UTC by "
        "Tietosuojavastaava (erasure #1: erasure request 2026-11-21); there is no dossier to "
        f"make. `evidence timeline {ERASED}` shows the erasure"
    )


@pytest.mark.parametrize("env", ["sqlite"], indirect=True)
def test_a_long_temporary_folder_is_no_obstacle(env: Env, sample: Store, tmp_path: Path) -> None:
    """The render workers' fork server listens on a socket made under the temporary folder;
    a socket's path holds at most 107 bytes. A long TMPDIR ("AF_UNIX path too long") is
    still where every other scratch file goes; the socket goes to /tmp."""
    folder = tmp_path / ("a-long-temporary-folder-" * 4)
    folder.mkdir()
    assert len(str(folder)) > 107
    out = tmp_path / "aino.pdf"
    proc = run_evidence(env, "export", AINO, "-o", str(out), extra_env={"TMPDIR": str(folder)})
    assert proc.stderr == ""
    assert out.read_bytes().startswith(b"%PDF-")
    assert list(folder.iterdir()) == []  # nothing left behind there either


def test_no_dossier_of_an_erased_customer_from_the_library(
    erased: Store, cli: Cli, tmp_path: Path
) -> None:
    out = tmp_path / "eero.pdf"
    for customer, case in ((ERASED, None), (None, "KKV/9/2026")):
        with pytest.raises(ContentErased) as refused:
            export_dossier(erased, customer_ref=customer, case_ref=case, output=out)
        assert str(refused.value) == _erased_message(erased)
        assert not out.exists()
    assert json.loads(cli("exports", "list", "--json").stdout) == []
    events = json.loads(cli("audit", "--json").stdout)
    assert [e for e in events if e["action"] == "export"] == []


@pytest.mark.parametrize("fmt", ["pdf", "zip"])
def test_no_dossier_of_an_erased_customer_from_the_command(
    env: Env, erased: Store, cli: Cli, tmp_path: Path, tmpdir_env: dict[str, str], fmt: str
) -> None:
    out = tmp_path / f"eero.{fmt}"
    for subject in ((ERASED,), ("--case", "KKV/9/2026")):
        proc = run_evidence(
            env, "export", *subject, "-o", str(out), "--format", fmt, check_code=1,
            extra_env=tmpdir_env,
        )  # fmt: skip
        assert (proc.stdout, proc.stderr) == ("", f"evidence: {_erased_message(erased)}\n")
        assert not out.exists()
        assert _leftovers(env, tmpdir_env["TMPDIR"]) == []
    assert _json(env, "exports", "list") == []


def test_a_zip_export_interrupted_mid_render_leaves_nothing_behind(
    env: Env, sample: Store, tmp_path: Path, tmpdir_env: dict[str, str]
) -> None:
    """Ctrl-C while the pages render: exit 130, and no folder or file of the export is left in
    the temporary folder, EVIDENCE_HOME/cache (the page cache aside) or beside the output."""
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    pages = env.home / "cache" / "render"
    proc = subprocess.Popen(
        [sys.executable, "-m", "evidence", "export", AINO, "-o", str(out_dir / "aino.zip"),
         "--format", "zip", "--no-cache"],
        env={**os.environ, **env.vars, **tmpdir_env},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )  # fmt: skip
    try:
        # Rendering is under way once the renderer's scratch folder (--no-cache) holds a page.
        deadline = time.monotonic() + 120
        while not any(env.home.glob("cache/**/*.pdf")) and proc.poll() is None:
            assert time.monotonic() < deadline, "no page rendered in 2 minutes"
            time.sleep(0.02)
        proc.send_signal(signal.SIGINT)
        stdout, stderr = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert (proc.returncode, stdout) == (130, ""), stderr
    assert stderr == "evidence: interrupted; what was committed before stays\n"
    assert not pages.exists()
    assert _leftovers(env, tmpdir_env["TMPDIR"]) == []
    assert list(out_dir.iterdir()) == []
    assert _json(env, "exports", "list") == []


@pytest.mark.parametrize("failing", ["the pages", "the bag"])
def test_a_zip_export_that_fails_leaves_nothing_behind(
    env: Env,
    sample: Store,
    cli: Cli,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    failing: str,
) -> None:
    """A failure while the PDF is assembled, or while the bag is made of it."""
    import tempfile

    from evidence.render import dossier, package

    def broken(*_args: object, **_kwargs: object) -> None:
        raise EvidenceError("the disk went away")

    if failing == "the pages":
        monkeypatch.setattr(dossier, "_assemble", broken)
    else:
        monkeypatch.setattr(package, "_make_bag", broken)
    scratch = tmp_path / "tmp"
    scratch.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(scratch))
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    result = cli("export", AINO, "-o", str(out_dir / "aino.zip"), "--format", "zip", code=1)
    assert result.stderr == "evidence: the disk went away\n"
    assert _leftovers(env, str(scratch)) == []
    assert list(out_dir.iterdir()) == []
    assert json.loads(cli("exports", "list", "--json").stdout) == []
