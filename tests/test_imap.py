"""IMAP import against a real Dovecot, started by the tests on 127.0.0.1 and stopped after."""

from __future__ import annotations

import imaplib
import json
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest
from sqlalchemy import select

from evidence.config import load_config
from evidence.ingest.imap import encode_folder
from evidence.store.db import open_store
from evidence.store.models import Email, ImapFolderState
from tests.conftest import NO_DOMAIN_NOTE, Cli

DOVECOT = shutil.which("dovecot") or "/usr/sbin/dovecot"
DOVEADM = shutil.which("doveadm") or "/usr/bin/doveadm"

CONFIG = """
base_dir = {root}/run
state_dir = {root}/state
log_path = {root}/dovecot.log
protocols = imap
listen = 127.0.0.1
ssl = yes
ssl_cert = <{root}/cert.pem
ssl_key = <{root}/key.pem
disable_plaintext_auth = no
mail_location = maildir:{root}/mail/%u
first_valid_uid = 1
default_login_user = {login_user}
default_internal_user = {internal_user}
{auth}
userdb {{
  driver = static
  args = uid={uid} gid={gid} home={root}/home/%u
}}
service imap-login {{
  inet_listener imap {{
    address = 127.0.0.1
    port = {port}
  }}
  inet_listener imaps {{
    address = 127.0.0.1
    port = {tls_port}
  }}
}}
service pop3-login {{
  inet_listener pop3 {{
    port = 0
  }}
}}
service submission-login {{
  inet_listener submission {{
    port = 0
  }}
}}
"""


PASSWORD_AUTH = """
auth_mechanisms = plain
passdb {{
  driver = passwd-file
  args = scheme=PLAIN username_format=%u {root}/passwd.d/%u
}}
"""


@dataclass
class Dovecot:
    root: Path
    port: int
    tls_port: int
    uid: int
    gid: int

    @property
    def config(self) -> Path:
        return self.root / "dovecot.conf"

    def add_user(self, name: str, password: str) -> Path:
        # One file per user: Dovecot re-reads a changed passwd-file at most once a second.
        (self.root / "passwd.d" / name).write_text(f"{name}:{{PLAIN}}{password}\n")
        home = self.root / "mail" / name
        for sub in ("cur", "new", "tmp"):
            (home / sub).mkdir(parents=True)
        return home

    def deliver(self, maildir: Path, name: str, raw: bytes, *, seen: bool = False) -> Path:
        for sub in ("cur", "new", "tmp"):
            (maildir / sub).mkdir(parents=True, exist_ok=True)
        path = maildir / ("cur" if seen else "new") / (name + (":2,S" if seen else ""))
        path.write_bytes(raw)
        self.own(self.root / "mail")
        return path

    def own(self, path: Path) -> None:
        if os.getuid() == 0:
            for item in [path, *path.rglob("*")]:
                os.chown(item, self.uid, self.gid)

    def doveadm(self, *args: str) -> str:
        return subprocess.run(
            [DOVEADM, "-c", str(self.config), *args], capture_output=True, text=True, check=True
        ).stdout


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture(scope="module")
def dovecot() -> Iterator[Dovecot]:
    with running_dovecot(PASSWORD_AUTH) as server:
        yield server


@contextmanager
def running_dovecot(auth: str, files: dict[str, str] | None = None) -> Iterator[Dovecot]:
    """A Dovecot on 127.0.0.1 with ``auth`` (auth_mechanisms and passdb; {root} is its
    folder) and ``files`` written in its folder, until the block ends."""
    # Not under pytest's private temp folder: Dovecot's own users must reach it.
    root = Path(tempfile.mkdtemp(prefix="evidence-dovecot-"))
    os.chmod(root, 0o755)
    if os.getuid() == 0:  # Dovecot never serves mail as root
        nobody = pwd.getpwnam("nobody")
        uid, gid, login_user, internal_user = nobody.pw_uid, nobody.pw_gid, "dovenull", "dovecot"
    else:
        me = pwd.getpwuid(os.getuid())
        uid, gid, login_user, internal_user = me.pw_uid, me.pw_gid, me.pw_name, me.pw_name
    server = Dovecot(root, _free_port(), _free_port(), uid, gid)
    for sub in ("run", "state", "mail", "home", "passwd.d"):
        (root / sub).mkdir()
    # A certificate for 127.0.0.1 that no system trusts: the tests pass it with --cafile.
    subprocess.run(
        [
            "openssl",
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "2",
            "-subj",
            "/CN=127.0.0.1",
            "-addext",
            "subjectAltName=IP:127.0.0.1",
            "-keyout",
            str(root / "key.pem"),
            "-out",
            str(root / "cert.pem"),
        ],
        check=True,
        capture_output=True,
    )
    for name, content in (files or {}).items():
        (root / name).write_text(content)
    server.config.write_text(
        CONFIG.format(
            root=root,
            port=server.port,
            tls_port=server.tls_port,
            uid=uid,
            gid=gid,
            login_user=login_user,
            internal_user=internal_user,
            auth=auth.format(root=root),
        )
    )
    server.own(root / "mail")
    server.own(root / "home")
    proc = subprocess.Popen(
        [DOVECOT, "-F", "-c", str(server.config)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        deadline = time.monotonic() + 20
        while True:
            try:
                for port in (server.port, server.tls_port):
                    socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    log = (
                        (root / "dovecot.log").read_text()
                        if (root / "dovecot.log").exists()
                        else ""
                    )
                    raise RuntimeError(f"dovecot did not start: {proc.stderr!r} {log}") from None
                time.sleep(0.1)
        yield server
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        if proc.stderr is not None:
            proc.stderr.close()
        shutil.rmtree(root, ignore_errors=True)


def _message(n: int, body: str = "Hyvää päivää") -> bytes:
    return (
        f"From: Matti <matti@example.net>\nTo: asiakaspalvelu@aurora-energia.example\n"
        f"Subject: viesti {n}\nMessage-ID: <{n}@example.net>\n"
        f"Date: Mon, 28 Sep 2026 10:0{n}:00 +0300\n"
        f"Content-Type: text/plain; charset=utf-8\n\n{body} {n}\nFrom the start.\n"
    ).encode()


def _flags(server: Dovecot, user: str, folder: str) -> dict[int, str]:
    conn = imaplib.IMAP4("127.0.0.1", server.port)
    try:
        conn.login(user, "salasana")
        conn.select(encode_folder(folder), readonly=True)
        _status, data = conn.uid("FETCH", "1:*", "(FLAGS)")
        found = {}
        for line in data:
            assert isinstance(line, bytes)
            uid = int(line.split(b"UID ")[1].split()[0].rstrip(b")"))
            found[uid] = line.decode()
        return found
    finally:
        conn.logout()


def test_imap_import_is_incremental_read_only_and_restarts_on_uidvalidity(
    dovecot: Dovecot, cli: Cli, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    user = f"cs{os.getpid()}{cli.env.backend}"
    home = dovecot.add_user(user, "salasana")
    dovecot.deliver(home, "1790000001.M1P1.test", _message(1), seen=True)
    dovecot.deliver(home, "1790000002.M2P1.test", _message(2))
    sent = home / ".L&AOQ-hetetyt"  # "Lähetetyt" in Maildir++ modified UTF-7
    dovecot.deliver(sent, "1790000003.M3P1.test", _message(3))
    old = dovecot.deliver(home, "1790000004.M4P1.test", _message(4))
    past = time.mktime((2020, 1, 2, 12, 0, 0, 0, 0, -1))
    os.utime(old, (past, past))  # its internal date: 2.1.2020
    monkeypatch.setenv("EVIDENCE_IMAP_PASSWORD", "salasana")
    base = ["import", "imap", "--host", "127.0.0.1", "--port", str(dovecot.port), "--user", user]
    folders = ["--folder", "INBOX", "--folder", "Lähetetyt"]

    first = json.loads(cli(*base, *folders, "--since", "2026-01-01", "--json").output)
    assert (first["imported"], first["duplicates"], first["quarantined"]) == (3, 0, 0)
    flags = _flags(dovecot, user, "INBOX")
    assert sum("\\Seen" in f for f in flags.values()) == 1  # only the one that was read before

    dovecot.deliver(home, "1790000005.M5P1.test", _message(5))
    second = json.loads(cli(*base, *folders, "--json").output)
    # Only what is new since the last run is fetched: message 5 and (no --since now)
    # message 4, whose UID is above the last one seen.
    assert (second["imported"], second["duplicates"]) == (2, 0)
    third = json.loads(cli(*base, *folders, "--json").output)
    assert (third["imported"], third["duplicates"]) == (0, 0)

    dovecot.doveadm("mailbox", "update", "-u", user, "--uid-validity", "4242", "INBOX")
    fourth = json.loads(cli(*base, *folders, "--json").output)
    assert (fourth["imported"], fourth["duplicates"]) == (0, 4)  # INBOX read again
    assert all("\\Seen" not in f for u, f in _flags(dovecot, user, "INBOX").items() if u != 1)

    # The same mail from the Maildir on disk is the same records.
    disk = json.loads(cli("import", "mail", str(home), "--json").output)
    assert (disk["imported"], disk["duplicates"]) == (0, 5)

    store = open_store(load_config())
    try:
        with store.session() as session:
            states = {
                s.folder: (s.uidvalidity, s.last_uid)
                for s in session.scalars(select(ImapFolderState))
            }
            subjects = sorted(session.scalars(select(Email.subject)))
            sources = sorted(session.scalars(select(Email.source)))
    finally:
        store.close()
    assert states["INBOX"][0] == 4242 and states["INBOX"][1] == 4
    assert states["Lähetetyt"][1] == 1
    assert subjects == [f"viesti {n}" for n in range(1, 6)]
    assert sources[0].startswith(f"imap://{user}@127.0.0.1:{dovecot.port}/INBOX (UID ")


def test_imap_password_from_netrc_never_argv(
    dovecot: Dovecot, cli: Cli, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    user = f"nr{os.getpid()}{cli.env.backend}"
    home = dovecot.add_user(user, "salasana")
    dovecot.deliver(home, "1790000001.M1P1.test", _message(7))
    base = ["import", "imap", "--host", "127.0.0.1", "--port", str(dovecot.port), "--user", user]
    monkeypatch.delenv("EVIDENCE_IMAP_PASSWORD", raising=False)
    monkeypatch.setenv("NETRC", str(tmp_path / "missing-netrc"))
    failed = cli(*base, code=1)
    assert "no IMAP password" in failed.stderr and "EVIDENCE_IMAP_PASSWORD" in failed.stderr
    netrc = tmp_path / "netrc"
    netrc.write_text(f"machine 127.0.0.1 login {user} password salasana\n")
    netrc.chmod(0o600)
    monkeypatch.setenv("NETRC", str(netrc))
    assert cli(*base).stdout == "imported 1, duplicates 0, quarantined 0\n" + NO_DOMAIN_NOTE
    netrc.write_text(f"machine 127.0.0.1 login {user} password wrong\n")
    refused = cli(*base, code=1)
    assert "refused the login" in refused.stderr
    # No password ever travels unencrypted to another machine.
    monkeypatch.setenv("EVIDENCE_IMAP_PASSWORD", "x")
    plain = cli(
        "import", "imap", "--host", "imap.example.net", "--port", "143", "--user", "u", code=1
    )
    assert "unencrypted" in plain.stderr


def test_imap_over_tls_checks_the_certificate(
    dovecot: Dovecot, cli: Cli, monkeypatch: pytest.MonkeyPatch
) -> None:
    user = f"tls{os.getpid()}{cli.env.backend}"
    home = dovecot.add_user(user, "salasana")
    dovecot.deliver(home, "1790000001.M1P1.test", _message(8))
    monkeypatch.setenv("EVIDENCE_IMAP_PASSWORD", "salasana")
    cert = str(dovecot.root / "cert.pem")
    implicit = ["--host", "127.0.0.1", "--port", str(dovecot.tls_port), "--ssl", "--user", user]
    untrusted = cli("import", "imap", *implicit, code=1)
    assert "certificate verify failed" in untrusted.stderr
    assert cli("import", "imap", *implicit, "--cafile", cert).stdout == (
        "imported 1, duplicates 0, quarantined 0\n" + NO_DOMAIN_NOTE
    )
    starttls = ["--host", "127.0.0.1", "--port", str(dovecot.port), "--starttls", "--user", user]
    again = cli("import", "imap", *starttls, "--cafile", cert, "--folder", "INBOX")
    assert again.stdout == "imported 0, duplicates 1, quarantined 0\n" + NO_DOMAIN_NOTE


def test_sync_runs_an_imap_account(
    dovecot: Dovecot, cli: Cli, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`evidence sync` imports a [[sync.imap]] account like `evidence import imap`."""
    user = f"sync{os.getpid()}{cli.env.backend}"
    home = dovecot.add_user(user, "salasana")
    dovecot.deliver(home, "1790000011.M1P1.test", _message(11))
    monkeypatch.setenv("EVIDENCE_IMAP_PASSWORD", "salasana")
    cli.env.write_config(
        f'[[sync.imap]]\nname = "asiakaspalvelu"\nhost = "127.0.0.1"\nport = {dovecot.port}\n'
        f'user = "{user}"\nfolders = ["INBOX"]\n'
    )
    first = cli("sync")
    assert "imap asiakaspalvelu: imported 1, duplicates 0, quarantined 0" in first.stdout
    again = cli("sync")
    assert "imap asiakaspalvelu: imported 0, duplicates 0, quarantined 0" in again.stdout


def test_each_folder_is_reconciled_with_the_server_in_status_and_the_dossier(
    dovecot: Dovecot, cli: Cli, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """The server's STATUS MESSAGES per folder beside what the store holds from it."""
    from tests.conftest import pdf_text

    user = f"rec{os.getpid()}{cli.env.backend}"
    home = dovecot.add_user(user, "salasana")
    for n in (1, 2, 3):
        dovecot.deliver(home, f"179000002{n}.M{n}P1.rec", _message(n))
    dovecot.deliver(home, "1790000024.M4P1.rec", b"\n\n")  # not mail: quarantined
    # A message already stored from a file is held from the folder too.
    saved = tmp_path / "saved.eml"
    saved.write_bytes(_message(1))
    cli("import", "mail", str(saved))
    monkeypatch.setenv("EVIDENCE_IMAP_PASSWORD", "salasana")
    base = ["import", "imap", "--host", "127.0.0.1", "--port", str(dovecot.port), "--user", user]
    first = json.loads(cli(*base, "--json", code=3).output)
    assert (first["imported"], first["duplicates"], first["quarantined"]) == (2, 1, 1)

    status = json.loads(cli("status", "--json").output)
    [folder] = status["reconciliation"]
    assert folder["mailbox"] == f"imap://{user}@127.0.0.1:{dovecot.port}/INBOX"
    assert (folder["folder"], folder["server_count"], folder["in_store"]) == ("INBOX", 4, 3)
    assert folder["difference"] == 1 and folder["counted_at"].startswith("20")
    text = cli("status").output
    assert f"mailbox imap://{user}@127.0.0.1:{dovecot.port}/INBOX: server 4, store 3 at " in text
    assert ": 1 not in the store" in text

    # New mail, and a run that finds it: the figures move on with the run's time.
    dovecot.deliver(home, "1790000025.M5P1.rec", _message(5))
    cli(*base, "--json")
    [again] = json.loads(cli("status", "--json").output)["reconciliation"]
    assert (again["server_count"], again["in_store"]) == (5, 4)
    assert again["counted_at"] >= folder["counted_at"]

    # A folder imported before the store counted (as migration 0016 leaves it): its next run
    # reads it once more, and what is stored counts again.
    store = open_store(load_config())
    try:
        with store.writing() as session:
            for state in session.scalars(select(ImapFolderState)):
                state.held, state.server_count, state.counted_at = 0, None, None
    finally:
        store.close()
    reread = json.loads(cli(*base, "--json").output)
    # (The quarantined input met again at the same place counts as a duplicate too.)
    assert (reread["imported"], reread["duplicates"], reread["quarantined"]) == (0, 5, 0)
    [counted] = json.loads(cli("status", "--json").output)["reconciliation"]
    assert (counted["server_count"], counted["in_store"]) == (5, 4)
    assert (third := json.loads(cli(*base, "--json").output))["duplicates"] == 0, third

    cli("customer", "add", "100234", "--name", "Matti Virtanen", "--email", "matti@example.net")
    out = tmp_path / "d.pdf"
    cli("export", "100234", "-o", str(out), "--lang", "en")
    flat = " ".join(pdf_text(out).split())
    assert "Server count folder INBOX: 5 on the server, 4 in the store, counted " in flat
    assert "; 1 not in the store" in flat
    # The folder is one source (before, each message from IMAP was a source of its own).
    sources = flat.split("Completeness of the sources")[-1]
    assert sources.count("mailbox: INBOX ") == 1 and "(UID " not in sources
