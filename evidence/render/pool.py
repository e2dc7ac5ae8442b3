"""Rendering HTML to PDF in worker processes, from a page cache when it can, within limits.

Every WeasyPrint call of an export runs in a pool of worker processes (forkserver),
so the exporting process never holds a laid-out document and both cores work.
Each worker runs under a memory limit (``RLIMIT_AS``) and each exhibit chunk under
a time limit (``SIGALRM`` in the worker; the parent gives up on a worker that stops
answering and recycles the pool), so one hostile email cannot stall an export: a
part that fails comes back as a :class:`Failure` for the caller to deal with.

Finished PDFs are cached under EVIDENCE_HOME/cache/render by the SHA-256 of
their HTML (with the WeasyPrint and render versions).
"""

from __future__ import annotations

import functools
import hashlib
import importlib.metadata
import multiprocessing
import os
import resource
import signal
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import FrameType
from typing import Any

from evidence.config import Config
from evidence.errors import EvidenceError
from evidence.files import private_dir, write_atomic
from evidence.workers import die_with_parent

# Bump when a change in code (not in templates or data) changes the rendered pages.
RENDER_VERSION = "2"
# How long the parent waits past the time limit for a worker that stopped answering.
GRACE_SECONDS = 30.0


@dataclass(frozen=True)
class RenderLimits:
    """Limits for each render worker: seconds per exhibit chunk, MB of address space."""

    seconds: float = 300.0
    memory_mb: int = 2048


def render_limits(config: Config, environ: dict[str, str] | None = None) -> RenderLimits:
    """``[render] time_limit`` / ``memory_limit_mb`` in evidence.toml, or the
    ``EVIDENCE_RENDER_TIME_LIMIT`` / ``EVIDENCE_RENDER_MEMORY_MB`` variables."""
    env = os.environ if environ is None else environ
    section = config.extra.get("render", {})
    if not isinstance(section, dict):
        raise EvidenceError(f"{config.config_path}: [render] must be a table")
    default = RenderLimits()
    try:
        seconds = float(
            env.get("EVIDENCE_RENDER_TIME_LIMIT") or section.get("time_limit") or default.seconds
        )
        memory = int(
            env.get("EVIDENCE_RENDER_MEMORY_MB")
            or section.get("memory_limit_mb")
            or default.memory_mb
        )
    except (TypeError, ValueError) as exc:
        raise EvidenceError(f"render limits must be numbers ({exc})") from exc
    if seconds <= 0 or memory < 256:
        raise EvidenceError("render limits: time_limit > 0 s, memory_limit_mb >= 256")
    return RenderLimits(seconds, memory)


@dataclass(frozen=True)
class Job:
    """One HTML document to render; ``limited``: under the time limit (exhibits)."""

    html: str
    pdf_variant: str | None = None
    limited: bool = False


@dataclass(frozen=True)
class Failure:
    """Why a part could not be rendered: ``time``, ``memory``, ``error`` or ``stopped``."""

    kind: str
    detail: str = ""


class SealedFetcher:
    """A WeasyPrint URL fetcher that fetches nothing but ``data:`` URIs.

    Every other URL (http, https, file, ftp, ...) is refused and remembered, so
    tests and the export can show what an email tried to load.
    """

    def __init__(self) -> None:
        from weasyprint.urls import URLFetcher

        self._inner = URLFetcher(allowed_protocols={"data"}, allow_redirects=False)
        self._fail_on_errors = False
        self.refused: list[str] = []

    def __call__(self, url: str) -> Any:
        if not url.lower().startswith("data:"):
            self.refused.append(url)
            raise ValueError(f"refused to fetch {url!r}: dossiers load nothing from outside")
        return self._inner.fetch(url)


def render_pdf(html: str, pdf_variant: str | None = None) -> tuple[bytes, list[str]]:
    """HTML to PDF with the sealed fetcher; returns the PDF and the URLs it refused."""
    from weasyprint import HTML

    fetcher = SealedFetcher()
    options: dict[str, Any] = {}
    if pdf_variant:
        options["pdf_variant"] = pdf_variant
    pdf = HTML(string=html, url_fetcher=fetcher, base_url=None).write_pdf(**options)
    assert pdf is not None
    return pdf, fetcher.refused


# --- in the worker ---------------------------------------------------------------------


class _TimeUp(BaseException):
    """Raised in a worker by SIGALRM; a BaseException so no ``except Exception`` eats it."""


def _alarm(_signum: int, _frame: FrameType | None) -> None:
    raise _TimeUp


def _init_worker(memory_bytes: int) -> None:
    die_with_parent()
    signal.signal(signal.SIGALRM, _alarm)
    if memory_bytes:
        _soft, hard = resource.getrlimit(resource.RLIMIT_AS)
        limit = memory_bytes if hard == resource.RLIM_INFINITY else min(memory_bytes, hard)
        resource.setrlimit(resource.RLIMIT_AS, (limit, hard))


# index, PDF, refused URLs, failure, the worker's peak RSS (MB), CPU seconds of the task
Outcome = tuple[int, bytes | None, list[str], Failure | None, float, float]


def _peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _render_job(task: tuple[int, Job, float]) -> Outcome:
    index, job, seconds = task
    cpu = time.process_time()
    try:
        if job.limited:
            signal.setitimer(signal.ITIMER_REAL, seconds)
        try:
            pdf, refused = render_pdf(job.html, job.pdf_variant)
        finally:
            signal.setitimer(signal.ITIMER_REAL, 0)
        return index, pdf, refused, None, _peak_mb(), time.process_time() - cpu
    except _TimeUp:
        failure = Failure("time", f"{seconds:g} s")
    except MemoryError:
        failure = Failure("memory")
    except RecursionError:
        failure = Failure("error", "RecursionError: nested too deeply")
    except Exception as exc:  # noqa: BLE001 - any renderer failure becomes a placeholder
        failure = Failure("error", type(exc).__name__)
    return index, None, [], failure, _peak_mb(), time.process_time() - cpu


# --- in the exporting process ----------------------------------------------------------


def _context() -> Any:
    context = multiprocessing.get_context("forkserver")
    context.set_forkserver_preload(["weasyprint", "evidence.render.pool"])
    return context


def start_workers() -> None:
    """Start the fork server now: it imports WeasyPrint (a second or two) while the
    caller reads the store, instead of when the first part is due."""
    _context()
    from multiprocessing import forkserver

    forkserver.ensure_running()


@functools.cache
def _weasyprint_version() -> str:
    # From the package metadata: importing WeasyPrint here would cost the exporting
    # process seconds and tens of MB, and only the workers render.
    return importlib.metadata.version("weasyprint")


def _cache_key(job: Job) -> str:
    seed = f"{_weasyprint_version()}\0{RENDER_VERSION}\0{job.pdf_variant or ''}\0".encode()
    return hashlib.sha256(seed + job.html.encode("utf-8")).hexdigest()


class ChunkRenderer:
    """Renders many HTML documents, from the cache when it can, in worker processes when it
    must, each within the limits; results are PDFs or :class:`Failure`."""

    def __init__(
        self, cache_dir: Path | None, jobs: int, limits: RenderLimits | None = None
    ) -> None:
        self.cache_dir = cache_dir
        self.jobs = max(1, jobs)
        self.limits = limits or RenderLimits()
        self.rendered = 0
        self.cached = 0
        self.refused: list[str] = []
        self.worker_peak_mb = 0.0  # the largest worker's peak RSS
        self.worker_cpu = 0.0  # CPU seconds the workers spent rendering

    def render(
        self, jobs: Sequence[Job], progress: Callable[[int], None] | None = None
    ) -> list[bytes | Failure]:
        results: list[bytes | Failure | None] = [None] * len(jobs)
        keys = [_cache_key(j) for j in jobs]
        todo: list[int] = []
        for i, key in enumerate(keys):
            cached = self._read_cache(key)
            if cached is not None:
                results[i] = cached
                self.cached += 1
                if progress:
                    progress(1)
            else:
                todo.append(i)
        # Longest first, so that no core idles at the end on one big part.
        todo.sort(key=lambda i: -len(jobs[i].html))
        for i, pdf, refused, failure, peak, cpu in self._run([(i, jobs[i]) for i in todo]):
            self.worker_peak_mb = max(self.worker_peak_mb, peak)
            self.worker_cpu += cpu
            if failure is not None:
                results[i] = failure
            else:
                assert pdf is not None
                results[i] = self._done(keys[i], pdf, refused)
            if progress:
                progress(1)
        self.rendered += len(todo)
        assert all(r is not None for r in results)
        return [r for r in results if r is not None]

    def _run(self, tasks: list[tuple[int, Job]], workers: int | None = None) -> list[Outcome]:
        if not tasks:
            return []
        context = _context()
        seconds = self.limits.seconds
        # multiprocessing.Pool, not ProcessPoolExecutor: on Python 3.11 the executor can
        # hang when a worker retires after max_tasks_per_child. Retiring workers gives
        # WeasyPrint's memory back; each worker dies with this process.
        pool = context.Pool(
            min(workers or self.jobs, len(tasks)),
            initializer=_init_worker,
            initargs=(self.limits.memory_mb * 1024 * 1024,),
            maxtasksperchild=8,
        )
        outcomes: list[Outcome] = []
        stuck = False
        try:
            pending = {i: pool.apply_async(_render_job, ((i, job, seconds),)) for i, job in tasks}
            last = time.monotonic()
            while pending:
                ready = [i for i, r in pending.items() if r.ready()]
                if not ready:
                    # Untimed parts (our own front and back matter) may take long;
                    # a worker silent past the limit and a grace period is stuck or dead.
                    if any(job.limited for _i, job in tasks) and (
                        time.monotonic() - last > seconds + GRACE_SECONDS
                    ):
                        stuck = True
                        break
                    next(iter(pending.values())).wait(0.05)
                    continue
                for i in ready:
                    try:
                        outcomes.append(pending.pop(i).get())
                    except Exception as exc:  # noqa: BLE001 - e.g. a result that did not pickle
                        outcomes.append((i, None, [], Failure("error", type(exc).__name__), 0, 0))
                last = time.monotonic()
        finally:
            if stuck:
                pool.terminate()
            else:
                pool.close()
            pool.join()
        if stuck and len(tasks) == 1:
            outcomes.append((tasks[0][0], None, [], Failure("stopped"), 0.0, 0.0))
        elif stuck:
            # Which of the unfinished parts hung is not known: each again, alone.
            for task in tasks:
                if task[0] in pending:
                    outcomes += self._run([task], workers=1)
        return outcomes

    def _done(self, key: str, pdf: bytes, refused: list[str]) -> bytes:
        self.refused.extend(refused)
        if self.cache_dir is not None and not refused:
            write_atomic(private_dir(self.cache_dir) / f"{key}.pdf", pdf)
        return pdf

    def _read_cache(self, key: str) -> bytes | None:
        if self.cache_dir is None:
            return None
        path = self.cache_dir / f"{key}.pdf"
        try:
            return path.read_bytes()
        except FileNotFoundError:
            return None
