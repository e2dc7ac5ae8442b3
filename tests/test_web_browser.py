"""The desk in a real browser (issue #21): Playwright driving Debian's chromium against the
real server (`evidence serve`, and `evidence worker` on PostgreSQL) on 127.0.0.1.

The legal user's story on the scenario data, a viewer, an agent, a hostile subject, and
axe-core's accessibility check on the main pages. A screenshot of every page is saved in
EVIDENCE_SCREENSHOTS (default: the test's tmp folder).
"""

from __future__ import annotations

import base64
import datetime as dt
import json
import os
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from evidence.config import load_config
from evidence.ingest.mail import import_mail
from evidence.records.cases import open_case
from evidence.records.users import add_user, create_token
from evidence.store.db import open_store
from evidence.web.settings import ensure_secret_key
from tests.conftest import COMPANY_TOML, SCENARIO, Env, need_shared
from tests.samples import MATTI, load_scenario

pytestmark = pytest.mark.slow

CHROMIUM = Path("/usr/bin/chromium")
CASE = "ESAVI/31337/2026"
AXE = Path(__file__).parent / "vendor" / "axe.min.js"
XSS_SUBJECT = "<img src=x onerror=alert(1)>"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Server:
    url: str
    tokens: dict[str, str]
    shots: Path


def _wait_up(url: str, proc: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"the server stopped: {log.read_text(errors='replace')}")
        try:
            with urllib.request.urlopen(f"{url}/api/healthz", timeout=2) as answer:
                if answer.status == 200:
                    return
        except OSError:
            time.sleep(0.3)
    raise AssertionError(f"the server did not come up: {log.read_text(errors='replace')}")


@pytest.fixture
def server(env: Env, tmp_path: Path) -> Iterator[Server]:
    need_shared()
    if not CHROMIUM.exists():
        pytest.fail("/usr/bin/chromium is missing: run scripts/system-deps")
    env.write_config(COMPANY_TOML)
    config = load_config()
    ensure_secret_key(config)
    store = open_store(config)
    load_scenario(store, SCENARIO)
    open_case(
        store, CASE, customer_ref=MATTI, authority="lvv",
        received=dt.date(2026, 10, 2), deadline=dt.date(2026, 10, 30),
    )  # fmt: skip
    hostile = tmp_path / "xss.eml"
    hostile.write_bytes(
        b"From: Matti Virtanen <matti.virtanen@example.net>\r\n"
        b"To: asiakaspalvelu@aurora-energia.example\r\n"
        + f"Subject: {XSS_SUBJECT}\r\n".encode()
        + b"Date: Tue, 29 Sep 2026 09:00:00 +0300\r\nMessage-ID: <xss@example.net>\r\n\r\nhei\r\n"
    )
    import_mail(store, [hostile])
    tokens = {}
    for role in ("viewer", "agent", "legal"):
        add_user(store, role, role=role, password=f"{role}-password-1", language="en")
        tokens[role] = create_token(store, role).token
    store.close()
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    environ = {**os.environ, **env.vars}
    evidence = [sys.executable, "-m", "evidence"]
    log = tmp_path / "server.log"
    logs = [log.open("wb"), (tmp_path / "worker.log").open("wb")]
    procs = [
        subprocess.Popen(
            [*evidence, "serve", "--port", str(port), "--workers", "2"],
            env=environ, stdout=logs[0], stderr=subprocess.STDOUT,
        )
    ]  # fmt: skip
    if env.backend == "postgresql":
        procs.append(
            subprocess.Popen(
                [*evidence, "worker"], env=environ, stdout=logs[1], stderr=subprocess.STDOUT
            )
        )
    shots = Path(os.environ.get("EVIDENCE_SCREENSHOTS") or tmp_path / "shots") / env.backend
    shots.mkdir(parents=True, exist_ok=True)
    try:
        _wait_up(url, procs[0], log)
        yield Server(url, tokens, shots)
    finally:
        for proc in procs:
            proc.terminate()
        for proc in procs:
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        for handle in logs:
            handle.close()


@pytest.fixture
def browser() -> Iterator[Any]:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        launched = p.chromium.launch(executable_path=str(CHROMIUM), args=["--no-sandbox"])
        yield launched
        launched.close()


def new_page(browser: Any, server: Server, user: str | None) -> Any:
    # bypass_csp: only so that the test can inject axe-core; the desk's own pages run
    # under the CSP (test_web_pages checks the header).
    context = browser.new_context(accept_downloads=True, bypass_csp=True)
    page = context.new_page()
    page.on("dialog", lambda dialog: (_ for _ in ()).throw(AssertionError(dialog.message)))
    if user:
        page.goto(f"{server.url}/signin")
        page.fill("input[name=username]", user)
        page.fill("input[name=password]", f"{user}-password-1")
        page.click("button[type=submit]")
        page.wait_for_url(f"{server.url}/")
    return page


def shoot(page: Any, server: Server, name: str) -> None:
    page.screenshot(path=str(server.shots / f"{name}.png"), full_page=True)


def serious_axe_findings(page: Any) -> list[str]:
    page.add_script_tag(content=AXE.read_text(encoding="utf-8"))
    result = page.evaluate("async () => await axe.run(document)")
    return [
        f"{v['id']} ({v['impact']}): {v['help']} — {[n['target'] for n in v['nodes']][:3]}"
        for v in result["violations"]
        if v["impact"] in ("serious", "critical")
    ]


def test_legal_users_story(server: Server, browser: Any, tmp_path: Path) -> None:
    page = new_page(browser, server, "legal")
    shoot(page, server, "cases")
    page.click(f"text={CASE}")
    page.wait_for_selector("#dropzone")
    shoot(page, server, "case")

    # Drop the regulator's letter on the drop zone, as a person drags it from their files.
    letter = SCENARIO / "letters" / "ESAVI-31337-2026-selvityspyynto.pdf"
    data = base64.b64encode(letter.read_bytes()).decode("ascii")
    page.evaluate(
        """([data, name]) => {
            const bytes = Uint8Array.from(atob(data), c => c.charCodeAt(0));
            const transfer = new DataTransfer();
            transfer.items.add(new File([bytes], name, {type: "application/pdf"}));
            const zone = document.getElementById("dropzone");
            zone.dispatchEvent(new DragEvent("dragover", {dataTransfer: transfer, bubbles: true}));
            zone.dispatchEvent(new DragEvent("drop", {dataTransfer: transfer, bubbles: true}));
        }""",
        [data, letter.name],
    )
    page.wait_for_selector("#documents li code.sha")
    assert letter.name in page.inner_text("#documents")

    # A claim linked to two timeline items.
    boxes = page.locator("input[name=evidence]")
    linked = [boxes.nth(0).get_attribute("value"), boxes.nth(1).get_attribute("value")]
    boxes.nth(0).check()
    boxes.nth(1).check()
    page.fill("#claim-text", "Jonotin puoli tuntia eikä kukaan vastannut")
    page.click("#claim-form button[type=submit]")
    page.wait_for_selector("text=Jonotin puoli tuntia eikä kukaan vastannut")
    claims = page.inner_text("#claims")
    assert all(item in claims for item in linked), (linked, claims)

    # Export, wait for the job (htmx polls its row), download.
    page.select_option("#export-lang", "en")
    page.click("#exports button[type=submit]")
    page.wait_for_selector("#exports .status-done", timeout=240_000)
    shoot(page, server, "case-exported")
    with page.expect_download() as waiting:
        page.click("#exports a[download]")
    saved = tmp_path / "dossier.pdf"
    waiting.value.save_as(saved)
    verified = subprocess.run(
        [sys.executable, "-m", "evidence", "verify", str(saved)],
        capture_output=True, text=True, env={**os.environ}, timeout=120,
    )  # fmt: skip
    assert verified.returncode == 0, verified.stdout + verified.stderr
    assert "INTACT" in verified.stdout

    # The case's audit trail names the user for each step.
    page.reload()
    trail = page.inner_text("#audit")
    for action in ("document-upload", "claim", "export-queued", "export", "download"):
        assert f"{action}\tlegal (desk)" in trail, (action, trail)

    # Verify the downloaded dossier on the desk too.
    page.click("text=Verify")
    page.set_input_files("#verify-file", str(saved))
    page.click("main button[type=submit]")
    page.wait_for_selector("#verdict")
    assert page.inner_text("#verdict") == "INTACT"
    shoot(page, server, "verify")


def test_viewer_has_no_upload_and_the_api_refuses(server: Server, browser: Any) -> None:
    page = new_page(browser, server, "viewer")
    page.click(f"text={CASE}")
    page.wait_for_selector("#documents")
    assert page.locator("input[type=file]").count() == 0
    assert page.locator("#claim-form").count() == 0
    shoot(page, server, "case-viewer")
    request = urllib.request.Request(
        f"{server.url}/api/cases",
        data=json.dumps({"ref": "X/1", "customer": MATTI, "authority": "lvv"}).encode(),
        headers={
            "Authorization": f"Bearer {server.tokens['viewer']}",
            "Content-Type": "application/json",
        },
        method="POST",
    )
    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(request, timeout=10)
    assert refused.value.code == 403
    assert "error" in json.loads(refused.value.read())


def test_agent_logs_an_incident_seen_in_the_timeline(server: Server, browser: Any) -> None:
    page = new_page(browser, server, "agent")
    page.click("text=Incidents")
    page.fill("#add-title", "Puhelinvaihde ei vastaa")
    page.fill("#add-start", "2026-09-29T08:00")
    page.fill("#add-end", "2026-09-29T09:00")
    page.check("#add-phone")
    page.click("form:has(#add-title) button[type=submit]")
    page.wait_for_selector("text=Puhelinvaihde ei vastaa")
    shoot(page, server, "incidents")
    page.goto(f"{server.url}/customers/{MATTI}?kind=incident")
    assert "Puhelinvaihde ei vastaa" in page.inner_text("table.timeline")


def test_hostile_subject_is_text_and_pages_pass_axe(server: Server, browser: Any) -> None:
    page = new_page(browser, server, "viewer")
    page.goto(f"{server.url}/customers/{MATTI}?kind=email")
    assert XSS_SUBJECT in page.inner_text("table.timeline")
    assert page.locator("table.timeline img[src=x]").count() == 0
    # Its message is fetched when its row is opened (htmx), as text.
    row = page.locator("table.timeline tr", has_text=XSS_SUBJECT)
    row.locator("summary").click()
    row.locator(".body pre.mail").wait_for()
    assert row.locator(".body").inner_text().strip() == "hei"
    shoot(page, server, "customer-timeline")
    page.goto(f"{server.url}/customers?q=virtanen")
    shoot(page, server, "customers")
    findings: dict[str, list[str]] = {}
    signin = browser.new_context(bypass_csp=True).new_page()
    signin.goto(f"{server.url}/signin")
    shoot(signin, server, "signin")
    findings["signin"] = serious_axe_findings(signin)
    for name, path in [
        ("cases", "/"),
        ("case", "/cases/1"),
        ("customers", "/customers?q=virtanen"),
        ("customer", f"/customers/{MATTI}"),
        ("incidents", "/incidents"),
        ("verify", "/verify"),
    ]:
        page.goto(f"{server.url}{path}")
        findings[name] = serious_axe_findings(page)
    assert {k: v for k, v in findings.items() if v} == {}
