"""The service layer (issue #20): the operations a second face (the web desk) calls, with no
click in sight, give what the CLI prints: `as_dict()` is the command's `--json`."""

from __future__ import annotations

import datetime as dt
import json
import subprocess
import sys
from pathlib import Path

import pytest

from evidence.config import load_config
from evidence.errors import ErasureRefused
from evidence.service import cases, customers, holds, incidents
from evidence.store.db import Store
from tests.conftest import Cli, Env, run_evidence
from tests.samples import AINO

CASE = "KKV/77/2026"


def _json(cli: Cli, *args: str) -> object:
    return json.loads(cli(*args, "--json").output)


def test_operations_give_what_the_cli_prints(sample_store: Store, cli: Cli, env: Env) -> None:
    config = load_config(env.vars)
    opened = cases.open_case(
        config,
        CASE,
        customer_ref=AINO,
        authority="kkv",
        received=dt.date(2026, 10, 1),
        deadline=dt.date(2026, 10, 15),
    )
    assert (opened.customer, opened.deadline) == (AINO, dt.date(2026, 10, 15))
    claim = cases.add_claim(config, CASE, "waited an hour", ["incident:1"])
    assert claim.evidence == ("incident:1",)
    placed = holds.add_hold(config, CASE, reason="court summons", by="tester")
    assert (placed.customer, placed.case) == (AINO, CASE)

    shown = cases.show_case(config, CASE).as_dict()
    assert shown == _json(cli, "case", "show", CASE)
    assert shown["claims"][0]["evidence"] == ["incident:1"]
    rows = cases.list_cases(config, today=dt.date(2026, 10, 20))
    assert [r.as_dict() for r in rows] == _json(cli, "case", "list", "--today", "2026-10-20")
    assert (rows[0].days_left, rows[0].overdue) == (-5, True)
    assert [h.as_dict() for h in holds.list_holds(config)] == _json(cli, "hold", "list")
    listed = [c.as_dict() for c in customers.list_customers(config)]
    assert listed == _json(cli, "customer", "list")
    views = incidents.list_incidents(config)
    assert [v.as_dict() for v in views] == _json(cli, "incident", "list")
    assert incidents.show_incident(config, 1).as_dict() == _json(cli, "incident", "show", "1")

    # The erasure rule is the operation's, not the command's: refused while held.
    with pytest.raises(ErasureRefused):
        customers.plan_erasure(config, AINO)
    with pytest.raises(ErasureRefused):
        customers.erase_customer(config, AINO, reason="request", by="tester")
    released = holds.release_hold(config, CASE, reason="proceedings ended", by="tester")
    assert [r.releases for r in released] == [placed.id]
    assert cases.close_case(config, CASE, reason="settled", by="tester") == CASE
    plan = customers.plan_erasure(config, AINO)
    done = customers.erase_customer(config, AINO, reason="request", by="tester")
    assert done.erasure is not None and done.emails == plan.emails > 0


@pytest.mark.parametrize("env", ["sqlite"], indirect=True)
def test_the_service_layer_does_not_import_click(env: Env) -> None:
    modules = (
        "cases customers exports holds imports incidents integrity quarantine reading status users"
    )
    code = (
        f"import sys; from evidence.service import {', '.join(modules.split())}; "
        "print('click' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


@pytest.mark.parametrize("env", ["sqlite"], indirect=True)
def test_quarantine_exit_code_comes_from_the_error_class(env: Env, tmp_path: Path) -> None:
    """Exit 3 is carried by errors.InputQuarantined: the report is printed, no error line."""
    notes = tmp_path / "muistiinpanot.txt"
    notes.write_text("Soita Ainolle takaisin huomenna klo 9.\n", encoding="utf-8")
    proc = run_evidence(env, "import", "mail", str(notes), check_code=3)
    assert "quarantined 1" in proc.stdout
    assert "(quarantine #1)" in proc.stderr
    assert "evidence:" not in proc.stderr


def test_sync_and_status_are_operations_with_typed_results(
    sample_store: Store, cli: Cli, env: Env, tmp_path: Path
) -> None:
    from evidence.errors import InputQuarantined
    from evidence.service import status
    from tests.samples import SAMPLE_TOML

    notes = tmp_path / "mail" / "muistiinpanot.txt"
    notes.parent.mkdir()
    notes.write_text("Soita Ainolle takaisin huomenna klo 9.\n", encoding="utf-8")
    env.write_config(f'{SAMPLE_TOML}\n[[sync.mail]]\npath = "{notes.parent}"\n')
    config = load_config(env.vars)
    lines: list[str] = []
    outcome = status.sync(config, log=lines.append)
    assert (outcome.exit_code, outcome.failure) == (3, InputQuarantined)
    assert [(r.kind, r.error) for r in outcome.results] == [("mail", None), ("plans", None)]
    mail = outcome.results[0].report
    assert mail is not None and (mail.imported, mail.quarantined) == (0, 1)
    assert len(lines) == 2 and lines[0].startswith(f"mail {notes.parent}: ")
    with pytest.raises(InputQuarantined):
        outcome.raise_for_exit()

    at = dt.datetime(2026, 12, 1, 12, 0, tzinfo=dt.UTC)
    found = status.store_status(config, now=at)
    assert found.checked_at == at
    assert found.last_sync is not None
    assert (found.last_sync.id, found.last_sync.exit_code) == (outcome.run_id, 3)
    assert found.last_sync.state == "finished"
    assert isinstance(found.last_sync.started_at, dt.datetime)
    assert found.last_sync.started_at.tzinfo is not None
    source = found.sources[0]
    assert (source.kind, source.configured, source.quarantined) == ("mail", True, 1)
    assert isinstance(source.last_synced_at, dt.datetime)
    assert (found.quarantine.total, found.quarantine.by_kind) == (1, {"mail": 1})
    assert found.chain.ok and found.chain.entries > 0 and not found.chain.problems
    shown = _json(cli, "status")
    assert isinstance(shown, dict)
    assert found.as_dict() == {**shown, "checked_at": "2026-12-01T12:00:00Z"}
    assert "error" not in shown["signing_key"]


def test_quarantine_operations_list_show_and_dismiss(
    sample_store: Store, cli: Cli, env: Env, tmp_path: Path
) -> None:
    from evidence.errors import InvalidInput
    from evidence.service import quarantine

    notes = tmp_path / "muistiinpanot.txt"
    body = b"Soita Ainolle takaisin huomenna klo 9.\n"
    notes.write_bytes(body)
    cli("import", "mail", str(notes), code=3)
    config = load_config(env.vars)
    (row,) = quarantine.list_quarantine(config)
    assert (row.kind, row.size, row.dismissed, row.dismissed_at) == ("mail", len(body), False, None)
    assert row.quarantined_at.tzinfo is not None
    assert [r.as_dict() for r in quarantine.list_quarantine(config)] == _json(
        cli, "quarantine", "list"
    )
    shown = quarantine.show_quarantined(config, row.id)
    assert (shown.row, shown.data) == (row, body)
    assert shown.as_dict() == _json(cli, "quarantine", "show", str(row.id))

    gone = quarantine.dismiss(config, row.id, reason="notes, not mail", by="tester")
    assert (gone.dismissed, gone.dismissed_by, gone.dismiss_reason) == (
        True,
        "tester",
        "notes, not mail",
    )
    assert quarantine.list_quarantine(config, only_open=True) == ()
    assert quarantine.list_quarantine(config, kind="mail") == (gone,)
    with pytest.raises(InvalidInput, match="already dismissed"):
        quarantine.dismiss(config, row.id, reason="again", by="tester")


def test_verify_is_logged_and_the_audit_log_is_typed(
    sample_store: Store, cli: Cli, env: Env
) -> None:
    from evidence.service import integrity

    config = load_config(env.vars)
    before = integrity.list_audit(config)
    report = integrity.verify_store(config)
    assert report.intact and report.what == "store" and report.facts["tree_size"] > 0
    after = integrity.list_audit(config)
    assert after[: len(before)] == before
    (logged,) = after[len(before) :]
    assert (logged.action, logged.details) == (
        "verify-store",
        {
            "intact": True,
            "failures": 0,
            "tree_size": report.facts["tree_size"],
            "root": report.facts["root"],
        },
    )
    assert isinstance(logged.at, dt.datetime) and logged.leaf_index is not None
    assert [e.as_dict() for e in after] == _json(cli, "audit")


def test_reading_operations_give_the_timeline_agents_and_report(
    sample_store: Store, cli: Cli, env: Env
) -> None:
    from collections import Counter

    from evidence.service import reading
    from evidence.timeline.history import availability_json, timeline_json

    config = load_config(env.vars)
    day = dt.date(2026, 3, 10)
    with reading.customer_timeline(config, AINO, day, day) as built:
        kinds = Counter(str(item.kind) for item in built.items)
        items = timeline_json(built)
    assert (kinds["email"], kinds["call"], kinds["incident"]) == (6, 3, 1)
    assert items == _json(cli, "timeline", AINO, "--from", "2026-03-10", "--to", "2026-03-10")

    changes = reading.agent_availability(config, day)
    assert changes and changes[0].event is None  # the state at the start, then each change
    assert any(change.paused for change in changes)
    assert [availability_json(c) for c in changes] == _json(
        cli, "agents", "--from", "2026-03-10"
    )

    report = reading.service_report(config, day, threshold=30)
    data = report.json()
    assert data == _json(cli, "report", "service", "--from", "2026-03-10", "--threshold", "30")
    assert data["period"]["calls"]["offered"] == 4  # company-wide: Aino's 3 and one more


def test_desk_users_and_tokens(store: Store, cli: Cli, env: Env) -> None:
    from evidence.records.users import user_for_token
    from evidence.service import users

    config = load_config(env.vars)
    added = users.add_user(config, "laura", role="legal", password="pitkä salasana 1")
    users.add_user(config, "crm", role="viewer", password=None, language="en")
    assert (added.name, added.role, added.has_password, added.disabled) == (
        "laura",
        "legal",
        True,
        False,
    )
    listed = users.list_users(config)
    assert [(u.name, u.language, u.has_password) for u in listed] == [
        ("crm", "en", False),
        ("laura", "fi", True),
    ]
    assert [u.as_dict() for u in listed] == _json(cli, "user", "list")
    made = users.create_token(config, "laura", expires_days=30)
    assert made.expires_at is not None and made.user == "laura"
    assert user_for_token(store, made.token) == listed[1]
    assert users.disable_user(config, "laura").disabled
    assert user_for_token(store, made.token) is None


def test_import_operations_count_what_they_store(store: Store, env: Env, tmp_path: Path) -> None:
    from evidence.errors import InvalidInput
    from evidence.ingest.oauth import OAuthOptions
    from evidence.service import imports
    from tests.samples import SAMPLE

    config = load_config(env.vars)
    mail = sorted((SAMPLE / "mail").glob("*.eml"))
    first = imports.import_mail(config, mail)
    assert (first.imported, first.duplicates, first.quarantined) == (len(mail), 0, 0)
    again = imports.import_mail(config, [SAMPLE / "mail"])
    # The mbox holds two of the .eml messages again and one of its own.
    assert (again.imported, again.duplicates) == (1, len(mail) + 2)

    recordings = imports.import_recordings(config, SAMPLE / "recordings")
    assert recordings.imported == 1 and len(recordings.unmatched) == 1
    assert recordings.as_dict(unmatched=True)["unmatched_recordings"] == recordings.unmatched
    calls = imports.import_calls(config, SAMPLE / "pbx/Master.csv", "asterisk-cdr")
    assert calls.imported > 0 and calls.empty is None
    assert imports.import_calls(config, SAMPLE / "pbx/Master.csv", "asterisk-cdr").imported == 0

    assert imports.oauth_for("password", OAuthOptions()) is None
    given = OAuthOptions(provider="google", service_account=tmp_path / "key.json")
    assert imports.oauth_for("oauth2", given) is given
    with pytest.raises(InvalidInput, match="need --auth oauth2"):
        imports.oauth_for("password", given)


def test_the_desks_store_and_user_go_through_the_same_operations(sample_store: Store) -> None:
    """The desk passes the Store it keeps open and its signed-in user: the incident is kept in
    the audit log under that user; the CLI's way (no ``audit_by``) adds no such event."""
    from evidence.service import integrity

    def incident_events() -> list[tuple[str, str]]:
        rows = integrity.list_audit(sample_store)
        return [(r.actor, r.subject) for r in rows if r.action == "incident"]

    before = incident_events()
    start = dt.datetime(2026, 3, 10, 9, 30, tzinfo=dt.UTC)
    quiet = incidents.add_incident(
        sample_store, title="cli", start=start, end=None, channels=[], note=None, logged_by="cli"
    )
    assert incident_events() == before
    logged = incidents.add_incident(
        sample_store,
        audit_by="agent (desk)",
        title="desk",
        start=start,
        end=None,
        channels=["email"],
        note=None,
        logged_by="agent (desk)",
    )
    incidents.end_incident(sample_store, logged.number, audit_by="agent (desk)", by="agent")
    assert incident_events() == [
        *before,
        ("agent (desk)", f"incident add #{logged.number}"),
        ("agent (desk)", f"incident end #{logged.number}"),
    ]
    assert quiet.number != logged.number
    placed = holds.add_hold(sample_store, AINO, reason="court summons", by="legal (desk)")
    assert [h.id for h in holds.active_holds(sample_store, AINO)] == [placed.id]
    assert [h.held_by for h in holds.active_holds(sample_store, AINO)] == ["legal (desk)"]
    assert holds.active_holds(sample_store, "no such customer") == ()


def test_export_is_one_operation_whose_result_is_what_it_recorded(
    sample_store: Store, cli: Cli, env: Env, tmp_path: Path
) -> None:
    import hashlib

    import pikepdf

    from evidence.errors import InvalidArguments
    from evidence.service import exports
    from evidence.timeutil import read_user_time

    out = tmp_path / "dossier.pdf"
    # A request that makes no sense cannot be made (the command's usage error, exit 2).
    with pytest.raises(InvalidArguments, match="give a customer REF or --case REFERENCE"):
        exports.ExportRequest(output=out)
    with pytest.raises(InvalidArguments, match="--to 2026-10-01 is before --from 2026-10-02"):
        exports.ExportRequest(
            output=out,
            customer_ref=AINO,
            date_from=dt.date(2026, 10, 2),
            date_to=dt.date(2026, 10, 1),
        )

    config = load_config(env.vars)
    typed = read_user_time("1.11.2026 12.00")  # local time: placed in the store's zone
    request = exports.ExportRequest(
        output=out, customer_ref=AINO, generated_at=typed, by="Laura Lakimies"
    )
    done = exports.export(config, request)
    [recorded] = exports.list_exports(config)
    written = hashlib.sha256(out.read_bytes()).hexdigest()
    assert written == recorded.sha256 == done.sha256
    assert done.record == recorded
    assert (recorded.size, recorded.output) == (out.stat().st_size, str(out.resolve()))
    assert (recorded.exported_by, recorded.customer, recorded.format) == (
        "Laura Lakimies",
        AINO,
        "pdf",
    )
    assert recorded.arguments["generated_at"] == "1.11.2026 12.00"  # as it was typed
    with pikepdf.open(out) as pdf:
        created = str(pdf.docinfo["/CreationDate"])
    assert created == typed.at(config.zone).strftime("D:%Y%m%d%H%M%SZ")
    assert done.summary() == (
        f"wrote {out} ({done.pages} pages, {done.items} items, SHA-256 {written})\n"
        f"proved against checkpoint #{recorded.checkpoint_id} (root {recorded.checkpoint_root})"
    )
    assert done.pages > 1 and done.items > 0 and not done.signed and done.warnings() == ()

    # `export --json` prints the operation's result.
    shown = _json(cli, "export", AINO, "-o", str(out), "--force", "--generated-at", typed.text)
    assert isinstance(shown, dict)
    assert shown.keys() == done.as_dict().keys()
    assert shown["record"] == exports.list_exports(config)[1].as_dict()
    assert shown["sha256"] == hashlib.sha256(out.read_bytes()).hexdigest()
    assert (shown["output"], shown["pages"], shown["placeholders"]) == (str(out), done.pages, [])
