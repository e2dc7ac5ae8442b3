"""``evidence serve``: the desk under gunicorn (a production server), started from Python.

On SQLite the server runs queued exports itself: it starts one ``evidence worker`` process
beside gunicorn's (the same job code, :func:`evidence.jobs.run_queued`), which ends with the
server. A process, not a thread of a gunicorn worker: an export's assembly holds the GIL for
seconds, and the pages served by that worker would wait for it (measured: p95 5.5 s with a
thread, see README "Speed"). On PostgreSQL ``evidence worker`` processes, started by the
administrator anywhere, run them; the server only queues them.
"""

from __future__ import annotations

import os
import subprocess
import sys
from typing import Any

from gunicorn.app.base import BaseApplication

from evidence.config import Config
from evidence.store.db import open_store, sqlite_path
from evidence.web.settings import desk_settings


def runs_jobs_itself(config: Config) -> bool:
    """On SQLite the server runs exports itself; on PostgreSQL, `evidence worker` does."""
    return sqlite_path(config.database_url) is not None


def start_job_runner(config: Config) -> subprocess.Popen[bytes]:
    """``evidence worker`` beside the server; killed when the server's process ends."""
    from evidence.workers import die_with_parent

    return subprocess.Popen(
        [sys.executable, "-m", "evidence", "worker"],
        env={**os.environ, "EVIDENCE_HOME": str(config.home)},
        preexec_fn=die_with_parent,
    )


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
            "control_socket_disable": True,
        }
        super().__init__()

    def load_config(self) -> None:
        for key, value in self.options.items():
            self.cfg.set(key, value)

    def load(self) -> Any:
        from evidence.web.app import create_app

        return create_app(self.config_)


def serve(config: Config, host: str, port: int, workers: int | None = None) -> None:
    # Checked before gunicorn starts: a missing store or key is one clear line, not a
    # worker that fails to boot.
    from evidence.web.app import create_app

    create_app(config)
    open_store(config).close()
    runner = start_job_runner(config) if runs_jobs_itself(config) else None
    try:
        DeskServer(config, host, port, workers).run()
    finally:
        if runner is not None:
            runner.terminate()
            try:
                runner.wait(timeout=30)
            except subprocess.TimeoutExpired:
                runner.kill()
