"""Complete and true on any set-up: mail from hosted providers, configuration set later, a
store made before receive times were derived, and customers whose identifiers change.

Each test drives the installed command in fresh processes, as a user does, from a
bare `evidence init` unless it says otherwise, on SQLite and PostgreSQL.
"""

from __future__ import annotations

import datetime as dt
import email.utils
import json
import re
from pathlib import Path

import pytest
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError

from tests.conftest import COMPANY_TOML, SCENARIO, Env, need_shared, pdf_text, run_evidence

MATTI = "100234"
MAIL = "matti.virtanen@example.net"
PHONE = "040 123 4567"
M02 = "<20260928100109.7781@mail.example.net>"
M05 = "<a7f3.20260928143715@aurora-energia.example>"
# m01..m06 received by the company (m05 is its own, placed at its Date), in UTC.
RECEIVED = [
    "2026-09-28T06:14:25Z",
    "2026-09-28T07:21:37Z",
    "2026-09-28T08:46:03Z",
    "2026-09-28T10:52:42Z",
    "2026-09-28T11:37:15Z",
    "2026-09-29T05:03:55Z",
]
_RECEIVED_BLOCK = re.compile(rb"^Received:.*?(?=^\S)", re.MULTILINE | re.DOTALL)


def _google(when: dt.datetime) -> bytes:
    """The lines Google Workspace puts on a message it delivers into the mailbox."""
    local = when.astimezone(dt.timezone(dt.timedelta(hours=-7)))
    stamp = email.utils.format_datetime(local)
    earlier = email.utils.format_datetime(local - dt.timedelta(seconds=1))
    return (
        "Received: from mail-ej1-f41.google.com by mail-ej1-f41.google.com with SMTP id "
        f"u10csp2345678ejb;\n        {stamp} (PDT)\n"
        "X-Received: by 2002:a17:907:1c0a:b0:a9a:4d2:1234 with SMTP id "
        f"ga10mr1234567ejc.5;\n        {stamp} (PDT)\n"
        "Received: from mail.example.net (mail.example.net. [192.0.2.25])\n"
        "        by mx.google.com with ESMTPS id a1si123456ejb.123.2026.09.28\n"
        "        for <asiakaspalvelu@aurora-energia.example>\n"
        "        (version=TLS1_3 cipher=TLS_AES_256_GCM_SHA384 bits=256/256);\n"
        f"        {earlier} (PDT)\n"
    ).encode()


def _microsoft(when: dt.datetime) -> bytes:
    """The lines Microsoft 365 (Exchange Online) puts on a message in the mailbox."""
    stamp = email.utils.format_datetime(when.astimezone(dt.UTC)).replace("-0000", "+0000")
    day, rest = stamp.rsplit(" 2026 ", 1)
    return (
        "Received: from AM0PR07MB1234.eurprd07.prod.outlook.com ([fe80::1234:5678]) by\n"
        " AM0PR07MB1234.eurprd07.prod.outlook.com ([fe80::1234:5678%5]) with mapi id\n"
        f" 15.20.8989.012; {stamp}\n"
        "Received: from DB8PR09CA0012.eurprd09.prod.outlook.com (2603:10a6:10:a0::25)\n"
        " by AM0PR07MB1234.eurprd07.prod.outlook.com (2603:10a6:208:1a::14) with\n"
        " Microsoft SMTP Server (version=TLS1_2,\n"
        " cipher=TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384) id 15.20.8989.12; "
        f"{day}\n 2026 {rest}\n"
    ).encode()


def _hosted_copy(tmp_path: Path, provider: str) -> list[str]:
    """The scenario's .eml files as a hosted mailbox delivers them: the company's own
    server's Received: line replaced by the provider's, at the same instant."""
    out = tmp_path / provider
    out.mkdir()
    for path in sorted((SCENARIO / "mail").glob("*.eml")):
        raw = path.read_bytes()
        match = _RECEIVED_BLOCK.search(raw)
        if match is not None:
            line = match.group(0).replace(b"\r\n", b"\n")
            when = email.utils.parsedate_to_datetime(line.rpartition(b";")[2].strip().decode())
            lines = (_google if provider == "google" else _microsoft)(when)
            if b"\r\n" in raw:
                lines = lines.replace(b"\n", b"\r\n")
            raw = raw[: match.start()] + lines + raw[match.end() :]
        (out / path.name).write_bytes(raw)
    return sorted(str(p) for p in out.glob("*.eml"))


def _customer(env: Env) -> None:
    run_evidence(
        env, "customer", "add", MATTI, "--name", "Matti Virtanen", "--email", MAIL, "--phone", PHONE
    )


def _emails(env: Env, *period: str) -> list[dict]:
    items = json.loads(run_evidence(env, "timeline", MATTI, *period, "--json").stdout)
    return [i for i in items if i["kind"] == "email"]


@pytest.mark.parametrize("configured", [False, True], ids=["bare", "company-domain"])
@pytest.mark.parametrize("provider", ["google", "microsoft"])
def test_hosted_mail_is_placed_at_its_receive_time(
    env: Env, tmp_path: Path, provider: str, configured: bool
) -> None:
    """Mail delivered by the provider: no Received: line is by the company's own domain,
    configured or not; it is placed at the provider's receive time, never at import."""
    need_shared()
    run_evidence(env, "init", *(["--mail-domain", "aurora-energia.example"] if configured else []))
    _customer(env)
    run_evidence(env, "import", "mail", *_hosted_copy(tmp_path, provider))
    # Not at the import time: in the period the regulator asks about, at the provider's time.
    emails = _emails(env, "--from", "2026-09-28", "--to", "2026-09-30")
    assert [e["at"] for e in emails] == RECEIVED
    by_id = {e["message_id"]: e for e in emails}
    host = "mail-ej1-f41.google.com" if provider == "google" else "am0pr07mb1234"
    assert by_id[M02]["received_source"] == "received-header"
    assert by_id[M02]["received_by"].startswith(host)
    assert by_id[M05]["received_source"] == ("own-date" if configured else "date-header")
    run_evidence(
        env,
        "case",
        "open",
        "ESAVI/31337/2026",
        "--customer",
        MATTI,
        "--authority",
        "lvv",
        "--period",
        "2026-09-28..2026-09-30",
    )
    out = tmp_path / "dossier.pdf"
    run_evidence(env, "export", "--case", "ESAVI/31337/2026", "-o", str(out), "--lang", "en")
    flat = " ".join(pdf_text(out).split())
    assert "Emails: 6," in flat
    assert "Received 28 Sept 2026 10:21:37 (UTC+3) (source: the topmost Received header" in flat


def test_receiving_hosts_choose_the_line(env: Env, tmp_path: Path) -> None:
    need_shared()
    run_evidence(env, "init")
    _customer(env)
    run_evidence(env, "import", "mail", *_hosted_copy(tmp_path, "google"))
    # The topmost line by default; the one by a configured receiving host when set.
    assert _emails(env)[1]["at"] == "2026-09-28T07:21:37Z"
    env.write_config('[mail]\nreceiving_hosts = ["mx.google.com"]\n')
    m02 = _emails(env)[1]
    assert (m02["at"], m02["received_by"]) == ("2026-09-28T07:21:36Z", "mx.google.com")
    env.write_config('[mail]\nreceiving_hosts = ["mx*.example.invalid"]\n')
    m02 = _emails(env)[1]
    assert (m02["at"], m02["received_by"]) == ("2026-09-28T07:21:37Z", "mail-ej1-f41.google.com")


def test_mail_domains_set_later_rederive_every_email(env: Env, tmp_path: Path) -> None:
    need_shared()
    bare = run_evidence(env, "init")
    assert "no company mail domain is set" in bare.stderr
    _customer(env)
    imported = run_evidence(env, "import", "mail", str(SCENARIO / "mail/m05-vastaus.eml"))
    assert "note: no company mail domain is set" in imported.stdout
    as_json = run_evidence(env, "import", "mail", str(SCENARIO / "mail/m05-vastaus.eml"), "--json")
    assert "no company mail domain is set" in json.loads(as_json.stdout)["notes"][0]
    status = json.loads(run_evidence(env, "status", "--json").stdout)
    assert status["mail"]["domains"] == [] and status["mail"]["note"]
    [m05] = _emails(env)
    assert (m05["direction"], m05["received_source"]) == ("outbound", "date-header")

    # `init --mail-domain` on the existing store is applied, not silently ignored.
    later = run_evidence(env, "init", "--mail-domain", "Aurora-Energia.example")
    assert "mail domains now aurora-energia.example" in later.stdout
    assert "no company mail domain" not in later.stderr
    assert 'mail_domains = ["aurora-energia.example"]' in (env.home / "evidence.toml").read_text()
    [m05] = _emails(env)
    assert (m05["direction"], m05["received_source"]) == ("outbound", "own-date")
    status = json.loads(run_evidence(env, "status", "--json").stdout)
    assert status["mail"]["domains"] == ["aurora-energia.example"]
    assert status["mail"]["note"] is None
    # Again with the same domain: nothing to change; the time zone is never changed.
    again = run_evidence(env, "init", "--mail-domain", "aurora-energia.example")
    assert "mail domains now" not in again.stdout
    refused = run_evidence(env, "init", "--timezone", "Europe/Stockholm", check_code=1)
    assert "time zone is Europe/Helsinki and stays so" in refused.stderr


def test_store_made_before_receive_times_were_derived(env: Env, tmp_path: Path) -> None:
    """A store at revision 0009 of a company with its mail domain configured, holding
    Microsoft 365 mail imported the old way (placed at its import time: no Received: line
    was by the company's own domain), is upgraded by `evidence init`: its emails are
    placed at their receive time, nothing it held is changed, and it verifies."""
    need_shared()
    from alembic import command

    from evidence.config import load_config
    from evidence.store.db import Store, alembic_config, make_engine
    from tests.old_store import import_the_old_way

    env.write_config(COMPANY_TOML)
    config = load_config(env.vars)
    command.downgrade(alembic_config(config.database_url), "0009")

    def sources() -> list[tuple[str, str]]:
        engine = make_engine(config.database_url)
        try:
            with engine.connect() as conn:
                rows = conn.execute(text("SELECT message_id, received_source FROM emails"))
                return sorted((str(m), str(s)) for m, s in rows)
        finally:
            engine.dispose()

    store = Store(config, make_engine(config.database_url))
    try:
        import_the_old_way(store, [Path(p) for p in _hosted_copy(tmp_path, "microsoft")])
    finally:
        store.close()
    before = sources()
    assert {s for _, s in before} == {"import-time", "own-date"}

    run_evidence(env, "init")
    _customer(env)
    assert [e["at"] for e in _emails(env)] == RECEIVED
    assert sources() == before  # the records themselves are never rewritten
    assert run_evidence(env, "verify").stdout.splitlines()[-1] == "INTACT: every check passed"


# --- customers whose identifiers change --------------------------------------------------


def test_a_number_that_moved_to_someone_else(env: Env, tmp_path: Path) -> None:
    need_shared()
    run_evidence(env, "init")
    _customer(env)
    run_evidence(
        env, "import", "calls", str(SCENARIO / "pbx/Master.csv"), "--format", "asterisk-cdr"
    )
    calls = [i for i in json.loads(run_evidence(env, "timeline", MATTI, "--json").stdout)]
    assert len([c for c in calls if c["kind"] == "call"]) == 7

    # From 1 October the number is someone else's: the 25 October call is theirs, not Matti's.
    moved = run_evidence(
        env,
        "customer",
        "update",
        MATTI,
        "--remove-phone",
        "+358 40 1234567",
        "--from",
        "2026-10-01",
        "--reason",
        "number moved to another subscriber",
        "--by",
        "Kaisa",
    )
    assert "version #" in moved.stdout
    run_evidence(env, "customer", "add", "100777", "--name", "Uusi Haltija")
    run_evidence(
        env,
        "customer",
        "update",
        "100777",
        "--add-phone",
        PHONE,
        "--from",
        "1.10.2026",
        "--reason",
        "new subscriber of the number",
    )
    matti = [i for i in json.loads(run_evidence(env, "timeline", MATTI, "--json").stdout)]
    other = [i for i in json.loads(run_evidence(env, "timeline", "100777", "--json").stdout)]
    assert [c["at"][:10] for c in matti if c["kind"] == "call"] == ["2026-09-28"] * 6
    assert [c["at"] for c in other if c["kind"] == "call"] == ["2026-10-25T01:30:12Z"]

    shown = json.loads(run_evidence(env, "customer", "show", MATTI, "--json").stdout)
    [phone] = [i for i in shown["identifiers"] if i["kind"] == "phone"]
    assert phone["periods"] == [{"from": None, "until": "2026-09-30T21:00:00Z"}]
    assert shown["changes"][0]["reason"] == "number moved to another subscriber"
    assert shown["changes"][0]["by"] == "Kaisa"
    listed = json.loads(run_evidence(env, "customer", "list", "--json").stdout)
    assert {c["ref"]: c["identifiers"] for c in listed} == {
        MATTI: [MAIL],
        "100777": ["+358401234567"],
    }

    # The dossier proves which identifiers selected its records, and why they changed.
    out = tmp_path / "matti.pdf"
    run_evidence(env, "export", MATTI, "-o", str(out), "--lang", "en")
    flat = " ".join(pdf_text(out).split())
    assert "+358401234567: until 1 Oct 2026 00:00:00 (UTC+3)" in flat
    assert "removed +358401234567" in flat and "number moved to another subscriber" in flat
    assert "03.30.12" not in flat  # the moved number's later call is not his

    # Nothing to remove, or nothing at all: refused in one line.
    refused = run_evidence(
        env, "customer", "update", MATTI, "--remove-phone", PHONE, "--from", "2026-11-01",
        "--reason", "again", check_code=1,
    )  # fmt: skip
    assert "is not customer 100234's" in refused.stderr
    run_evidence(
        env, "customer", "update", MATTI, "--from", "2026-11-01", "--reason", "x", check_code=1
    )


def test_customer_versions_are_append_only_and_chained(env: Env) -> None:
    run_evidence(env, "init")
    _customer(env)
    run_evidence(
        env, "customer", "update", MATTI, "--add-email", "matti@uusi.example", "--from",
        "2026-11-01 12:00", "--reason", "new address given in the complaint",
    )  # fmt: skip
    from evidence.config import load_config
    from evidence.store.db import open_store

    store = open_store(load_config(env.vars))
    try:
        for statement in (
            "UPDATE customer_changes SET reason = 'x'",
            "DELETE FROM customer_change_identifiers",
        ):
            with pytest.raises(DBAPIError, match="append-only"):
                with store.engine.begin() as conn:
                    conn.execute(text(statement))
    finally:
        store.close()
    assert run_evidence(env, "verify").stdout.splitlines()[-1] == "INTACT: every check passed"
