"""Exports queued by the legal desk, run by a worker: the same export as ``evidence export``.

A job is a row of ``desk_export_jobs``: queued, running, done or failed. Whoever runs jobs
(``evidence worker`` on PostgreSQL, a thread of ``evidence serve`` on SQLite) claims one with
a conditional update, so two workers never run the same job, and beats a heartbeat while it
renders. A job whose heartbeat stopped (its worker was killed) is queued again, up to
:data:`MAX_ATTEMPTS` tries, then failed with the reason. The dossier is written under a
temporary name and renamed when whole (:func:`evidence.files.write_atomic`), so a killed
worker leaves no half file; its temporary file is removed when the job is taken up again.
"""

from __future__ import annotations

import datetime as dt
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from evidence.errors import EvidenceError, InvalidInput, NotFound
from evidence.files import private_dir
from evidence.store.db import Store, sqlite_path
from evidence.store.models import Case, Customer, ExportJob
from evidence.store.rows import from_row
from evidence.timeutil import iso_utc, utcnow

STATUSES = ("queued", "running", "done", "failed")
LANGUAGES = ("fi", "sv", "en")
MAX_ATTEMPTS = 3
HEARTBEAT = dt.timedelta(seconds=5)
STALE_AFTER = dt.timedelta(seconds=30)


class JobNotReady(InvalidInput):
    """The job's file is asked for before the job is done."""


@dataclass(frozen=True)
class JobInfo:
    id: int
    status: str
    progress: int
    customer: str
    case: str | None
    language: str | None
    requested_by: str
    created_at: dt.datetime
    finished_at: dt.datetime | None
    sha256: str | None
    pages: int | None
    error: str | None
    attempts: int

    @classmethod
    def of(cls, job: ExportJob) -> JobInfo:
        return from_row(cls, job, customer=job.customer_ref, case=job.case_ref)

    def as_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "status": self.status,
            "progress": self.progress,
            "customer": self.customer,
            "case": self.case,
            "lang": self.language,
            "requested_by": self.requested_by,
            "created_at": iso_utc(self.created_at),
            "finished_at": iso_utc(self.finished_at) if self.finished_at else None,
            "sha256": self.sha256,
            "pages": self.pages,
            "error": self.error,
            "attempts": self.attempts,
        }


def jobs_dir(store: Store) -> Path:
    return private_dir(store.config.home / "desk-exports")


def job_path(store: Store, job_id: int) -> Path:
    return jobs_dir(store) / f"export-{job_id}.pdf"


def queue_export(
    store: Store,
    *,
    customer: str | None,
    case_ref: str | None,
    language: str | None,
    date_from: dt.date | None,
    date_to: dt.date | None,
    by: str,
) -> JobInfo:
    """Queue an export of a customer (or of a case's customer); checked before it is queued."""
    if language is not None and language not in LANGUAGES:
        raise InvalidInput(f"unknown language {language!r}: one of {', '.join(LANGUAGES)}")
    if date_from and date_to and date_from > date_to:
        raise InvalidInput("from is after to: give the earlier day first")
    with store.writing() as session:
        if case_ref:
            case = session.scalar(select(Case).where(Case.reference == case_ref))
            if case is None:
                raise NotFound(f"no case {case_ref!r}")
            case_customer = session.get(Customer, case.customer_id)
            assert case_customer is not None
            if customer and customer != case_customer.ref:
                raise InvalidInput(f"case {case_ref} is about customer {case_customer.ref}")
            customer = case_customer.ref
        if not customer:
            raise InvalidInput("give the customer (or a case)")
        if session.scalar(select(Customer.id).where(Customer.ref == customer)) is None:
            raise NotFound(f"no customer {customer!r}")
        job = ExportJob(
            customer_ref=customer,
            case_ref=case_ref,
            language=language,
            date_from=date_from,
            date_to=date_to,
            requested_by=by,
            status="queued",
            progress=0,
            attempts=0,
            created_at=utcnow(),
        )
        session.add(job)
        session.flush()
        info = JobInfo.of(job)
    if sqlite_path(store.config.database_url) is None:
        # PostgreSQL: `evidence worker` processes run it (procrastinate); on SQLite the
        # server's own runner finds it in the table.
        from evidence.jobqueue import defer_export

        try:
            defer_export(store.config, info.id)
        except Exception as exc:
            _set(store, info.id, status="failed", finished_at=utcnow(), error=str(exc))
            raise
    return info


def get_job(store: Store, job_id: int) -> JobInfo:
    with store.session() as session:
        job = session.get(ExportJob, job_id)
        if job is None:
            raise NotFound(f"no export job {job_id}")
        return JobInfo.of(job)


def list_jobs(store: Store, *, case_ref: str | None = None, limit: int = 50) -> list[JobInfo]:
    with store.session() as session:
        query = select(ExportJob).order_by(ExportJob.id.desc()).limit(limit)
        if case_ref is not None:
            query = query.where(ExportJob.case_ref == case_ref)
        return [JobInfo.of(j) for j in session.scalars(query)]


def job_file(store: Store, job_id: int) -> tuple[JobInfo, Path]:
    """The finished dossier of a job; :class:`JobNotReady` before it is done."""
    info = get_job(store, job_id)
    path = job_path(store, job_id)
    if info.status != "done" or not path.is_file():
        raise JobNotReady(f"export {job_id} is {info.status}: its file is there when it is done")
    return info, path


def recover_stalled(store: Store, now: dt.datetime | None = None) -> list[int]:
    """Queue again (or fail, after :data:`MAX_ATTEMPTS`) the running jobs whose worker
    stopped beating; their temporary files go. Returns the ids taken care of."""
    now = now or utcnow()
    done: list[int] = []
    with store.writing() as session:
        stalled = session.scalars(
            select(ExportJob).where(
                ExportJob.status == "running", ExportJob.heartbeat_at < now - STALE_AFTER
            )
        ).all()
        for job in stalled:
            if job.attempts >= MAX_ATTEMPTS:
                job.status = "failed"
                job.finished_at = now
                job.error = (
                    f"the worker running it stopped {job.attempts} times (killed or lost); "
                    "start the export again"
                )
            else:
                job.status = "queued"
                job.error = f"the worker running attempt {job.attempts} stopped; retried"
            done.append(job.id)
    for job_id in done:
        _remove_partial(store, job_id)
        if sqlite_path(store.config.database_url) is None and get_job(store, job_id).status == (
            "queued"
        ):
            from evidence.jobqueue import defer_export

            defer_export(store.config, job_id)
    return done


def _remove_partial(store: Store, job_id: int) -> None:
    final = job_path(store, job_id)
    for leftover in final.parent.glob(f".{final.name}.*.part"):
        leftover.unlink(missing_ok=True)


def claim_next(store: Store) -> int | None:
    """Take the oldest queued job for this worker, or None."""
    recover_stalled(store)
    with store.writing() as session:
        job_id = session.scalar(
            select(ExportJob.id).where(ExportJob.status == "queued").order_by(ExportJob.id)
        )
        if job_id is None:
            return None
        return job_id if claim(session, job_id) else None


def claim(session: Session, job_id: int) -> bool:
    """Mark one queued job running (a conditional update: only one worker wins)."""
    now = utcnow()
    result = session.execute(
        update(ExportJob)
        .where(ExportJob.id == job_id, ExportJob.status == "queued")
        .values(
            status="running",
            started_at=now,
            heartbeat_at=now,
            attempts=ExportJob.attempts + 1,
            progress=0,
        )
    )
    return bool(getattr(result, "rowcount", 0))


def _set(store: Store, job_id: int, **values: Any) -> None:
    with store.writing() as session:
        session.execute(update(ExportJob).where(ExportJob.id == job_id).values(**values))


class _Heartbeat:
    """Beats a running job's heartbeat, with the parts rendered so far, from a thread of its
    own while the block runs (a worker that stops beating is taken for dead)."""

    def __init__(self, store: Store, job_id: int) -> None:
        self.store = store
        self.job_id = job_id
        self.parts = 0
        self.stop = threading.Event()
        self.thread = threading.Thread(
            target=self._beat, name=f"export-{job_id}-heartbeat", daemon=True
        )

    def progress(self, step: int) -> None:
        self.parts += step

    def _beat(self) -> None:
        while not self.stop.wait(HEARTBEAT.total_seconds()):
            _set(self.store, self.job_id, heartbeat_at=utcnow(), progress=self.parts)

    def __enter__(self) -> _Heartbeat:
        self.thread.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self.stop.set()
        self.thread.join()


def run_job(store: Store, job_id: int, *, jobs: int | None = 1) -> JobInfo:
    """Run a claimed job to its end: done with its SHA-256 and pages, or failed with the
    reason. Beats the heartbeat from a thread while the export renders."""
    from evidence.service.exports import ExportRequest, export

    info = get_job(store, job_id)
    _remove_partial(store, job_id)
    with store.session() as session:
        job = session.get(ExportJob, job_id)
        assert job is not None
        date_from, date_to = job.date_from, job.date_to
    try:
        request = ExportRequest(
            output=job_path(store, job_id),
            customer_ref=info.customer,
            case_ref=info.case,
            date_from=date_from,
            date_to=date_to,
            language=info.language,
            jobs=jobs,
            force=True,
            by=info.requested_by,
        )
        with _Heartbeat(store, job_id) as heart:
            result = export(store, request, progress=heart.progress)
    except EvidenceError as exc:
        _set(store, job_id, status="failed", finished_at=utcnow(), error=str(exc))
    except Exception as exc:  # the reason, never a traceback, for the person waiting
        _set(
            store,
            job_id,
            status="failed",
            finished_at=utcnow(),
            error=f"the export failed ({type(exc).__name__}: {exc}); see the server's log",
        )
        raise
    else:
        _set(
            store,
            job_id,
            status="done",
            finished_at=utcnow(),
            progress=max(heart.parts, 1),
            sha256=result.sha256,
            pages=result.pages,
            error=None,
        )
    return get_job(store, job_id)


def run_queued(
    store: Store,
    stop: threading.Event,
    *,
    poll: float = 1.0,
    on_error: Callable[[BaseException], None] | None = None,
) -> None:
    """Run queued jobs one after the other until ``stop`` is set (the SQLite runner)."""
    while not stop.is_set():
        try:
            job_id = claim_next(store)
            if job_id is None:
                stop.wait(poll)
                continue
            run_job(store, job_id)
        except Exception as exc:  # keep the runner alive; the job records its reason
            if on_error is not None:
                on_error(exc)
            stop.wait(poll)


def run_worker(store: Store, *, log: Callable[[str], None]) -> None:
    """``evidence worker``: run queued exports until SIGTERM or Ctrl-C (PostgreSQL: with
    procrastinate, :mod:`evidence.jobqueue`). It runs at a lower CPU priority (nice 10, its
    render processes too), so the desk's pages stay quick while a dossier renders."""
    import os
    import signal

    os.nice(10)

    if sqlite_path(store.config.database_url) is None:
        from evidence.jobqueue import run_worker as run_procrastinate

        run_procrastinate(store.config, log_line=log)
        return

    stop = threading.Event()

    def finish(signum: int, _frame: Any) -> None:
        log(f"stopping after the current export ({signal.Signals(signum).name})")
        stop.set()

    signal.signal(signal.SIGTERM, finish)
    signal.signal(signal.SIGINT, finish)
    log("worker ready: running queued exports")
    run_queued(store, stop, on_error=lambda exc: log(f"export failed: {exc}"))


def forget_exports(store: Store, customer_ref: str) -> list[int]:
    """After an erasure (GDPR Art. 17): the desk's dossiers of the customer go with their
    content. Their files are deleted and their jobs say why. Returns the jobs' ids."""
    now = utcnow()
    with store.writing() as session:
        found = session.scalars(select(ExportJob).where(ExportJob.customer_ref == customer_ref))
        ids = []
        for job in found:
            ids.append(job.id)
            if job.status != "failed":
                job.status = "failed"
                job.finished_at = job.finished_at or now
            job.error = (
                f"the customer's content was erased on {now:%Y-%m-%d}: the dossier was deleted"
            )
    for job_id in ids:
        job_path(store, job_id).unlink(missing_ok=True)
        _remove_partial(store, job_id)
    return ids
