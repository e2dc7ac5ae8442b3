"""Rendering HTML to PDF in worker processes, from a page cache when it can, within limits.

Every WeasyPrint call of an export runs in a pool of worker processes (forkserver),
so the exporting process never holds a laid-out document and both cores work.
Each worker runs under a memory limit (``RLIMIT_AS``) and each exhibit chunk under
a time limit (``SIGALRM`` in the worker; the parent gives up on a worker that stops
answering and recycles the pool), so one hostile email cannot stall an export: a
part that fails comes back as a :class:`Failure` for the caller to deal with.

Finished PDFs are cached under EVIDENCE_HOME/cache/render by the SHA-256 of
their HTML (with the versions of the software that renders it, see ``software``).
"""

from __future__ import annotations

import hashlib
import multiprocessing
import os
import resource
import shutil
import signal
import tempfile
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import FrameType
from typing import Any

from evidence.config import Config
from evidence.errors import EvidenceError
from evidence.files import private_dir, write_synced
from evidence.render.software import render_fingerprint
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
    section = config.render
    default = RenderLimits()
    try:
        seconds = float(
            env.get("EVIDENCE_RENDER_TIME_LIMIT") or section.time_limit or default.seconds
        )
        memory = int(
            env.get("EVIDENCE_RENDER_MEMORY_MB") or section.memory_limit_mb or default.memory_mb
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
class LazyJob:
    """A job whose HTML is made only when its turn comes (``make``), so that an export
    never holds the HTML of every part at once; ``cost`` orders the work (largest first)."""

    make: Callable[[], Job]
    cost: float = 0.0


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


# index, the PDF's file, refused URLs, failure, the worker's peak RSS (MB), CPU seconds
Outcome = tuple[int, Path | None, list[str], Failure | None, float, float]


def _peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _render_job(task: tuple[int, Job, float, Path]) -> Outcome:
    """Render in the worker and write the PDF to ``target``: the parent gets a file name,
    not megabytes through a pipe."""
    index, job, seconds, target = task
    cpu = time.process_time()
    try:
        if job.limited:
            signal.setitimer(signal.ITIMER_REAL, seconds)
        try:
            pdf, refused = render_pdf(job.html, job.pdf_variant)
        finally:
            signal.setitimer(signal.ITIMER_REAL, 0)
        write_synced(target, pdf)  # it may be renamed into the cache
        return index, target, refused, None, _peak_mb(), time.process_time() - cpu
    except _TimeUp:
        failure = Failure("time", f"{seconds:g} s")
    except MemoryError:
        failure = Failure("memory")
    except RecursionError:
        failure = Failure("error", "RecursionError: nested too deeply")
    except Exception as exc:  # any renderer failure becomes a placeholder
        failure = Failure("error", type(exc).__name__)
    return index, None, [], failure, _peak_mb(), time.process_time() - cpu


# --- in the exporting process ----------------------------------------------------------


# An AF_UNIX socket's path holds at most 107 bytes, and the fork server's socket is made in
# a folder under the temporary folder: a long TMPDIR ("AF_UNIX path too long") gets /tmp.
_SOCKET_DIR_ROOM = 60


def _socket_folder() -> None:
    """Have multiprocessing make its folder (the fork server's socket goes there) in /tmp
    when TMPDIR is too long for a socket's path. Only the socket goes there."""
    import tempfile
    from multiprocessing import util

    if len(tempfile.gettempdir()) <= _SOCKET_DIR_ROOM or not os.access("/tmp", os.W_OK):
        return
    before = tempfile.tempdir
    tempfile.tempdir = "/tmp"
    try:
        util.get_temp_dir()  # made now, in /tmp, and kept for this process
    finally:
        tempfile.tempdir = before


def _context() -> Any:
    _socket_folder()
    context = multiprocessing.get_context("forkserver")
    context.set_forkserver_preload(["weasyprint", "evidence.render.pool"])
    return context


def start_workers() -> None:
    """Start the fork server now: it imports WeasyPrint (a second or two) while the
    caller reads the store, instead of when the first part is due."""
    _context()
    from multiprocessing import forkserver

    forkserver.ensure_running()


def _cache_key(job: Job) -> str:
    """The page cache's key: the HTML, and the versions of everything that renders it
    (the same HTML rendered by another pydyf or HarfBuzz is other bytes)."""
    seed = f"{render_fingerprint()}\0{RENDER_VERSION}\0{job.pdf_variant or ''}\0".encode()
    return hashlib.sha256(seed + job.html.encode("utf-8")).hexdigest()


class ChunkRenderer:
    """Renders many HTML documents, from the cache when it can, in worker processes when it
    must, each within the limits; results are PDF files or :class:`Failure`.

    The files are in the cache (``cache_dir``) or, when there is none or a part loaded
    something it must not, in a scratch folder of this renderer, removed by
    :meth:`close`. At most a few parts are on their way to the workers at any time.
    :meth:`render` renders a list of parts; :meth:`submit` starts parts without waiting,
    so that a caller can prepare the next ones while they render, and :meth:`results`
    waits for them.
    """

    def __init__(
        self,
        cache_dir: Path | None,
        jobs: int,
        limits: RenderLimits | None = None,
        scratch_root: Path | None = None,
    ) -> None:
        self.cache_dir = cache_dir
        self.jobs = max(1, jobs)
        self.limits = limits or RenderLimits()
        self.rendered = 0
        self.cached = 0
        self.refused: list[str] = []
        self.worker_peak_mb = 0.0  # the largest worker's peak RSS
        self.worker_cpu = 0.0  # CPU seconds the workers spent rendering
        if cache_dir is not None:
            private_dir(cache_dir)
        self._scratch_root = scratch_root or cache_dir
        self._scratch: Path | None = None  # made when the first part is rendered
        self._serial = 0
        # Jobs submitted and not yet handed to a worker, the workers at them, and the
        # results not yet asked for, by ticket.
        self._tickets = 0
        self._queue: deque[tuple[int, Job | LazyJob]] = deque()
        self._run: _Run | None = None
        self._results: dict[int, Path | Failure] = {}
        self._progress: Callable[[int], None] | None = None

    def close(self) -> None:
        """Stop any rendering still going on (an export that failed while its parts were
        rendering) and remove the scratch folder."""
        if self._run is not None:
            self._run.stop()
            self._run = None
        self._queue.clear()
        if self._scratch is not None:
            shutil.rmtree(self._scratch, ignore_errors=True)
            self._scratch = None

    def __enter__(self) -> ChunkRenderer:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()

    def render(
        self,
        jobs: Sequence[Job | LazyJob],
        progress: Callable[[int], None] | None = None,
    ) -> list[Path | Failure]:
        return self.results(self.submit(jobs, progress))

    def submit(
        self,
        jobs: Sequence[Job | LazyJob],
        progress: Callable[[int], None] | None = None,
    ) -> list[int]:
        """Queue ``jobs`` after those queued before, largest first, and hand the workers
        what they can take now without waiting: the caller goes on preparing the next
        parts while these render. Returns a ticket for each job, for :meth:`results`."""
        tickets = list(range(self._tickets, self._tickets + len(jobs)))
        self._tickets += len(jobs)
        # Largest first, so that no core idles at the end on one big part.
        for i in sorted(range(len(jobs)), key=lambda i: -_cost(jobs[i])):
            self._queue.append((tickets[i], jobs[i]))
        self._progress = progress
        self._feed(wait=False)
        return tickets

    def results(self, tickets: Sequence[int]) -> list[Path | Failure]:
        """Render everything queued and wait for it; the results of ``tickets``, in order."""
        self._feed(wait=True)
        return [self._results.pop(t) for t in tickets]

    def _feed(self, *, wait: bool) -> None:
        """Hand queued jobs to the workers (from the cache when it can); without ``wait``,
        only while a worker can take one, and collect only what is finished."""
        run = self._run or _Run(self)
        self._run = run
        for outcome in run.poll():
            self._finish(outcome, run)
        while self._queue and (wait or not run.full()):
            ticket, entry = self._queue.popleft()
            job = entry.make() if isinstance(entry, LazyJob) else entry
            key = _cache_key(job)
            cached = self._cached(key)
            if cached is not None:
                self._results[ticket] = cached
                self.cached += 1
                if self._progress:
                    self._progress(1)
                continue
            for outcome in run.submit(ticket, key, job):
                self._finish(outcome, run)
        if wait:
            self._run = None
            for outcome in run.drain():
                self._finish(outcome, run)

    def _finish(self, outcome: Outcome, run: _Run) -> None:
        i, path, refused, failure, peak, cpu = outcome
        self.worker_peak_mb = max(self.worker_peak_mb, peak)
        self.worker_cpu += cpu
        self.rendered += 1
        key = run.keys.pop(i)
        if failure is not None:
            self._results[i] = failure
        else:
            assert path is not None
            self._results[i] = self._keep(key, path, refused)
        if self._progress:
            self._progress(1)

    def scratch_file(self, suffix: str = ".pdf") -> Path:
        if self._scratch is None:
            root = self._scratch_root
            if root is not None:
                private_dir(root)
                _remove_stale_scratch(root)
            self._scratch = Path(tempfile.mkdtemp(prefix=SCRATCH_PREFIX, dir=root))
        self._serial += 1
        return self._scratch / f"{self._serial:06d}{suffix}"

    def _keep(self, key: str, path: Path, refused: list[str]) -> Path:
        self.refused.extend(refused)
        if self.cache_dir is None or refused:
            return path  # a part that tried to load something is never cached
        final = self.cache_dir / f"{key}.pdf"
        os.replace(path, final)
        return final

    def _cached(self, key: str) -> Path | None:
        if self.cache_dir is None:
            return None
        path = self.cache_dir / f"{key}.pdf"
        return path if path.is_file() else None


SCRATCH_PREFIX = ".scratch-"


def _remove_stale_scratch(root: Path, age: float = 86400.0) -> None:
    """Scratch folders of exports that were killed (a finished export removes its own)."""
    for folder in root.glob(f"{SCRATCH_PREFIX}*"):
        try:
            if time.time() - folder.stat().st_mtime > age:
                shutil.rmtree(folder, ignore_errors=True)
        except FileNotFoundError:
            continue  # another export removed it


def _cost(entry: Job | LazyJob) -> float:
    return entry.cost if isinstance(entry, LazyJob) else float(len(entry.html))


class _Run:
    """Parts on their way through a pool of workers (until the renderer waits for them
    all): a few at a time (their HTML is held until a worker has it), and a worker that stops
    answering is given up on."""

    def __init__(self, renderer: ChunkRenderer) -> None:
        self.renderer = renderer
        self.window = 2 * renderer.jobs
        self.pool: Any = None
        self.pending: dict[int, tuple[Any, Job, Path]] = {}
        self.keys: dict[int, str] = {}
        self.last = time.monotonic()

    def submit(self, index: int, key: str, job: Job) -> list[Outcome]:
        done = []
        while len(self.pending) >= self.window:
            done += self._collect()
        if self.pool is None:
            self.pool = self._start(self.renderer.jobs)
            self.last = time.monotonic()
        target = self.renderer.scratch_file()
        task = (index, job, self.renderer.limits.seconds, target)
        self.pending[index] = (self.pool.apply_async(_render_job, (task,)), job, target)
        self.keys[index] = key
        return done

    def full(self) -> bool:
        return len(self.pending) >= self.window

    def poll(self) -> list[Outcome]:
        """The results that are ready, without waiting."""
        ready = [i for i, (r, _j, _t) in self.pending.items() if r.ready()]
        return self._take(ready) if ready else []

    def stop(self) -> None:
        if self.pool is not None:
            self.pool.terminate()
            self.pool.join()
            self.pool = None
        for _result, _job, target in self.pending.values():
            target.unlink(missing_ok=True)
        self.pending.clear()

    def drain(self) -> list[Outcome]:
        done: list[Outcome] = []
        try:
            while self.pending:
                done += self._collect()
        finally:
            if self.pool is not None:
                self.pool.close()
                self.pool.join()
                self.pool = None
        return done

    def _start(self, workers: int) -> Any:
        limits = self.renderer.limits
        # multiprocessing.Pool, not ProcessPoolExecutor: on Python 3.11 the executor can
        # hang when a worker retires after max_tasks_per_child. Retiring workers gives
        # WeasyPrint's memory back; each worker dies with this process.
        return _context().Pool(
            workers,
            initializer=_init_worker,
            initargs=(limits.memory_mb * 1024 * 1024,),
            maxtasksperchild=8,
        )

    def _patience(self) -> float:
        """How long to wait for the next result before deciding a worker is stuck or
        dead: an exhibit chunk stops itself at the time limit; our own front and back
        matter (unlimited, in parts of a few pages) gets four times as long."""
        seconds = self.renderer.limits.seconds
        unlimited = any(not job.limited for _r, job, _t in self.pending.values())
        return (4 * seconds if unlimited else seconds) + GRACE_SECONDS

    def _collect(self) -> list[Outcome]:
        """Wait for at least one result."""
        while True:
            ready = [i for i, (r, _j, _t) in self.pending.items() if r.ready()]
            if ready:
                break
            if time.monotonic() - self.last > self._patience():
                return self._stuck()
            next(iter(self.pending.values()))[0].wait(0.05)
        return self._take(ready)

    def _take(self, ready: list[int]) -> list[Outcome]:
        done: list[Outcome] = []
        for i in ready:
            result, _job, target = self.pending.pop(i)
            try:
                done.append(result.get())
            except Exception as exc:  # e.g. a result that did not pickle
                target.unlink(missing_ok=True)
                done.append((i, None, [], Failure("error", type(exc).__name__), 0.0, 0.0))
        self.last = time.monotonic()
        return done

    def _stuck(self) -> list[Outcome]:
        """Which of the unfinished parts hung is not known: stop the pool and run each of
        them again alone (a part alone that stops answering has ``stopped``)."""
        self.pool.terminate()
        self.pool.join()
        self.pool = None
        tasks = list(self.pending.items())
        self.pending.clear()
        done: list[Outcome] = []
        for index, (_result, job, target) in tasks:
            target.unlink(missing_ok=True)
            if len(tasks) == 1:
                done.append((index, None, [], Failure("stopped"), 0.0, 0.0))
                continue
            alone = _Run(self.renderer)
            alone.pool = alone._start(1)
            alone.pending[index] = (
                alone.pool.apply_async(
                    _render_job, ((index, job, self.renderer.limits.seconds, target),)
                ),
                job,
                target,
            )
            done += alone.drain()
        self.last = time.monotonic()
        return done
