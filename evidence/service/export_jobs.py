"""Exports queued by the desk and run by a worker (``evidence.jobs``): queue one, follow it,
fetch its file. Every face of the desk (its pages, its API) queues through here."""

from __future__ import annotations

import datetime as dt
from typing import TYPE_CHECKING

from evidence import jobs
from evidence.jobs import JobInfo
from evidence.service.result import opened
from evidence.store.audit import log_event

if TYPE_CHECKING:
    from pathlib import Path

    from evidence.config import Config
    from evidence.store.db import Store

__all__ = ["JobInfo", "get_job", "job_file", "list_jobs", "queue_export"]


def queue_export(
    source: Config | Store,
    *,
    customer: str | None,
    case_ref: str | None,
    language: str | None,
    date_from: dt.date | None = None,
    date_to: dt.date | None = None,
    by: str,
) -> JobInfo:
    """Queue the export of a customer (or of a case's customer), checked first; the audit
    log keeps who asked for it."""
    with opened(source) as store:
        job = jobs.queue_export(
            store,
            customer=customer,
            case_ref=case_ref,
            language=language,
            date_from=date_from,
            date_to=date_to,
            by=by,
        )
        log_event(
            store,
            action="export-queued",
            subject=f"customer {job.customer}" + (f", case {job.case}" if job.case else ""),
            details={"job": job.id},
            actor=by,
            checkpoint=False,
        )
        return job


def get_job(source: Config | Store, job_id: int) -> JobInfo:
    with opened(source) as store:
        return jobs.get_job(store, job_id)


def list_jobs(source: Config | Store, *, case_ref: str | None = None) -> tuple[JobInfo, ...]:
    """The latest jobs, newest first (of one case: ``case_ref``)."""
    with opened(source) as store:
        return tuple(jobs.list_jobs(store, case_ref=case_ref))


def job_file(source: Config | Store, job_id: int) -> tuple[JobInfo, Path]:
    """The finished dossier of a job; :class:`evidence.jobs.JobNotReady` before it is done."""
    with opened(source) as store:
        return jobs.job_file(store, job_id)
