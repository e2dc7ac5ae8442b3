"""`evidence user add/list/disable` and `evidence token create` (issue #21), as a user runs
them (fresh processes), on both databases."""

from __future__ import annotations

import json
import os
import subprocess
import sys

from evidence.config import load_config
from evidence.records.users import user_for_token
from evidence.store.db import open_store
from tests.conftest import Env


def evidence(
    env: Env, *args: str, stdin: str = "", code: int = 0
) -> subprocess.CompletedProcess[str]:
    done = subprocess.run(
        [sys.executable, "-m", "evidence", *args],
        input=stdin,
        env={**os.environ, **env.vars},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == code, (args, done.returncode, done.stdout, done.stderr)
    return done


def test_users_and_tokens_from_the_command_line(env: Env) -> None:
    added = evidence(env, "user", "add", "laura", "--role", "legal", "--password-stdin",
                     stdin="pitka-salasana-1\n")  # fmt: skip
    assert added.stdout == "user laura added (legal)\n"
    short = evidence(env, "user", "add", "ville", "--role", "viewer", "--password-stdin",
                     stdin="lyhyt\n", code=1)  # fmt: skip
    assert short.stderr == "evidence: a password needs at least 10 characters\n"
    again = evidence(env, "user", "add", "laura", "--role", "admin", "--password-stdin",
                     stdin="pitka-salasana-2\n", code=1)  # fmt: skip
    assert "user laura exists already" in again.stderr
    bad_role = evidence(env, "user", "add", "x", "--role", "boss", code=2)
    assert "'boss' is not one of 'viewer', 'agent', 'legal', 'admin'" in bad_role.stderr
    proxy_only = evidence(env, "user", "add", "sso", "--role", "viewer")  # no terminal, no stdin
    assert proxy_only.stdout == "user sso added (viewer)\n"
    assert proxy_only.stderr == (  # not silently proxy-only
        "note: sso has no password (none was given, and no terminal to ask on): they sign in "
        "only through the trusted proxy ([desk] user_header); to sign in with a password, add "
        "the user with --password-stdin\n"
    )
    assert added.stderr == ""

    listed = json.loads(evidence(env, "user", "list", "--json").stdout)
    assert [(u["name"], u["role"], u["password"], u["disabled"]) for u in listed] == [
        ("laura", "legal", True, False),
        ("sso", "viewer", False, False),
    ]
    made = json.loads(evidence(env, "token", "create", "laura", "--expires", "30", "--json").stdout)
    assert made["token"].startswith("evd_") and made["user"] == "laura" and made["expires_at"]
    store = open_store(load_config())
    try:
        found = user_for_token(store, made["token"])
        assert found is not None and found.name == "laura"
        assert evidence(env, "user", "disable", "laura").stdout == "user laura disabled\n"
        assert user_for_token(store, made["token"]) is None
    finally:
        store.close()
    assert "laura\tlegal\tfi\tdisabled" in evidence(env, "user", "list").stdout
    nobody = evidence(env, "token", "create", "nobody", code=1)
    assert "no desk user 'nobody'" in nobody.stderr
