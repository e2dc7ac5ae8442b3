"""``evidence serve``: the desk under gunicorn (a production server), started from Python.

On SQLite each server process also runs queued exports in a thread (:func:`evidence.jobs.
run_queued`); on PostgreSQL ``evidence worker`` processes run them, so the server only
queues them.
"""

from __future__ import annotations

import logging
import threading
from typing import Any

from gunicorn.app.base import BaseApplication

from evidence.config import Config
from evidence.store.db import open_store, sqlite_path
from evidence.web.settings import desk_settings

log = logging.getLogger("evidence.web")


def runs_jobs_itself(config: Config) -> bool:
    """On SQLite the server runs exports itself; on PostgreSQL, `evidence worker` does."""
    return sqlite_path(config.database_url) is not None


def start_job_thread(config: Config) -> threading.Event:
    """Run queued exports in a daemon thread of this process; set the event to stop."""
    from evidence.jobs import run_queued

    stop = threading.Event()
    store = open_store(config)

    def report(exc: BaseException) -> None:
        log.error("export runner: %s: %s", type(exc).__name__, exc)

    thread = threading.Thread(
        target=run_queued,
        args=(store, stop),
        kwargs={"on_error": report},
        daemon=True,
        name="evidence-exports",
    )
    thread.start()
    return stop


class DeskServer(BaseApplication):  # type: ignore[misc]
    def __init__(self, config: Config, host: str, port: int, workers: int | None) -> None:
        self.config_ = config
        self.options = {
            "bind": f"{host}:{port}",
            "workers": workers or desk_settings(config).workers,
            "worker_class": "gthread",
            "threads": 4,
            "timeout": 120,
            "accesslog": "-",
            "errorlog": "-",
            "forwarded_allow_ips": ",".join(desk_settings(config).trusted_proxies) or "127.0.0.1",
            "post_worker_init": self._post_worker_init,
            "control_socket_disable": True,
        }
        super().__init__()

    def load_config(self) -> None:
        for key, value in self.options.items():
            self.cfg.set(key, value)

    def load(self) -> Any:
        from evidence.web.app import create_app

        return create_app(self.config_)

    def _post_worker_init(self, worker: Any) -> None:
        if runs_jobs_itself(self.config_):
            start_job_thread(self.config_)


def serve(config: Config, host: str, port: int, workers: int | None = None) -> None:
    # Checked before gunicorn starts: a missing store or key is one clear line, not a
    # worker that fails to boot.
    from evidence.web.app import create_app

    create_app(config)
    open_store(config).close()
    DeskServer(config, host, port, workers).run()
