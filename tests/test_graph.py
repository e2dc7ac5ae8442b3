"""Microsoft Graph import against a local Graph (tests/graph_server.py) and token server.

Every import runs ``evidence`` in a fresh process, as a user or cron does.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import unquote

import pytest
from sqlalchemy import func, select

from evidence.config import load_config
from evidence.store.db import Store, open_store
from evidence.store.models import Email, GraphFolderState
from tests.conftest import Env, pdf_text
from tests.graph_server import GraphServer, running_graph
from tests.oauth_server import Client, TokenServer, running_token_server

SECRET = "graph-s3cr3t-CANARY-91c2"
MAILBOX = "asiakaspalvelu@aurora-energia.example"


@pytest.fixture
def tokens() -> Iterator[TokenServer]:
    with running_token_server() as server:
        server.clients["app"] = Client(mailbox=MAILBOX, secret=SECRET)
        yield server


@pytest.fixture
def graph(tokens: TokenServer) -> Iterator[GraphServer]:
    with running_graph(tokens) as server:
        server.folder(MAILBOX, "AAMkInbox", "Inbox")
        server.folder(MAILBOX, "AAMkSent", "Sent Items")
        yield server


def _message(n: int) -> bytes:
    return (
        f"From: Matti <matti@example.net>\r\nTo: {MAILBOX}\r\nSubject: graph {n}\r\n"
        f"Message-ID: <g{n}@example.net>\r\nDate: Mon, 28 Sep 2026 10:{n:02d}:00 +0300\r\n"
        f"Content-Type: text/plain; charset=utf-8\r\n\r\nHei {n}\r\n"
    ).encode()


def _evidence(env: Env, *args: str, code: int = 0) -> str:
    environ = {k: v for k, v in os.environ.items() if not k.startswith("EVIDENCE_")}
    proc = subprocess.run(
        [sys.executable, "-m", "evidence", *args],
        env={**environ, **env.vars, "EVIDENCE_OAUTH_CLIENT_SECRET": SECRET},
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == code, (args, proc.returncode, proc.stdout, proc.stderr)
    return proc.stdout + proc.stderr


def _import(env: Env, graph: GraphServer, tokens: TokenServer, *extra: str, code: int = 0) -> str:
    args = ["import", "graph", "--tenant", "aurora-energia.example", "--client-id", "app"]
    args += ["--token-url", f"{tokens.url}/token", "--graph-url", graph.url]
    return _evidence(env, *args, "--mailbox", MAILBOX, *extra, code=code)


def _counts(output: str) -> tuple[int, int, int]:
    report = json.loads(output[: output.rindex("}") + 1])
    return report["imported"], report["duplicates"], report["quarantined"]


def _emails(env: Env) -> list[tuple[str | None, str]]:
    store = open_store(load_config())
    try:
        with store.session() as session:
            return sorted(
                (s, src) for s, src in session.execute(select(Email.subject, Email.source))
            )
    finally:
        store.close()


def _store_text(env: Env) -> bytes:
    if env.backend == "sqlite":
        return b"".join(p.read_bytes() for p in env.home.glob("evidence.db*"))
    url = env.database_url.replace("+psycopg", "")
    return subprocess.run(["pg_dump", "-d", url], capture_output=True, check=True).stdout


def test_graph_pages_deltas_removals_and_throttling(
    env: Env, graph: GraphServer, tokens: TokenServer, tmp_path: Path
) -> None:
    for n in range(1, 8):
        graph.add(MAILBOX, "AAMkInbox", f"in{n}", _message(n))
    graph.add(MAILBOX, "AAMkSent", "sent1", _message(20))
    graph.throttle = 2  # the first two requests are answered 429, Retry-After: 1
    folders = ["--folder", "inbox", "--folder", "Sent Items"]
    first = _import(env, graph, tokens, *folders, "--json")
    assert _counts(first) == (8, 0, 0)
    assert graph.throttle == 0
    assert sum("$skiptoken=" in unquote(r) for r in graph.requests) == 2  # Inbox: 3 + 3 + 1
    assert graph.value_requests == 8

    # Nothing new: only the delta links are asked, no message is fetched.
    before = len(graph.requests)
    assert _counts(_import(env, graph, tokens, *folders, "--json")) == (0, 0, 0)
    asked = graph.requests[before:]
    assert [r for r in asked if "/delta" in r] and all(
        "$deltatoken=" in unquote(r) for r in asked if "/delta" in r
    )
    assert graph.value_requests == 8

    # One new message, one read (Graph lists it again), one deleted (@removed).
    graph.add(MAILBOX, "AAMkInbox", "in8", _message(8))
    graph.touch("AAMkInbox", "in2")
    graph.remove(MAILBOX, "AAMkInbox", "in3")
    assert _counts(_import(env, graph, tokens, *folders, "--json")) == (1, 0, 0)
    assert graph.value_requests == 9  # only the new one was fetched
    emails = _emails(env)
    assert [s for s, _ in emails] == sorted(f"graph {n}" for n in (*range(1, 9), 20))
    assert all(src.startswith(f"graph://{MAILBOX}/") for _, src in emails)
    assert (f"graph {1}", f"graph://{MAILBOX}/Inbox (id in1)") in emails

    # Reconciliation: Graph's totalItemCount beside what the store holds from each folder.
    status = json.loads(_evidence(env, "status", "--json"))
    folders_seen = {r["folder"]: r for r in status["reconciliation"]}
    assert (folders_seen["Inbox"]["server_count"], folders_seen["Inbox"]["in_store"]) == (7, 8)
    assert folders_seen["Inbox"]["mailbox"] == f"graph://{MAILBOX}/Inbox"
    assert (folders_seen["Sent Items"]["server_count"], folders_seen["Sent Items"]["in_store"]) == (
        1,
        1,
    )
    text = _evidence(env, "status")
    assert f"mailbox graph://{MAILBOX}/Inbox: server 7, store 8 at " in text
    assert "1 more in the store than on the server (deleted there?)" in text

    # The dossier says, next to each hash, that the message came through Graph.
    _evidence(env, "customer", "add", "100234", "--name", "Matti", "--email", "matti@example.net")
    out = tmp_path / "d.pdf"
    _evidence(env, "export", "100234", "-o", str(out), "--lang", "en")
    flat = " ".join(pdf_text(out).split())
    note = (
        "via Microsoft Graph: the MIME message was rebuilt by Microsoft, not the bytes as received"
    )
    assert flat.count(note) == 9
    assert "folder Inbox: 7 on the server, 8 in the store, counted " in flat
    assert "1 more in the store than on the server" in flat
    fi = tmp_path / "fi.pdf"
    _evidence(env, "export", "100234", "-o", str(fi), "--lang", "fi")
    assert "Microsoft Graphin kautta" in " ".join(pdf_text(fi).split())

    # Neither the secret nor a token is in any output or in the store.
    kept = _store_text(env)
    for value in [SECRET, *tokens.tokens]:
        assert value.encode() not in kept
        assert value not in first + text


def test_a_dropped_connection_then_the_next_run_resumes_without_duplicates(
    env: Env, graph: GraphServer, tokens: TokenServer
) -> None:
    for n in range(1, 8):
        graph.add(MAILBOX, "AAMkInbox", f"in{n}", _message(n))
    graph.drop_after = 4  # the fifth message's connection is closed without an answer
    failed = _import(env, graph, tokens, code=1)
    assert failed.count("\n") == 1, failed
    assert "connection to Microsoft Graph was lost" in failed
    assert "the 4 messages stored before it stay" in failed
    assert len(_emails(env)) == 4

    before = len(graph.requests)
    fetched = graph.value_requests
    again = _import(env, graph, tokens, "--json")
    assert _counts(again) == (3, 0, 0)
    # It went on at the page it was on (the second), not from the start, and fetched
    # only the messages it did not hold.
    first_delta = next(r for r in graph.requests[before:] if "/delta" in r)
    assert "$skiptoken=3" in unquote(first_delta)
    assert graph.value_requests - fetched == 3
    assert [s for s, _ in _emails(env)] == [f"graph {n}" for n in range(1, 8)]
    store = open_store(load_config())
    try:
        with store.session() as session:
            state = session.scalars(select(GraphFolderState)).one()
            assert (state.held, state.server_count, state.next_link) == (7, 7, None)
            assert state.delta_link and "$deltatoken=" in unquote(state.delta_link)
            assert session.scalar(select(func.count()).select_from(Email)) == 7
    finally:
        store.close()


def test_sync_runs_a_graph_source_and_refusals_are_one_line(
    env: Env, graph: GraphServer, tokens: TokenServer
) -> None:
    graph.add(MAILBOX, "AAMkInbox", "in1", _message(1))
    source = (
        f'[[sync.graph]]\nname = "m365"\nmailbox = "{MAILBOX}"\ntenant = "aurora"\n'
        f'client_id = "app"\ntoken_url = "{tokens.url}/token"\ngraph_url = "{graph.url}"\n'
    )
    env.write_config(source)
    assert "graph m365: imported 1, duplicates 0, quarantined 0" in _evidence(env, "sync")
    assert "graph m365: imported 0, duplicates 0, quarantined 0" in _evidence(env, "sync")

    tokens.clients["app"].secret = "another"
    refused = _import(env, graph, tokens, code=1)
    assert refused.count("\n") == 1 and "invalid_client" in refused and SECRET not in refused
    tokens.clients["app"].secret = SECRET
    missing = _import(env, graph, tokens, "--folder", "Arkisto", code=1)
    assert missing.strip() == f"error: no folder 'Arkisto' in the mailbox {MAILBOX}" or (
        "no folder 'Arkisto'" in missing and missing.count("\n") == 1
    )


@pytest.mark.parametrize("status", [429, 503])
def test_retry_after_is_obeyed(
    store: Store, graph: GraphServer, tokens: TokenServer, status: int
) -> None:
    """Each 429 or 503 answer waits the Retry-After it names, then asks again."""
    from evidence.ingest.graph import graph_tokens, import_graph
    from evidence.ingest.oauth import OAuthOptions

    graph.add(MAILBOX, "AAMkInbox", "in1", _message(1))
    graph.throttle, graph.throttle_status, graph.retry_after = 3, status, "7"
    waited: list[float] = []
    options = OAuthOptions("microsoft", "t", "app", token_url=f"{tokens.url}/token")
    tokens_ = graph_tokens(options, {"EVIDENCE_OAUTH_CLIENT_SECRET": SECRET})
    report = import_graph(store, MAILBOX, [], tokens_, graph_url=graph.url, sleep=waited.append)
    assert (report.imported, waited) == (1, [7.0, 7.0, 7.0])
