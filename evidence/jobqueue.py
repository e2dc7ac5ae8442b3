"""The desk's export jobs on PostgreSQL: procrastinate, a job engine that needs nothing but
the database, run by ``evidence worker`` (any number, on any machine that reaches it).

``desk_export_jobs`` (:mod:`evidence.jobs`) stays the record a person reads: queued,
running, done or failed, progress, SHA-256, pages, the reason. Procrastinate carries the
work: :func:`defer_export` defers the task ``evidence.export`` for a queued job; a worker
claims the job's row (only one can) and runs it with :func:`evidence.jobs.run_job`. Every
15 seconds the periodic task ``evidence.recover`` queues again (or fails, after
:data:`evidence.jobs.MAX_ATTEMPTS`) the jobs whose worker stopped beating (killed,
machine lost) and defers them again. Procrastinate's schema is applied by migration 0017.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

import procrastinate
from sqlalchemy.engine import make_url

from evidence.config import Config
from evidence.store.db import Store, open_store

QUEUE = "evidence-exports"
log = logging.getLogger("evidence.jobs")


def conninfo(database_url: str) -> str:
    """The libpq connection string of an SQLAlchemy PostgreSQL URL."""
    url = make_url(database_url).set(drivername="postgresql")
    return url.render_as_string(hide_password=False)


def job_app(config: Config) -> procrastinate.App:
    """The procrastinate app with the desk's tasks, on the store's database."""
    from evidence import jobs

    app = procrastinate.App(
        connector=procrastinate.PsycopgConnector(conninfo=conninfo(config.database_url))
    )
    opened: list[Store] = []

    def _store(_config: Config) -> Store:
        # One store per worker process, opened when the first task runs.
        if not opened:
            opened.append(open_store(config))
        return opened[0]

    @app.task(name="evidence.export", queue=QUEUE)
    def export(job_id: int) -> None:
        store = _store(config)
        with store.writing() as session:
            if not jobs.claim(session, job_id):
                return  # done, failed, or taken by another worker: nothing to do
        jobs.run_job(store, job_id)

    @app.periodic(cron="* * * * * */15", periodic_id="recover")
    @app.task(name="evidence.recover", queue=QUEUE, queueing_lock="evidence.recover")
    def recover(timestamp: int) -> None:
        jobs.recover_stalled(_store(config))  # defers the jobs it queues again

    app.extensions = {"export": export}  # type: ignore[attr-defined]
    return app


def defer_export(config: Config, job_id: int) -> None:
    """Hand a queued job to the workers."""
    app = job_app(config)
    with app.open():
        app.extensions["export"].defer(job_id=job_id)  # type: ignore[attr-defined]


def run_worker(config: Config, *, log_line: Callable[[str], None]) -> None:
    """``evidence worker`` on PostgreSQL: run exports until SIGTERM or Ctrl-C."""
    app = job_app(config)
    log_line(f"worker ready: running the desk's exports (queue {QUEUE})")
    options: dict[str, Any] = {
        "queues": [QUEUE],
        "concurrency": 1,
        "update_heartbeat_interval": 5,
        "stalled_worker_timeout": 30,
        "delete_jobs": "successful",
    }
    app.run_worker(**options)
