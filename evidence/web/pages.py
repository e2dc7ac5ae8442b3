"""The desk's pages for people: sign-in, cases, a case, customers, incidents, verify.

Text goes through the dossier's gettext catalogs (fi, sv, en), in the signed-in user's
language. Forms carry a CSRF token (checked in :mod:`evidence.web.app`).
"""

from __future__ import annotations

import datetime as dt
import functools
import threading
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

from flask import (
    Blueprint,
    Flask,
    abort,
    g,
    redirect,
    render_template,
    request,
    session,
    url_for,
)
from werkzeug.wrappers import Response

from evidence.domain import outcome_label, service_state_label
from evidence.errors import InvalidInput
from evidence.records.authorities import authority_name
from evidence.records.users import Forbidden, SigninThrottled
from evidence.render.i18n import LANGUAGES, translations
from evidence.service import cases, export_jobs, holds, incidents, integrity, reading, users
from evidence.service import customers as customer_ops
from evidence.timeutil import format_local
from evidence.web.app import actor, audit_later, csrf_token, current_user, desk, reader, store

F = TypeVar("F", bound=Callable[..., Any])
blueprint = Blueprint("pages", __name__)
PAGE_SIZE = 50


def language() -> str:
    user = current_user()
    if user is not None:
        return user.language
    chosen = request.accept_languages.best_match(LANGUAGES)
    return chosen or "fi"


def _(text: str) -> str:
    return translations(language()).gettext(text)


def install(app: Flask) -> None:
    app.jinja_env.add_extension("jinja2.ext.i18n")
    app.jinja_env.install_gettext_callables(  # type: ignore[attr-defined]
        gettext=lambda text: translations(language()).gettext(text),
        ngettext=lambda one, many, n: translations(language()).ngettext(one, many, n),
        newstyle=True,
    )
    app.jinja_env.globals.update(
        csrf_token=csrf_token,
        current_user=current_user,
        lang=language,
        authority_name=authority_name,
    )
    app.jinja_env.autoescape = True
    app.jinja_env.filters["localtime"] = lambda value: format_local(value, desk().config.zone)


def error_page(code: int, message: str) -> Any:
    if code == 401:
        return redirect(url_for("pages.signin", next=request.path))
    return render_template("error.html.j2", code=code, message=message), code


def signed_in(role: str = "viewer") -> Callable[[F], F]:
    """A page for signed-in users whose role allows ``role``."""

    def decorate(func: F) -> F:
        @functools.wraps(func)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            user = current_user()
            if user is None:
                return redirect(url_for("pages.signin", next=request.full_path))
            if not user.may(role):
                raise Forbidden(_("Your role does not allow this."))
            return func(*args, **kwargs)

        return wrapper  # type: ignore[return-value]

    return decorate


@blueprint.route("/signin", methods=["GET", "POST"])
def signin() -> Any:
    message = None
    status = 200
    if request.method == "POST":
        name = request.form.get("username", "")
        try:
            user = users.sign_in(
                store(),
                name,
                request.form.get("password", ""),
                request.remote_addr or "-",
                reader=reader(),
            )
        except SigninThrottled:
            user, status = None, 429
            message = _("Too many failed sign-ins. Try again in 15 minutes.")
        if user is not None:
            session.clear()
            session["uid"] = user.id
            g.user = user
            csrf_token()
            audit_later(action="sign-in", subject=f"user {user.name}")
            target = request.args.get("next", "")
            # Only a path on this site: never an open redirect.
            if not target.startswith("/") or target.startswith("//"):
                target = url_for("pages.case_list")
            return redirect(target)
        if message is None:
            message, status = _("Wrong user name or password."), 401
    return render_template("signin.html.j2", message=message), status


@blueprint.post("/signout")
def signout() -> Response:
    session.clear()
    return redirect(url_for("pages.signin"))


@blueprint.get("/")
@signed_in()
def case_list() -> Any:
    rows = cases.list_cases(reader())
    return render_template("cases.html.j2", cases=[r for r in rows if r.status == "open"])


@blueprint.post("/language")
@signed_in()
def language_set() -> Response:
    user = current_user()
    assert user is not None
    users.set_language(store(), user.id, request.form.get("language", ""))
    return redirect(request.referrer if _same_site(request.referrer) else url_for(".case_list"))


def _same_site(url: str | None) -> bool:
    return bool(url) and (url or "").startswith(request.host_url)


def _day(name: str) -> dt.date | None:
    from evidence.timeutil import parse_user_date

    value = (request.values.get(name) or "").strip()
    return parse_user_date(value) if value else None


def _moment(name: str, *, required: bool = False) -> dt.datetime | None:
    """A local time from a ``datetime-local`` input (``2026-09-28T10:02``)."""
    from evidence.timeutil import read_user_time

    value = (request.form.get(name) or "").strip().replace("T", " ")
    if not value:
        if required:
            raise InvalidInput(_("Give the time."))
        return None
    return read_user_time(value).at(desk().config.zone)


@blueprint.post("/cases")
@signed_in("legal")
def case_open() -> Response:
    opened = cases.open_case(
        store(),
        request.form.get("ref", "").strip(),
        customer_ref=request.form.get("customer", "").strip(),
        authority=request.form.get("authority", "").strip(),
        received=_day("received"),
        deadline=_day("deadline"),
        by=actor(),
    )
    return redirect(url_for(".case_page", case_id=opened.id))


# Built timelines of this process, by customer, period, language and the ledger's last
# evidence entry: a new record (mail, call, incident, correction, erasure...) makes a new key.
# Audit events (the views themselves) do not.
_BUILT: OrderedDict[tuple[Any, ...], tuple[list[dict[str, Any]], list[str]]] = OrderedDict()
_BUILT_LOCK = threading.Lock()
_BUILT_KEEP = 8


def _timeline_rows(
    customer_ref: str, date_from: dt.date | None, date_to: dt.date | None
) -> tuple[list[dict[str, Any]], list[str]]:
    # Read before the build: a record landing between only makes the next key new.
    version = reading.evidence_version(reader())
    key = (desk().config.database_url, customer_ref, date_from, date_to, language(), version)
    with _BUILT_LOCK:
        if key in _BUILT:
            _BUILT.move_to_end(key)
            return _BUILT[key]
    with reading.customer_timeline(reader(), customer_ref, date_from, date_to) as built:
        rows = [_row(item) for item in built.items]
        found = (rows, sorted({str(i.kind) for i in built.items}))
    with _BUILT_LOCK:
        _BUILT[key] = found
        while len(_BUILT) > _BUILT_KEEP:
            _BUILT.popitem(last=False)
    return found


def _timeline_page(customer_ref: str) -> dict[str, Any]:
    """One page of a customer's timeline, filtered by kind and period (query arguments
    ``kind``, ``from``, ``to``, ``page``); each view is kept in the audit log."""
    date_from, date_to = _day("from"), _day("to")
    kind = request.args.get("kind", "")
    try:
        page = max(1, int(request.args.get("page", "1")))
    except ValueError:
        page = 1
    every, kinds = _timeline_rows(customer_ref, date_from, date_to)
    items = [r for r in every if not kind or r["kind"] == kind]
    pages = max(1, -(-len(items) // PAGE_SIZE))
    page = min(page, pages)
    rows = items[(page - 1) * PAGE_SIZE : page * PAGE_SIZE]
    audit_later(
        action="timeline-view",
        subject=f"customer {customer_ref}",
        details={"from": date_from, "to": date_to, "kind": kind or None, "page": page},
    )
    return {
        "customer": customer_ref,
        "rows": rows,
        "kinds": kinds,
        "kind": kind,
        "page": page,
        "pages": pages,
        "total": len(items),
        "date_from": date_from,
        "date_to": date_to,
    }


def _row(item: Any) -> dict[str, Any]:
    """What the timeline table shows of an item (text only: the template escapes it)."""
    from evidence.store.models import Email, Incident
    from evidence.timeutil import format_duration, format_local

    zone = desk().config.zone
    record = item.record
    if isinstance(record, Email):
        summary = record.subject or _("(no subject)")
        who = record.from_display or record.from_addr or ""
    elif isinstance(record, Incident):
        summary = f"#{record.number} {record.title}"
        who = record.logged_by or ""
    elif item.kind == "call":
        outcome = outcome_label(record.outcome, _)
        summary = f"{outcome} · {_('queue')} {format_duration(record.queue_wait)}"
        who = record.number or ""
    else:
        summary = f"{getattr(record, 'agent', '')} {getattr(record, 'reason', '') or ''}"
        who = ""
    return {
        "id": item.id,
        "kind": item.kind,
        "at": format_local(item.at, zone),
        "summary": summary,
        "who": who,
        "state": service_state_label(item.service_state, _),
        "raw_sha256": record.raw_sha256 if isinstance(record, Email) else None,
    }


@blueprint.get("/cases/<int:case_id>")
@signed_in()
def case_page(case_id: int) -> Any:
    reference = cases.case_reference(reader(), case_id)
    shown = cases.show_case(reader(), reference)
    timeline = _timeline_page(shown.customer)
    subjects = (f"case {reference}", f"customer {shown.customer}")
    try:
        desk().audit.flush()  # the trail shows this user's own views too
    except Exception:  # the writer lock is busy (an export gathers): the trail shows the rest
        pass
    trail = integrity.list_audit(reader(), about=subjects)
    return render_template(
        "case.html.j2",
        case=shown,
        holds=holds.active_holds(reader(), shown.customer),
        timeline=timeline,
        jobs=export_jobs.list_jobs(reader(), case_ref=reference),
        trail=trail[-100:],
    )


@blueprint.post("/cases/<int:case_id>/claims")
@signed_in("legal")
def case_claim(case_id: int) -> Response:
    cases.add_claim(
        store(),
        cases.case_reference(reader(), case_id),
        request.form.get("text", ""),
        request.form.getlist("evidence"),
        by=actor(),
    )
    return redirect(url_for(".case_page", case_id=case_id) + "#claims")


@blueprint.post("/cases/<int:case_id>/documents")
@signed_in("legal")
def case_document(case_id: int) -> Response:
    reference = cases.case_reference(reader(), case_id)
    upload = request.files.get("file")
    if upload is None or not upload.filename:
        raise InvalidInput(_("Choose a PDF file."))
    cases.attach_upload(
        store(),
        reference,
        upload.read(),
        upload.filename,
        title=request.form.get("title", "").strip() or upload.filename,
        document_date=_day("date"),
        by=actor(),
    )
    return redirect(url_for(".case_page", case_id=case_id) + "#documents")


@blueprint.post("/cases/<int:case_id>/exports")
@signed_in("legal")
def case_export(case_id: int) -> Response:
    export_jobs.queue_export(
        store(),
        customer=None,
        case_ref=cases.case_reference(reader(), case_id),
        language=request.form.get("lang") or None,
        by=actor(),
    )
    return redirect(url_for(".case_page", case_id=case_id) + "#exports")


@blueprint.post("/cases/<int:case_id>/close")
@signed_in("legal")
def case_close(case_id: int) -> Response:
    reference = cases.case_reference(reader(), case_id)
    cases.close_case(store(), reference, reason=request.form.get("reason", ""), by=actor())
    return redirect(url_for(".case_list"))


@blueprint.post("/cases/<int:case_id>/hold")
@signed_in("legal")
def case_hold(case_id: int) -> Response:
    reference = cases.case_reference(reader(), case_id)
    holds.add_hold(store(), reference, reason=request.form.get("reason", ""), by=actor())
    return redirect(url_for(".case_page", case_id=case_id) + "#holds")


@blueprint.get("/exports/<int:job_id>/row")
@signed_in()
def export_row(job_id: int) -> Any:
    return render_template("_export_row.html.j2", job=export_jobs.get_job(reader(), job_id))


@blueprint.get("/exports/<int:job_id>/file")
@signed_in()
def export_file(job_id: int) -> Response:
    from evidence.web.api import send_job_file

    return send_job_file(job_id)


@blueprint.get("/customers")
@signed_in()
def customers() -> Any:
    query = request.args.get("q", "")
    found = customer_ops.search_customers(reader(), query)
    return render_template("customers.html.j2", query=query, found=found)


@blueprint.get("/customers/<ref>/emails/<item_id>")
@signed_in()
def email_body(ref: str, item_id: str) -> Any:
    """An email of the customer's timeline as the dossier shows it (its sanitised text or
    HTML: nothing remote), fetched when its row is opened; kept in the audit log."""
    every, _kinds = _timeline_rows(ref, None, None)
    row = next((r for r in every if r["id"] == item_id and r["raw_sha256"]), None)
    if row is None:
        abort(404, description=f"{item_id} is not an email of customer {ref}")
    body = reading.email_body(reader(), row["raw_sha256"])
    audit_later(action="timeline-view", subject=f"customer {ref}", details={"item": item_id})
    return render_template("_email_body.html.j2", body=body)


@blueprint.get("/customers/<ref>")
@signed_in()
def customer_page(ref: str) -> Any:
    return render_template("customer.html.j2", ref=ref, timeline=_timeline_page(ref))


@blueprint.get("/incidents", endpoint="incidents")
@signed_in()
def incident_list() -> Any:
    listed = incidents.list_incidents(reader())
    return render_template("incidents.html.j2", incidents=list(reversed(listed)))


@dataclass(frozen=True)
class _IncidentForm:
    """What every incident form of the desk sends."""

    title: str
    channels: list[str]
    note: str | None
    by: str

    @classmethod
    def read(cls) -> _IncidentForm:
        return cls(
            title=request.form.get("title", ""),
            channels=request.form.getlist("channel") or ["all"],
            note=request.form.get("note") or None,
            by=actor(),
        )


def _incident_add(form: _IncidentForm) -> None:
    start = _moment("start", required=True)
    assert start is not None
    incidents.add_incident(
        store(),
        audit_by=form.by,
        title=form.title,
        start=start,
        end=_moment("end"),
        channels=form.channels,
        note=form.note,
        logged_by=form.by,
    )


def _incident_start(form: _IncidentForm) -> None:
    incidents.start_incident(
        store(),
        audit_by=form.by,
        title=form.title,
        channels=form.channels,
        note=form.note,
        logged_by=form.by,
    )


def _incident_number() -> int:
    return incidents.parse_number(request.form.get("number", ""))


def _incident_end(form: _IncidentForm) -> None:
    incidents.end_incident(
        store(), _incident_number(), audit_by=form.by, at=_moment("at"), by=form.by
    )


def _incident_correct(form: _IncidentForm) -> None:
    incidents.correct_incident(
        store(),
        _incident_number(),
        audit_by=form.by,
        reason=request.form.get("reason", ""),
        by=form.by,
        start=_moment("start"),
        end=_moment("end"),
        title=form.title or None,
        channels=request.form.getlist("channel") or None,  # none ticked: unchanged
        note=form.note,
    )


def _incident_plan(form: _IncidentForm) -> None:
    """A planned (recurring) incident."""
    start, end = _moment("start", required=True), _moment("end", required=True)
    assert start is not None and end is not None
    incidents.plan_incident(
        store(),
        audit_by=form.by,
        title=form.title,
        start=start,
        end=end,
        rrule_text=request.form.get("rrule") or None,
        channels=form.channels,
        note=form.note,
        logged_by=form.by,
    )


_INCIDENT_ACTIONS: dict[str, Callable[[_IncidentForm], None]] = {
    "add": _incident_add,
    "start": _incident_start,
    "end": _incident_end,
    "correct": _incident_correct,
    "plan": _incident_plan,
}


@blueprint.post("/incidents")
@signed_in("agent")
def incident_action() -> Response:
    """The incident forms: log one, start one, end one, correct one, plan recurring ones
    (each kept in the audit log under the signed-in user)."""
    run = _INCIDENT_ACTIONS.get(request.form.get("action", ""))
    if run is None:
        abort(400, description="unknown incident action")
    run(_IncidentForm.read())
    return redirect(url_for(".incidents"))


@blueprint.route("/verify", methods=["GET", "POST"])
@signed_in()
def verify() -> Any:
    report = None
    if request.method == "POST":
        upload = request.files.get("file")
        if upload is None or not upload.filename:
            raise InvalidInput(_("Choose a PDF file."))
        report = integrity.verify_upload(store(), upload.read(), upload.filename, by=actor())
    return render_template("verify.html.j2", report=report)
