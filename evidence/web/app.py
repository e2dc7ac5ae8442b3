"""The desk's Flask application: sign-in, sessions, CSRF, security headers and errors.

Routes live in :mod:`evidence.web.api` (JSON, bearer tokens) and :mod:`evidence.web.pages`
(HTML for people). Both call the service layer (``evidence.service.cases``,
``evidence.service.export_jobs``, ...) as the CLI does, handing it the store this process
holds open and the signed-in user; nothing here holds a rule of the store.
"""

from __future__ import annotations

import atexit
import hmac
import logging
import secrets
import threading
import time
from collections.abc import Callable
from typing import Any, TypeVar

from flask import Flask, Response, abort, g, jsonify, request, session
from flask.sessions import SecureCookieSessionInterface
from werkzeug.exceptions import HTTPException

from evidence.config import Config, DeskSettings, load_config
from evidence.errors import Conflict, ContentErased, EvidenceError, NotFound
from evidence.jobs import JobNotReady
from evidence.records.users import Forbidden, SigninThrottled, UserInfo
from evidence.resources import templates_dir
from evidence.service import users
from evidence.store import audit
from evidence.store.db import Store, open_store, sqlite_path
from evidence.timeutil import utcnow
from evidence.web.settings import desk_settings, secret_key

F = TypeVar("F", bound=Callable[..., Any])

CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
)


class _SessionInterface(SecureCookieSessionInterface):
    """Session cookies: HttpOnly, SameSite=Lax, and Secure when the request came over HTTPS
    (or always / never, as ``[desk] secure_cookies`` says)."""

    def get_cookie_secure(self, app: Flask) -> bool:
        configured = app.config.get("EVIDENCE_SECURE_COOKIES")
        if configured is not None:
            return bool(configured)
        return request.is_secure


class AuditWriter:
    """The audit events of reading (sign-ins, page views, downloads), written by a thread of
    this process, in order, each with the time it happened: a page never waits for the
    writer lock, which an export holds while it gathers. :meth:`flush` writes what is
    pending now (before the audit trail is shown, and when the process ends)."""

    def __init__(self, desk: Desk) -> None:
        self.desk = desk
        self.pending: list[dict[str, Any]] = []
        self.lock = threading.Lock()
        self.writing = threading.Lock()
        self.wake = threading.Event()
        self.thread: threading.Thread | None = None

    def add(self, **event: Any) -> None:
        with self.lock:
            self.pending.append({**event, "at": utcnow()})
            if self.thread is None or not self.thread.is_alive():
                self.thread = threading.Thread(target=self._run, name="desk-audit", daemon=True)
                self.thread.start()
        self.wake.set()

    def _run(self) -> None:
        while True:
            self.wake.wait()
            self.wake.clear()
            try:
                self.flush()
            except Exception:  # kept pending; tried again at the next event or flush
                logging.getLogger("evidence.web").exception("audit events not written yet")
                time.sleep(1)

    def flush(self) -> None:
        with self.writing:
            with self.lock:
                batch, self.pending = self.pending, []
            if not batch:
                return
            try:
                with self.desk.store.writing() as session:
                    for event in batch:
                        audit.record(session, **event)
            except BaseException:
                with self.lock:
                    self.pending[:0] = batch
                raise


class Desk:
    """What the app holds for its process: the configuration, the store (for writing), a
    store for reading (on SQLite its reads do not wait for the writer lock) and the audit
    writer."""

    def __init__(self, config: Config, settings: DeskSettings) -> None:
        self.config = config
        self.settings = settings
        self._store: Store | None = None
        self._reader: Store | None = None
        self._lock = threading.Lock()
        self.audit = AuditWriter(self)
        atexit.register(self.audit.flush)

    @property
    def store(self) -> Store:
        # Opened in the process that serves (after gunicorn forks), once.
        with self._lock:
            if self._store is None:
                self._store = open_store(self.config)
            return self._store

    @property
    def reader(self) -> Store:
        if sqlite_path(self.config.database_url) is None:
            return self.store  # PostgreSQL: readers never wait for writers
        with self._lock:
            if self._reader is None:
                self._reader = open_store(self.config, reading=True)
            return self._reader

    def close(self) -> None:
        self.audit.flush()
        atexit.unregister(self.audit.flush)
        for opened in (self._store, self._reader):
            if opened is not None:
                opened.close()
        self._store = self._reader = None


def desk() -> Desk:
    from flask import current_app

    found: Desk = current_app.extensions["evidence_desk"]
    return found


def store() -> Store:
    """The store, for operations that write."""
    return desk().store


def reader() -> Store:
    """The store, for reading only."""
    return desk().reader


def audit_later(
    *,
    action: str,
    subject: str,
    details: dict[str, Any] | None = None,
    output_sha256: str | None = None,
) -> None:
    """Keep a reading in the audit log, naming the signed-in user (see :class:`AuditWriter`)."""
    desk().audit.add(
        action=action,
        subject=subject,
        details=details,
        output_sha256=output_sha256,
        actor=actor(),
    )


def current_user() -> UserInfo | None:
    user: UserInfo | None = g.get("user")
    return user


def actor() -> str:
    """The signed-in user as the audit log and the record of exports name them."""
    user = current_user()
    assert user is not None
    return f"{user.name} (desk)"


def csrf_token() -> str:
    token = session.get("csrf")
    if not isinstance(token, str):
        token = secrets.token_urlsafe(32)
        session["csrf"] = token
    return token


def _is_api() -> bool:
    return request.path.startswith("/api/")


def _status_of(exc: EvidenceError) -> int:
    if isinstance(exc, Forbidden):
        return 403
    if isinstance(exc, NotFound):
        return 404
    if isinstance(exc, Conflict | JobNotReady | ContentErased):
        return 409
    if isinstance(exc, SigninThrottled):
        return 429
    return 422


def create_app(config: Config | None = None) -> Flask:
    config = config or load_config()
    settings = desk_settings(config)
    app = Flask(
        "evidence.web",
        template_folder=str(templates_dir() / "web"),
        static_folder="static",
        static_url_path="/static",
    )
    app.config.update(
        SECRET_KEY=secret_key(config),
        SESSION_COOKIE_HTTPONLY=True,
        SESSION_COOKIE_SAMESITE="Lax",
        SESSION_COOKIE_NAME="evidence_desk",
        EVIDENCE_SECURE_COOKIES=settings.secure_cookies,
        MAX_CONTENT_LENGTH=settings.max_upload_bytes,
        JSON_SORT_KEYS=False,
    )
    app.session_interface = _SessionInterface()
    app.extensions["evidence_desk"] = Desk(config, settings)
    app.json.sort_keys = False  # type: ignore[attr-defined]

    app.before_request(_authenticate)
    app.before_request(_check_csrf)
    app.after_request(_security_headers)
    app.register_error_handler(EvidenceError, _evidence_error)
    app.register_error_handler(HTTPException, _http_error)
    app.register_error_handler(Exception, _unexpected)

    from evidence.web import api, pages

    app.register_blueprint(api.blueprint)
    app.register_blueprint(pages.blueprint)
    pages.install(app)
    return app


def _authenticate() -> None:
    """Who calls: an API token on /api/, else the trusted proxy's header, else the session."""
    g.user = None
    if _is_api():
        header = request.headers.get("Authorization", "")
        if header.startswith("Bearer "):
            g.user = users.signed_in_user(reader(), token=header[len("Bearer ") :].strip())
        return
    settings = desk().settings
    proxied = request.headers.get(settings.user_header)
    if proxied and request.remote_addr in settings.trusted_proxies:
        g.user = users.signed_in_user(reader(), name=proxied.strip())
        g.via_proxy = True
        return
    uid = session.get("uid")
    if isinstance(uid, int):
        g.user = users.signed_in_user(reader(), user_id=uid)
        if g.user is None:
            session.clear()


def _check_csrf() -> None:
    if _is_api() or request.method in ("GET", "HEAD", "OPTIONS"):
        return
    given = request.form.get("csrf_token") or request.headers.get("X-CSRF-Token") or ""
    expected = session.get("csrf")
    if not isinstance(expected, str) or not hmac.compare_digest(given, expected):
        abort(400, description="the form's security token is missing or old: reload the page")


def _security_headers(response: Response) -> Response:
    response.headers["Content-Security-Policy"] = CSP
    response.headers["X-Content-Type-Options"] = "nosniff"
    response.headers["X-Frame-Options"] = "DENY"
    response.headers["Referrer-Policy"] = "same-origin"
    if current_user() is not None:
        response.headers["Cache-Control"] = "no-store"
    return response


def _evidence_error(exc: EvidenceError) -> Any:
    return _error(_status_of(exc), str(exc))


def _http_error(exc: HTTPException) -> Any:
    code = exc.code or 500
    message = exc.description or exc.name
    if code == 413:
        limit = desk().settings.max_upload_bytes // (1024 * 1024)
        message = f"the file is larger than the upload limit ({limit} MB)"
    return _error(code, message)


def _unexpected(exc: Exception) -> Any:
    from flask import current_app

    current_app.logger.exception("unexpected error")
    return _error(500, "the desk hit an unexpected error; it is in the server's log")


def _error(code: int, message: str) -> Any:
    if _is_api():
        return jsonify({"error": message}), code
    from evidence.web.pages import error_page

    return error_page(code, message)
