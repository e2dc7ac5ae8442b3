"""The desk's JSON API (issue #21): every route and its errors, on SQLite and PostgreSQL.

The Flask test client drives the real application (create_app) on a real store; the
exports are run by the same job code the server and `evidence worker` run.
"""

from __future__ import annotations

import hashlib
import io
import json
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pikepdf
import pytest
from flask import Flask
from flask.testing import FlaskClient

from evidence import jobs
from evidence.config import load_config
from evidence.jobs import claim_next, run_job
from evidence.records.users import add_user, create_token, disable_user
from evidence.store.db import Store, open_store
from evidence.web.app import create_app
from evidence.web.settings import ensure_secret_key
from tests.conftest import Cli, Env
from tests.samples import AINO, SAMPLE_CASE, SAMPLE_TOML, load_sample, open_sample_case

ROLES = ("viewer", "agent", "legal", "admin")


def blank_pdf(pages: int = 1) -> bytes:
    pdf = pikepdf.new()
    for _ in range(pages):
        pdf.add_blank_page()
    buffer = io.BytesIO()
    pdf.save(buffer)
    return buffer.getvalue()


@dataclass
class Desk:
    app: Flask
    client: FlaskClient
    store: Store
    tokens: dict[str, str]

    def call(self, method: str, path: str, role: str | None = "legal", **kw: Any) -> Any:
        headers = {"Authorization": f"Bearer {self.tokens[role]}"} if role else {}
        return self.client.open(path, method=method, headers=headers, **kw)

    def case_id(self) -> int:
        rows = self.call("GET", "/api/cases", "viewer").get_json()
        return int(next(r["id"] for r in rows if r["ref"] == SAMPLE_CASE))


def make_desk(env: Env, extra_toml: str = "") -> Iterator[Desk]:
    env.write_config(SAMPLE_TOML + extra_toml)
    config = load_config()
    ensure_secret_key(config)
    store = open_store(config)
    load_sample(store)
    open_sample_case(store)
    tokens = {}
    for role in ROLES:
        add_user(store, role, role=role, password=f"{role}-password-1", language="en")
        tokens[role] = create_token(store, role).token
    app = create_app(config)
    yield Desk(app, app.test_client(), store, tokens)
    app.extensions["evidence_desk"].close()
    store.close()


@pytest.fixture
def desk(env: Env) -> Iterator[Desk]:
    yield from make_desk(env)


PROTECTED = [
    ("GET", f"/api/customers/{AINO}/timeline"),
    ("GET", "/api/cases"),
    ("POST", "/api/cases"),
    ("POST", "/api/cases/1/documents"),
    ("POST", "/api/cases/1/claims"),
    ("POST", "/api/exports"),
    ("GET", "/api/exports/1"),
    ("GET", "/api/exports/1/file"),
    ("POST", "/api/verify"),
]


def test_healthz_needs_no_token_and_every_other_route_does(desk: Desk) -> None:
    ok = desk.client.get("/api/healthz")
    assert ok.status_code == 200 and ok.get_json() == {"status": "ok"}
    for method, path in PROTECTED:
        refused = desk.call(method, path, role=None)
        assert refused.status_code == 401, (method, path)
        assert refused.get_json() == {"error": "give an API token: Authorization: Bearer TOKEN"}
        wrong = desk.client.open(path, method=method, headers={"Authorization": "Bearer evd_x"})
        assert wrong.status_code == 401, (method, path)


def test_a_disabled_users_token_stops_working(desk: Desk) -> None:
    assert desk.call("GET", "/api/cases", "viewer").status_code == 200
    disable_user(desk.store, "viewer")
    assert desk.call("GET", "/api/cases", "viewer").status_code == 401


def test_viewer_reads_but_gets_403_on_every_change(desk: Desk) -> None:
    case_id = desk.case_id()
    for method, path in [
        ("POST", "/api/cases"),
        ("POST", f"/api/cases/{case_id}/documents"),
        ("POST", f"/api/cases/{case_id}/claims"),
        ("POST", "/api/exports"),
    ]:
        for role in ("viewer", "agent"):
            refused = desk.call(method, path, role, json={})
            assert refused.status_code == 403, (method, path, role)
            assert "needs legal" in refused.get_json()["error"]
    assert desk.call("GET", f"/api/customers/{AINO}/timeline", "viewer").status_code == 200


def test_cases_list_and_open_with_each_error(desk: Desk) -> None:
    rows = desk.call("GET", "/api/cases", "viewer").get_json()
    assert rows == [
        {
            "id": rows[0]["id"],
            "ref": SAMPLE_CASE,
            "customer": AINO,
            "authority": "kkv",
            "received": "2026-03-20",
            "deadline": None,
            "status": "open",
            "days_left": None,
        }
    ]
    body = {"ref": "KKV/9/2026", "customer": AINO, "authority": "KKV", "deadline": "2026-04-01"}
    made = desk.call("POST", "/api/cases", json=body)
    assert made.status_code == 201, made.get_json()
    assert made.get_json()["ref"] == "KKV/9/2026" and made.get_json()["deadline"] == "2026-04-01"
    listed = [r["ref"] for r in desk.call("GET", "/api/cases", "viewer").get_json()]
    assert listed[0] == "KKV/9/2026"  # overdue first
    again = desk.call("POST", "/api/cases", json=body)
    assert again.status_code == 409 and "already open" in again.get_json()["error"]
    malformed = desk.call("POST", "/api/cases", data="{", content_type="application/json")
    assert malformed.status_code == 400
    missing = desk.call("POST", "/api/cases", json={"ref": "X/1", "customer": AINO})
    assert missing.status_code == 422 and missing.get_json() == {"error": "authority is required"}
    bad_date = desk.call("POST", "/api/cases", json={**body, "ref": "X/2", "received": "1.1."})
    assert bad_date.status_code == 422 and "YYYY-MM-DD" in bad_date.get_json()["error"]
    nobody = desk.call("POST", "/api/cases", json={**body, "ref": "X/3", "customer": "nobody"})
    assert nobody.status_code == 404 and "no customer 'nobody'" in nobody.get_json()["error"]


def test_timeline_is_what_the_cli_prints(desk: Desk, cli: Cli) -> None:
    got = desk.call("GET", f"/api/customers/{AINO}/timeline?from=2026-03-10&to=2026-03-10")
    assert got.status_code == 200
    printed = json.loads(cli("timeline", AINO, "--from", "2026-03-10", "--to", "2026-03-10",
                             "--json").stdout)  # fmt: skip
    assert got.get_json() == printed and len(printed) > 5
    assert desk.call("GET", "/api/customers/nobody/timeline").status_code == 404
    bad = desk.call("GET", f"/api/customers/{AINO}/timeline?from=yesterday")
    assert bad.status_code == 422


@pytest.fixture
def small_desk(env: Env) -> Iterator[Desk]:
    yield from make_desk(env, "\n[desk]\nmax_upload_mb = 0.05\n")


def test_documents_upload_checks_the_bytes_and_the_size(small_desk: Desk) -> None:
    desk = small_desk
    case_id = desk.case_id()
    pdf = blank_pdf()

    def upload(data: bytes, name: str = "../../etc/kirje.pdf", **form: str) -> Any:
        fields: dict[str, Any] = {"file": (io.BytesIO(data), name), "title": "Vastine", **form}
        return desk.call("POST", f"/api/cases/{case_id}/documents", data=fields)

    made = upload(pdf)
    assert made.status_code == 201, made.get_json()
    assert made.get_json()["sha256"] == hashlib.sha256(pdf).hexdigest()
    assert made.get_json()["filename"] == "kirje.pdf"  # the client's path is never used
    not_pdf = upload(b"%PDF-1.7 but not really", "x.pdf")
    assert not_pdf.status_code == 422 and "damaged PDF" in not_pdf.get_json()["error"]
    renamed = upload(b"MZ\x90\x00", "letter.pdf")
    assert renamed.status_code == 422 and "not a PDF" in renamed.get_json()["error"]
    too_big = upload(pdf + b"\n%" + b"x" * 60_000)
    assert too_big.status_code == 413
    assert too_big.get_json() == {"error": "the file is larger than the upload limit (0 MB)"}
    no_file = desk.call("POST", f"/api/cases/{case_id}/documents", data={"title": "t"})
    assert no_file.status_code == 422
    nowhere = desk.call("POST", "/api/cases/999/documents", data={"file": (io.BytesIO(pdf), "a")})
    assert nowhere.status_code == 404


def test_claims_link_timeline_items(desk: Desk, cli: Cli) -> None:
    case_id = desk.case_id()
    items = [i["id"] for i in desk.call("GET", f"/api/customers/{AINO}/timeline").get_json()
             if i["kind"] in ("email", "call")][:2]  # fmt: skip
    made = desk.call(
        "POST", f"/api/cases/{case_id}/claims", json={"text": "jonotin", "evidence": items}
    )
    assert made.status_code == 201, made.get_json()
    assert made.get_json()["evidence"] == items
    shown = json.loads(cli("case", "show", SAMPLE_CASE, "--json").stdout)
    assert shown["claims"][0]["evidence"] == items
    unknown = desk.call(
        "POST", f"/api/cases/{case_id}/claims", json={"text": "x", "evidence": ["email:99999"]}
    )
    assert unknown.status_code == 422 and "not in customer" in unknown.get_json()["error"]
    not_list = desk.call(
        "POST", f"/api/cases/{case_id}/claims", json={"text": "x", "evidence": "email:1"}
    )
    assert not_list.status_code == 422
    assert desk.call("POST", "/api/cases/999/claims", json={"text": "x"}).status_code == 404


def test_export_job_download_and_verify(desk: Desk, cli: Cli) -> None:
    case_id = desk.case_id()
    bad_lang = desk.call("POST", "/api/exports", json={"case_id": case_id, "lang": "de"})
    assert bad_lang.status_code == 422
    assert desk.call("POST", "/api/exports", json={"customer": "nobody"}).status_code == 404
    assert desk.call("POST", "/api/exports", json={"case_id": 999}).status_code == 404
    assert desk.call("POST", "/api/exports", json={}).status_code == 422
    queued = desk.call("POST", "/api/exports", json={"case_id": case_id, "lang": "en"})
    assert queued.status_code == 202
    job_id = queued.get_json()["id"]
    assert queued.get_json() == {"id": job_id, "status": "queued"}
    early = desk.call("GET", f"/api/exports/{job_id}/file", "viewer")
    assert early.status_code == 409 and "queued" in early.get_json()["error"]
    assert desk.call("GET", "/api/exports/999", "viewer").status_code == 404

    assert claim_next(desk.store) == job_id
    run_job(desk.store, job_id)
    status = desk.call("GET", f"/api/exports/{job_id}", "viewer").get_json()
    assert status["status"] == "done" and status["error"] is None
    assert status["pages"] > 3 and status["progress"] >= 1
    got = desk.call("GET", f"/api/exports/{job_id}/file", "viewer")
    assert got.status_code == 200 and got.mimetype == "application/pdf"
    assert hashlib.sha256(got.data).hexdigest() == status["sha256"]
    got.close()
    recorded = json.loads(cli("exports", "list", "--json").stdout)
    assert recorded[-1]["exported_by"] == "legal (desk)"
    assert recorded[-1]["sha256"] == status["sha256"]

    upload = {"file": (io.BytesIO(got.data), "d.pdf")}
    report = desk.call("POST", "/api/verify", "viewer", data=upload)
    assert report.status_code == 200 and report.get_json()["intact"] is True
    not_dossier = desk.call(
        "POST", "/api/verify", "viewer", data={"file": (io.BytesIO(blank_pdf()), "d.pdf")}
    )
    assert not_dossier.status_code == 200 and not_dossier.get_json()["intact"] is False
    assert desk.call("POST", "/api/verify", "viewer", data={}).status_code == 422

    desk.app.extensions["evidence_desk"].audit.flush()  # readings are written by a thread
    events = json.loads(cli("audit", "--json").stdout)
    seen = {(e["action"], e["actor"]) for e in events}
    for action, who in [
        ("export-queued", "legal"),
        ("export", "legal"),
        ("download", "viewer"),
        ("verify-dossier", "viewer"),
    ]:
        assert (action, f"{who} (desk)") in seen, (action, seen)


def test_errors_are_json_never_a_trace(desk: Desk) -> None:
    missing = desk.call("GET", "/api/nothing-here")
    assert missing.status_code == 404 and set(missing.get_json()) == {"error"}
    wrong_method = desk.call("DELETE", "/api/cases")
    assert wrong_method.status_code == 405 and set(wrong_method.get_json()) == {"error"}
    got = desk.call("GET", "/api/cases", "viewer")
    assert got.headers["X-Content-Type-Options"] == "nosniff"
    assert "frame-ancestors 'none'" in got.headers["Content-Security-Policy"]
    assert "'unsafe-inline'" not in got.headers["Content-Security-Policy"]


def test_an_erasure_deletes_the_desks_dossiers_of_the_customer(desk: Desk, cli: Cli) -> None:
    queued = desk.call("POST", "/api/exports", json={"customer": AINO, "lang": "fi"}).get_json()
    assert claim_next(desk.store) == queued["id"]
    run_job(desk.store, queued["id"])
    path = jobs.job_path(desk.store, queued["id"])
    assert path.is_file()
    cli("case", "close", SAMPLE_CASE, "--reason", "päätös annettu")
    cli("customer", "erase", AINO, "--reason", "pyyntö 1.12.2026", "--yes")
    assert not path.exists()
    status = desk.call("GET", f"/api/exports/{queued['id']}", "viewer").get_json()
    assert status["status"] == "failed"
    assert "content was erased" in status["error"] and "deleted" in status["error"]
    gone = desk.call("GET", f"/api/exports/{queued['id']}/file", "viewer")
    assert gone.status_code == 409


def test_verify_refuses_an_upload_that_is_not_a_pdf(desk: Desk) -> None:
    notes = {"file": (io.BytesIO(b"meeting notes\n"), "notes.txt")}
    refused = desk.call("POST", "/api/verify", "viewer", data=notes)
    assert refused.status_code == 422
    assert refused.get_json() == {
        "error": "notes.txt is not a PDF file (it does not start with %PDF-): "
        "upload the dossier's PDF"
    }


def test_a_wrong_token_says_which_header_and_how_to_make_one(desk: Desk) -> None:
    for header in ("Bearer evd_not-a-token", "Token " + desk.tokens["viewer"]):
        wrong = desk.client.get("/api/cases", headers={"Authorization": header})
        assert wrong.status_code == 401
        assert wrong.get_json() == {
            "error": "the API token was not accepted (unknown, expired, or its user is "
            "disabled): send it as Authorization: Bearer TOKEN, and make a new one with "
            "`evidence token create USER`"
        }
