"""The desk's pages through the Flask test client: sign-in, throttling, sessions, CSRF, roles,
languages, hostile mail shown as text, the trusted proxy's user header. Both databases."""

from __future__ import annotations

import hashlib
import io
import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from flask.testing import FlaskClient

from tests.conftest import Env
from tests.test_web_api import Desk, blank_pdf, make_desk

STATIC = Path(__file__).resolve().parents[1] / "evidence" / "web" / "static"


@pytest.fixture
def desk(env: Env) -> Iterator[Desk]:
    yield from make_desk(env, '\n[desk]\ntrusted_proxies = ["10.0.0.5"]\n')


def csrf(client: FlaskClient, path: str = "/signin") -> str:
    page = client.get(path).get_data(as_text=True)
    found = re.search(r'name="csrf_token" value="([^"]+)"', page)
    assert found, page
    return found.group(1)


def sign_in(client: FlaskClient, name: str) -> None:
    token = csrf(client)
    done = client.post(
        "/signin", data={"username": name, "password": f"{name}-password-1", "csrf_token": token}
    )
    assert done.status_code == 302, done.get_data(as_text=True)


def test_sign_in_sets_a_safe_session_cookie_and_is_audited(desk: Desk) -> None:
    client = desk.client
    assert client.get("/").status_code == 302  # to the sign-in page
    token = csrf(client)
    done = client.post(
        "/signin", data={"username": "legal", "password": "legal-password-1", "csrf_token": token}
    )
    assert done.status_code == 302 and done.headers["Location"] == "/"
    cookie = done.headers["Set-Cookie"]
    assert "HttpOnly" in cookie and "SameSite=Lax" in cookie and "Secure" not in cookie
    page = client.get("/").get_data(as_text=True)
    assert "KKV/1234/2026" in page
    from evidence.store.audit import list_events

    desk.app.extensions["evidence_desk"].audit.flush()  # readings are written by a thread
    with desk.store.session() as session:
        assert ("sign-in", "legal (desk)") in {(e.action, e.actor) for e, _ in list_events(session)}


def test_secure_cookie_over_https(desk: Desk) -> None:
    client = desk.client
    page = client.get("/signin", base_url="https://desk.example")
    assert "Secure" in page.headers["Set-Cookie"]


def test_a_post_without_the_csrf_token_is_refused(desk: Desk) -> None:
    client = desk.client
    refused = client.post("/signin", data={"username": "legal", "password": "legal-password-1"})
    assert refused.status_code == 400
    assert "security token" in refused.get_data(as_text=True)
    sign_in(client, "legal")
    case_id = desk.case_id()
    claim = client.post(f"/cases/{case_id}/claims", data={"text": "x"})
    assert claim.status_code == 400


def test_sign_in_is_throttled_after_repeated_failures(desk: Desk) -> None:
    client = desk.client
    for _ in range(5):
        wrong = client.post(
            "/signin",
            data={"username": "legal", "password": "guess", "csrf_token": csrf(client)},
        )
        assert wrong.status_code == 401
        assert "Väärä käyttäjätunnus tai salasana." in wrong.get_data(
            as_text=True
        )  # no user yet: fi
    right = client.post(
        "/signin",
        data={"username": "legal", "password": "legal-password-1", "csrf_token": csrf(client)},
    )
    assert right.status_code == 429
    assert "Yritä uudelleen 15 minuutin kuluttua." in right.get_data(as_text=True)
    # Another user is not locked out by someone guessing laura's password.
    sign_in(client, "viewer")


def test_viewer_sees_no_upload_control_and_is_refused(desk: Desk) -> None:
    client = desk.client
    sign_in(client, "viewer")
    case_id = desk.case_id()
    page = client.get(f"/cases/{case_id}").get_data(as_text=True)
    assert 'type="file"' not in page and "claim-form" not in page
    refused = client.post(
        f"/cases/{case_id}/documents",
        data={"csrf_token": csrf(client, "/"), "file": (io.BytesIO(blank_pdf()), "a.pdf")},
    )
    assert refused.status_code == 403


def test_legal_user_uploads_claims_and_sees_the_audit_trail(desk: Desk) -> None:
    client = desk.client
    sign_in(client, "legal")
    case_id = desk.case_id()
    page = client.get(f"/cases/{case_id}").get_data(as_text=True)
    assert 'type="file"' in page and 'id="dropzone"' in page
    items = re.findall(r'name="evidence" value="([^"]+)"', page)
    token = csrf(client, "/")
    pdf = blank_pdf(2)
    up = client.post(
        f"/cases/{case_id}/documents",
        data={"csrf_token": token, "title": "Vastine", "file": (io.BytesIO(pdf), "v.pdf")},
    )
    assert up.status_code == 302
    claimed = client.post(
        f"/cases/{case_id}/claims",
        data={"csrf_token": token, "text": "odotin puoli tuntia", "evidence": items[:2]},
    )
    assert claimed.status_code == 302
    page = client.get(f"/cases/{case_id}").get_data(as_text=True)
    assert hashlib.sha256(pdf).hexdigest() in page
    assert "odotin puoli tuntia" in page and all(f"<code>{i}</code>" in page for i in items[:2])
    for action in ("document-upload", "claim", "timeline-view"):
        assert f"<td>{action}</td><td>legal (desk)</td>" in page
    bad = client.post(
        f"/cases/{case_id}/documents",
        data={"csrf_token": token, "title": "x", "file": (io.BytesIO(b"<html>"), "x.pdf")},
    )
    assert bad.status_code == 422 and "not a PDF" in bad.get_data(as_text=True)


def test_timeline_filters_and_pages(desk: Desk) -> None:
    client = desk.client
    sign_in(client, "viewer")
    calls = client.get("/customers/200517?kind=call").get_data(as_text=True)
    assert "<td>call</td>" in calls and "<td>email</td>" not in calls
    none = client.get("/customers/200517?from=2030-01-01").get_data(as_text=True)
    assert "Nothing in this period." in none
    found = client.get("/customers?q=laaksonen").get_data(as_text=True)
    assert "/customers/200517" in found
    by_number = client.get("/customers?q=0507654321").get_data(as_text=True)
    assert "/customers/200517" in by_number


def test_a_hostile_subject_is_shown_as_text(desk: Desk, tmp_path: Path) -> None:
    from evidence.ingest.mail import import_mail

    mail = tmp_path / "xss.eml"
    mail.write_bytes(
        b"From: Aino Laaksonen <aino.laaksonen@example.com>\r\n"
        b"To: asiakaspalvelu@pohjolanvesi.example\r\n"
        b"Subject: <img src=x onerror=alert(1)>\r\n"
        b"Date: Tue, 10 Mar 2026 09:00:00 +0200\r\n"
        b"Message-ID: <xss@example.com>\r\n"
        b"Content-Type: text/html; charset=utf-8\r\n\r\n"
        b'<p>hei</p><script>alert(2)</script><img src="https://tracker.example/p.png">\r\n'
    )
    import_mail(desk.store, [mail])
    client = desk.client
    sign_in(client, "viewer")
    page = client.get("/customers/200517").get_data(as_text=True)
    assert "&lt;img src=x onerror=alert(1)&gt;" in page
    assert "<img src=x" not in page
    row = page[page.index("&lt;img src=x onerror=alert(1)&gt;") :]
    email = re.findall(r'hx-get="(/customers/200517/emails/email:\d+)"', row)[0]
    body = client.get(email).get_data(as_text=True)
    assert "<p>hei</p>" in body
    assert "<script" not in body and "alert(2)" not in body
    assert "tracker.example" not in body  # remote content is never loaded
    assert client.get("/customers/200517/emails/email:99999").status_code == 404


def test_each_user_reads_the_desk_in_their_language(desk: Desk) -> None:
    client = desk.client
    sign_in(client, "legal")
    assert "Open cases" in client.get("/").get_data(as_text=True)
    token = csrf(client, "/")
    client.post("/language", data={"csrf_token": token, "language": "fi"})
    assert "Avoimet asiat" in client.get("/").get_data(as_text=True)
    client.post("/language", data={"csrf_token": token, "language": "sv"})
    assert "Öppna ärenden" in client.get("/").get_data(as_text=True)


def test_agent_logs_an_incident_that_appears_in_the_timeline(desk: Desk) -> None:
    client = desk.client
    sign_in(client, "agent")
    token = csrf(client, "/incidents")
    done = client.post(
        "/incidents",
        data={
            "csrf_token": token,
            "action": "add",
            "title": "Sähköpostipalvelin jumissa",
            "start": "2026-03-10T09:30",
            "end": "2026-03-10T10:00",
            "channel": "email",
        },
    )
    assert done.status_code == 302
    assert "Sähköpostipalvelin jumissa" in client.get("/incidents").get_data(as_text=True)
    timeline = client.get("/customers/200517?kind=incident").get_data(as_text=True)
    assert "Sähköpostipalvelin jumissa" in timeline
    client.post("/signout", data={"csrf_token": token})
    sign_in(client, "viewer")
    refused = client.post(
        "/incidents", data={"csrf_token": csrf(client, "/"), "action": "start", "title": "x"}
    )
    assert refused.status_code == 403


def test_single_sign_on_header_only_from_a_trusted_proxy(desk: Desk) -> None:
    client = desk.client
    trusted = client.get(
        "/", headers={"X-Forwarded-User": "legal"}, environ_base={"REMOTE_ADDR": "10.0.0.5"}
    )
    assert trusted.status_code == 200 and "KKV/1234/2026" in trusted.get_data(as_text=True)
    untrusted = client.get(
        "/", headers={"X-Forwarded-User": "legal"}, environ_base={"REMOTE_ADDR": "10.0.0.6"}
    )
    assert untrusted.status_code == 302


def test_vendored_htmx_is_the_pinned_file() -> None:
    text = (STATIC / "VENDORED.md").read_text(encoding="utf-8")
    digest = hashlib.sha256((STATIC / "htmx.min.js").read_bytes()).hexdigest()
    assert f"| 2.0.4 | 0BSD | {digest} |" in text


def test_legal_user_places_a_hold_and_closes_the_case(desk: Desk) -> None:
    client = desk.client
    sign_in(client, "legal")
    case_id = desk.case_id()
    token = csrf(client, "/")
    held = client.post(f"/cases/{case_id}/hold", data={"csrf_token": token, "reason": "riita"})
    assert held.status_code == 302
    page = client.get(f"/cases/{case_id}").get_data(as_text=True)
    assert "riita — legal (desk) (KKV/1234/2026)" in page
    empty = client.post(f"/cases/{case_id}/close", data={"csrf_token": token, "reason": " "})
    assert empty.status_code == 422
    closed = client.post(f"/cases/{case_id}/close", data={"csrf_token": token, "reason": "ok"})
    assert closed.status_code == 302
    assert "KKV/1234/2026" not in client.get("/").get_data(as_text=True)  # open cases only
    rows = desk.call("GET", "/api/cases", "viewer").get_json()
    assert rows[0]["status"] == "closed"


def test_the_timeline_names_a_calls_outcome_as_the_dossier_does(desk: Desk) -> None:
    from evidence.domain import outcome_label
    from evidence.timeline.history import customer_timeline

    with desk.store.session() as session:
        items = customer_timeline(session, desk.store.config, "200517").items
        stored = {i.record.outcome for i in items if i.kind == "call"}
    labels = {outcome_label(o) for o in stored}
    assert labels - stored, stored  # some outcome reads otherwise in words
    sign_in(desk.client, "viewer")  # in English
    page = desk.client.get("/customers/200517?kind=call").get_data(as_text=True)
    shown = set(re.findall(r'<span class="subject">(.+?) · ', page))
    assert shown == labels


def test_the_timeline_names_the_service_state_in_the_readers_language(desk: Desk) -> None:
    from evidence.domain import service_state_label
    from evidence.render.i18n import translations
    from evidence.timeline.history import customer_timeline

    with desk.store.session() as session:
        items = customer_timeline(session, desk.store.config, "200517").items
        stored = {i.service_state for i in items if i.kind == "call"}
    assert {"normal", "incident"} <= stored, stored
    client = desk.client
    sign_in(client, "legal")
    token = csrf(client, "/")
    for language in ("en", "fi"):
        client.post("/language", data={"csrf_token": token, "language": language})
        page = client.get("/customers/200517?kind=call").get_data(as_text=True)
        shown = set(re.findall(r"<td>([^<>]*)</td>\s*</tr>", page))
        gettext = translations(language).gettext
        assert shown == {service_state_label(s, gettext) for s in stored}, language
    assert {"normaali palvelu", "häiriön aikana"} <= shown  # the Finnish of the last round
