"""The desk's JSON API: bearer tokens (``evidence token create``), the same library as the CLI.

Errors are ``{"error": "..."}`` with 400 (a request that cannot be read: a body that is not
JSON), 401 (no or bad token), 403 (role), 404, 409 (conflict, or an export not done yet), 413
(upload too large) or 422 (every refused or missing value: a field, a date, an upload that is
not a PDF); never a stack trace.
"""

from __future__ import annotations

import datetime as dt
import functools
from collections.abc import Callable
from typing import Any, TypeVar

from flask import Blueprint, Response, abort, jsonify, request, send_file

from evidence.errors import InvalidInput
from evidence.records.users import Forbidden
from evidence.service import cases, export_jobs, integrity, reading
from evidence.service.result import plain
from evidence.web.app import actor, audit_later, current_user, reader, store

F = TypeVar("F", bound=Callable[..., Any])
blueprint = Blueprint("api", __name__, url_prefix="/api")


_NO_TOKEN = "give an API token: Authorization: Bearer TOKEN"
_NOT_ACCEPTED = (
    "the API token was not accepted (unknown, expired, or its user is disabled): send it as "
    "Authorization: Bearer TOKEN, and make a new one with `evidence token create USER`"
)


def _token_given() -> bool:
    return bool(request.headers.get("Authorization", "").strip())


def needs(role: str) -> Callable[[F], F]:
    """A route for signed-in callers (bearer token) whose role allows ``role``."""

    def decorate(func: F) -> F:
        @functools.wraps(func)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            user = current_user()
            if user is None:
                abort(401, description=_NOT_ACCEPTED if _token_given() else _NO_TOKEN)
            if not user.may(role):
                raise Forbidden(f"your role ({user.role}) may not do this; it needs {role}")
            return func(*args, **kwargs)

        return wrapper  # type: ignore[return-value]

    return decorate


def _body() -> dict[str, Any]:
    data = request.get_json(silent=True)
    if not isinstance(data, dict):
        abort(400, description="send a JSON object (Content-Type: application/json)")
    return data


def _text(data: dict[str, Any], key: str, *, required: bool = True) -> str | None:
    value = data.get(key)
    if value is None:
        if required:
            raise InvalidInput(f"{key} is required")
        return None
    if not isinstance(value, str):
        raise InvalidInput(f"{key} must be a string")
    return value


def _date(value: Any, key: str) -> dt.date | None:
    if value in (None, ""):
        return None
    if not isinstance(value, str):
        raise InvalidInput(f"{key} must be a date, YYYY-MM-DD")
    try:
        return dt.date.fromisoformat(value)
    except ValueError as exc:
        raise InvalidInput(f"{key} must be a date, YYYY-MM-DD (not {value!r})") from exc


def _upload(field: str = "file") -> tuple[bytes, str]:
    upload = request.files.get(field)
    if upload is None:
        raise InvalidInput(f"send the PDF as the multipart field {field!r}")
    return upload.read(), upload.filename or "document.pdf"


@blueprint.get("/healthz")
def healthz() -> Any:
    return jsonify({"status": "ok"})


@blueprint.get("/customers/<ref>/timeline")
@needs("viewer")
def timeline(ref: str) -> Any:
    from evidence.timeline.history import timeline_json

    date_from = _date(request.args.get("from"), "from")
    date_to = _date(request.args.get("to"), "to")
    with reading.customer_timeline(reader(), ref, date_from, date_to) as built:
        items = timeline_json(built)
    audit_later(
        action="timeline-view",
        subject=f"customer {ref}",
        details={"from": date_from, "to": date_to, "via": "api"},
    )
    return jsonify(items)


def _case_json(case: cases.CaseRow) -> dict[str, Any]:
    """A case as the API gives it: the keys of the desk's first release (``case list
    --json`` names some of them otherwise: reference, authority_name, ...)."""
    return {
        "id": case.id,
        "ref": case.reference,
        "customer": case.customer,
        "authority": case.authority,
        "received": plain(case.received),
        "deadline": plain(case.deadline),
        "status": case.status,
        "days_left": case.days_left,
    }


@blueprint.get("/cases")
@needs("viewer")
def case_list() -> Any:
    return jsonify([_case_json(c) for c in cases.list_cases(reader())])


@blueprint.post("/cases")
@needs("legal")
def case_open() -> Any:
    data = _body()
    reference = _text(data, "ref")
    customer = _text(data, "customer")
    authority = _text(data, "authority")
    assert reference is not None and customer is not None and authority is not None
    opened = cases.open_case(
        store(),
        reference,
        customer_ref=customer,
        authority=authority,
        received=_date(data.get("received"), "received"),
        deadline=_date(data.get("deadline"), "deadline"),
        by=actor(),
    )
    return jsonify(_case_json(opened)), 201


@blueprint.post("/cases/<int:case_id>/documents")
@needs("legal")
def case_document(case_id: int) -> Any:
    reference = cases.case_reference(reader(), case_id)
    data, filename = _upload()
    document = cases.attach_upload(
        store(),
        reference,
        data,
        filename,
        title=request.form.get("title", ""),
        document_date=None,
        by=actor(),
    )
    return jsonify(
        {
            "id": document.id,
            "title": document.title,
            "filename": document.filename,
            "size": document.size,
            "sha256": document.sha256,
        }
    ), 201


@blueprint.post("/cases/<int:case_id>/claims")
@needs("legal")
def case_claim(case_id: int) -> Any:
    reference = cases.case_reference(reader(), case_id)
    data = _body()
    text = _text(data, "text")
    items = data.get("evidence", [])
    if not isinstance(items, list) or not all(isinstance(i, str) for i in items):
        raise InvalidInput('evidence is a list of timeline item ids, e.g. ["email:12"]')
    assert text is not None
    claim = cases.add_claim(store(), reference, text, items, by=actor())
    return jsonify({"id": claim.id, "text": claim.text, "evidence": list(claim.evidence)}), 201


@blueprint.post("/exports")
@needs("legal")
def export_start() -> Any:
    data = _body()
    case_id = data.get("case_id")
    if case_id is not None and not isinstance(case_id, int):
        raise InvalidInput("case_id must be a number (the id of GET /api/cases)")
    job = export_jobs.queue_export(
        store(),
        customer=_text(data, "customer", required=case_id is None),
        case_ref=cases.case_reference(reader(), case_id) if case_id is not None else None,
        language=_text(data, "lang", required=False),
        date_from=_date(data.get("from"), "from"),
        date_to=_date(data.get("to"), "to"),
        by=actor(),
    )
    return jsonify({"id": job.id, "status": job.status}), 202


@blueprint.get("/exports/<int:job_id>")
@needs("viewer")
def export_status(job_id: int) -> Any:
    return jsonify(export_jobs.get_job(reader(), job_id).as_dict())


@blueprint.get("/exports/<int:job_id>/file")
@needs("viewer")
def export_file(job_id: int) -> Response:
    return send_job_file(job_id)


def send_job_file(job_id: int) -> Response:
    """The finished dossier of a job, its download kept in the audit log."""
    info, path = export_jobs.job_file(reader(), job_id)
    audit_later(
        action="download",
        subject=f"customer {info.customer}" + (f", case {info.case}" if info.case else ""),
        output_sha256=info.sha256,
        details={"job": job_id},
    )
    safe = (info.case or info.customer).replace("/", "-")
    return send_file(
        path,
        mimetype="application/pdf",
        as_attachment=True,
        download_name=f"dossier-{safe}-{job_id}.pdf",
    )


@blueprint.post("/verify")
@needs("viewer")
def verify() -> Any:
    data, filename = _upload()
    report = integrity.verify_upload(store(), data, filename, by=actor())
    return jsonify(report.as_dict())
