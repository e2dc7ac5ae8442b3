"""IMAP with OAuth 2.0 (SASL XOAUTH2) against a real Dovecot whose ``oauth2`` passdb asks
a token server started here (tests/oauth_server.py) whether each token is good.

Every import runs ``evidence`` in a fresh process, as a user or cron does.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import func, select

from evidence.config import load_config
from evidence.store.db import open_store
from evidence.store.models import Email
from tests.conftest import Env
from tests.oauth_server import (
    Client,
    TokenServer,
    make_certificate,
    make_service_account,
    running_token_server,
)
from tests.test_imap import Dovecot, _message, running_dovecot

SECRET = "s3cr3t-CANARY-7f0e5d"

OAUTH_AUTH = """
auth_mechanisms = xoauth2 oauthbearer
auth_failure_delay = 0
passdb {{
  driver = oauth2
  mechanisms = xoauth2 oauthbearer
  args = {root}/dovecot-oauth2.conf.ext
}}
"""

OAUTH_CONF = """
introspection_mode = post
introspection_url = {url}/introspect
username_attribute = username
active_attribute = active
active_value = true
"""


@pytest.fixture(scope="module")
def tokens() -> Iterator[TokenServer]:
    with running_token_server() as server:
        yield server


@pytest.fixture(scope="module")
def dovecot(tokens: TokenServer) -> Iterator[Dovecot]:
    conf = {"dovecot-oauth2.conf.ext": OAUTH_CONF.format(url=tokens.url)}
    with running_dovecot(OAUTH_AUTH, conf) as server:
        yield server


@pytest.fixture(autouse=True)
def fresh_tokens(tokens: TokenServer) -> Iterator[None]:
    tokens.lifetime = 3600
    yield
    tokens.lifetime = 3600


def _mailbox(dovecot: Dovecot, tag: str, env: Env, messages: int) -> tuple[str, Path]:
    user = f"{tag}{os.getpid()}{env.backend}"
    home = dovecot.root / "mail" / user
    for n in range(1, messages + 1):
        dovecot.deliver(home, f"17900000{n:02d}.M{n}P1.{tag}", _message(n))
    return user, home


def _evidence(env: Env, *args: str, code: int = 0, secret: bool = True) -> str:
    extra = {"EVIDENCE_OAUTH_CLIENT_SECRET": SECRET} if secret else {}
    environ = {k: v for k, v in os.environ.items() if not k.startswith("EVIDENCE_")}
    proc = subprocess.run(
        [sys.executable, "-m", "evidence", *args],
        env={**environ, **env.vars, **extra},
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == code, (args, proc.returncode, proc.stdout, proc.stderr)
    return proc.stdout + proc.stderr


def _store_text(env: Env) -> bytes:
    """Everything the store holds, as bytes: the SQLite files, or a dump of the database."""
    if env.backend == "sqlite":
        return b"".join(p.read_bytes() for p in env.home.glob("evidence.db*"))
    url = env.database_url.replace("+psycopg", "").replace("+psycopg2", "")
    return subprocess.run(["pg_dump", "-d", url], capture_output=True, check=True).stdout


def _imported(output: str) -> tuple[int, int, int]:
    report = json.loads(output[: output.rindex("}") + 1])
    return report["imported"], report["duplicates"], report["quarantined"]


def test_xoauth2_with_a_client_secret_and_with_a_certificate(
    dovecot: Dovecot, tokens: TokenServer, env: Env, tmp_path: Path
) -> None:
    user, home = _mailbox(dovecot, "sec", env, 2)
    tokens.clients[f"app-{user}"] = Client(mailbox=user, secret=SECRET)
    base = ["import", "imap", "--host", "127.0.0.1", "--port", str(dovecot.port), "--user", user]
    oauth = ["--auth", "oauth2", "--token-url", f"{tokens.url}/token"]
    first = _evidence(env, *base, *oauth, "--client-id", f"app-{user}", "--json")
    assert _imported(first) == (2, 0, 0)
    assert tokens.requests[-1]["client_secret"] == SECRET  # sent only to the token endpoint

    # A certificate instead of a secret: a client assertion signed with its key, which
    # the token server checks against the certificate registered for the app.
    pem, cert = make_certificate("evidence")
    (tmp_path / "app.pem").write_bytes(pem)
    tokens.clients[f"cert-{user}"] = Client(mailbox=user, certificate=cert)
    dovecot.deliver(home, "1790000099.M9P1.sec", _message(9))
    certified = [*oauth, "--client-id", f"cert-{user}", "--client-certificate"]
    second = _evidence(env, *base, *certified, str(tmp_path / "app.pem"), "--json", secret=False)
    assert _imported(second) == (1, 0, 0)
    assert "client_secret" not in tokens.requests[-1]
    assert tokens.requests[-1]["client_assertion_type"].endswith("client-assertion-type:jwt-bearer")

    # Microsoft's defaults: the scope for Exchange Online IMAP (the endpoint overridden here).
    again = _evidence(
        env,
        *base,
        "--auth",
        "oauth2",
        "--provider",
        "microsoft",
        "--tenant",
        "aurora-energia.example",
        "--token-url",
        f"{tokens.url}/token",
        "--client-id",
        f"app-{user}",
        "--json",
    )
    assert _imported(again) == (0, 0, 0)
    assert tokens.requests[-1]["scope"] == "https://outlook.office365.com/.default"

    # Neither the secret nor any token issued is in the output, the store or its audit log.
    everything = first + second + again
    kept = _store_text(env)
    for value in [SECRET, *tokens.tokens]:
        assert value not in everything
        assert value.encode() not in kept


def test_google_service_account_acts_as_the_mailbox(
    dovecot: Dovecot, tokens: TokenServer, env: Env, tmp_path: Path
) -> None:
    user, _home = _mailbox(dovecot, "gws", env, 1)
    email = f"evidence-{user}@project.iam.gserviceaccount.com"
    key, public = make_service_account(email, f"{tokens.url}/token")
    (tmp_path / "key.json").write_text(json.dumps(key))
    tokens.clients[email] = Client(mailbox=user, public_key=public)
    args = ["import", "imap", "--auth", "oauth2", "--provider", "google"]
    args += ["--service-account", str(tmp_path / "key.json"), "--user", user]
    args += ["--host", "127.0.0.1", "--port", str(dovecot.port), "--json"]
    assert _imported(_evidence(env, *args, secret=False)) == (1, 0, 0)
    assert tokens.requests[-1]["grant_type"] == "urn:ietf:params:oauth:grant-type:jwt-bearer"
    # Delegation is for the one mailbox: another user is refused by the token endpoint.
    other = [a if a != user else "someone-else" for a in args]
    refused = _evidence(env, *other, code=1, secret=False)
    assert refused.count("\n") == 1 and "unauthorized_client" in refused


@pytest.mark.slow  # Dovecot delays logins from an address that just failed (its penalty)
def test_a_wrong_secret_an_expired_or_revoked_token_each_one_line_nothing_imported(
    dovecot: Dovecot, tokens: TokenServer, env: Env
) -> None:
    user, _home = _mailbox(dovecot, "bad", env, 2)
    tokens.clients[f"app-{user}"] = Client(mailbox=user, secret="the-right-one")
    args = ["import", "imap", "--host", "127.0.0.1", "--port", str(dovecot.port), "--user", user]
    args += ["--auth", "oauth2", "--token-url", f"{tokens.url}/token", "--client-id"]
    args += [f"app-{user}"]

    wrong = _evidence(env, *args, code=1)
    assert wrong.count("\n") == 1, wrong
    assert (
        "refused app-" in wrong and "invalid_client" in wrong and "Invalid client secret" in wrong
    )
    assert SECRET not in wrong and "Trace ID" not in wrong

    tokens.clients[f"app-{user}"].secret = SECRET
    tokens.lifetime = -60  # issued already expired
    expired = _evidence(env, *args, code=1)
    assert expired.count("\n") == 1 and "refused the OAuth token for " + user in expired
    tokens.lifetime = 3600

    issued = len(tokens.tokens)
    introspected = tokens.introspections

    def revoke_after_issue(form: dict[str, str], grant=tokens.grant) -> tuple[int, dict]:  # type: ignore[no-untyped-def, type-arg]
        answer = grant(form)
        tokens.revoke_all()
        return answer

    tokens.grant = revoke_after_issue  # type: ignore[method-assign]
    try:
        revoked = _evidence(env, *args, code=1)
    finally:
        del tokens.grant
    assert len(tokens.tokens) == issued + 1 and tokens.introspections > introspected
    assert revoked.count("\n") == 1 and "refused the OAuth token" in revoked
    for output in (wrong, expired, revoked):
        assert not any(token in output for token in tokens.tokens)

    store = open_store(load_config())
    try:
        with store.session() as session:
            assert session.scalar(select(func.count()).select_from(Email)) == 0
    finally:
        store.close()
    out = _evidence(env, *args, "--json")  # and with everything right, both arrive
    assert _imported(out) == (2, 0, 0)


def test_sync_runs_an_oauth2_imap_source_and_keeps_no_secret_in_the_file(
    dovecot: Dovecot, tokens: TokenServer, env: Env
) -> None:
    user, _home = _mailbox(dovecot, "syn", env, 1)
    tokens.clients[f"app-{user}"] = Client(mailbox=user, secret=SECRET)
    source = (
        f'[[sync.imap]]\nname = "hosted"\nhost = "127.0.0.1"\nport = {dovecot.port}\n'
        f'user = "{user}"\nauth = "oauth2"\ntoken_url = "{tokens.url}/token"\n'
        f'client_id = "app-{user}"\n'
    )
    env.write_config(source)
    first = _evidence(env, "sync")
    assert "imap hosted: imported 1, duplicates 0, quarantined 0" in first
    assert SECRET not in first and not any(token in first for token in tokens.tokens)
    env.write_config(source + f'client_secret = "{SECRET}"\n')
    refused = _evidence(env, "sync", code=1)
    assert "never kept in the file" in refused and "EVIDENCE_OAUTH_CLIENT_SECRET" in refused
    assert SECRET not in refused
    for value in [SECRET, *tokens.tokens]:
        assert value.encode() not in _store_text(env)
