"""Call recordings, linked to calls by the Asterisk uniqueid in their file name."""

from __future__ import annotations

import contextlib
import io
import re
import wave
from pathlib import Path

from sqlalchemy import select
from sqlalchemy.orm import Session

from evidence.errors import InvalidInput
from evidence.ingest import ImportReport, quarantine, start_run
from evidence.store import ledger
from evidence.store.blobs import put_blob, sha256_hex
from evidence.store.checkpoints import write_checkpoint
from evidence.store.db import Store
from evidence.store.models import CdrRecord, QueueEvent, Recording
from evidence.timeutil import utcnow

KIND = "recordings"
AUDIO_TYPES = {
    ".wav": "audio/wav",
    ".mp3": "audio/mpeg",
    ".ogg": "audio/ogg",
    ".gsm": "audio/gsm",
}
_UNIQUEID = re.compile(r"(\d{9,11}\.\d+)")


def wav_duration(data: bytes) -> float | None:
    with contextlib.suppress(wave.Error, EOFError), wave.open(io.BytesIO(data)) as wav:
        rate = wav.getframerate()
        return round(wav.getnframes() / rate, 3) if rate else None
    return None


def import_recordings(store: Store, directory: Path, pattern: str | None = None) -> ImportReport:
    """Store every audio file under ``directory`` byte-exact and link it to its call.

    ``pattern`` is a regular expression whose first group is the uniqueid; by
    default the first ``<digits>.<digits>`` in the file name.
    """
    if not directory.is_dir():
        raise InvalidInput(f"{directory} is not a directory of recordings")
    try:
        matcher = re.compile(pattern) if pattern else _UNIQUEID
    except re.error as exc:
        raise InvalidInput(f"--pattern is not a valid regular expression: {exc}") from exc
    report = ImportReport()
    with store.writing() as session:
        run = start_run(session, KIND, str(directory))
        for path in sorted(p for p in directory.rglob("*") if p.is_file()):
            content_type = AUDIO_TYPES.get(path.suffix.lower())
            data = path.read_bytes()
            if content_type is None:
                quarantine(
                    session,
                    report,
                    kind=KIND,
                    source=str(path),
                    locator=None,
                    reason=f"not a recording (expected {', '.join(sorted(AUDIO_TYPES))})",
                    raw=data,
                    run=run,
                )
                continue
            digest = sha256_hex(data)
            if session.scalar(select(Recording.id).where(Recording.sha256 == digest)):
                report.duplicates += 1
                continue
            match = matcher.search(path.name)
            uniqueid = match.group(1) if match else None
            recording = Recording(
                uniqueid=uniqueid,
                filename=path.name,
                content_type=content_type,
                size=len(data),
                duration=wav_duration(data) if content_type == "audio/wav" else None,
                sha256=put_blob(session, data),
                imported_at=utcnow(),
            )
            session.add(recording)
            session.flush()
            ledger.append(session, recording)
            report.imported += 1
            if uniqueid is None or not _call_exists(session, uniqueid):
                report.messages.append(
                    f"{path}: stored, but no call with uniqueid {uniqueid or '(none in name)'} "
                    "is in the store yet; it will be linked when that call is imported"
                )
        run.finished_at = utcnow()
        run.imported, run.duplicates, run.quarantined = (
            report.imported,
            report.duplicates,
            report.quarantined,
        )
        write_checkpoint(session, store.config, "import recordings")
    return report


def _call_exists(session: Session, uniqueid: str) -> bool:
    return (
        session.scalar(select(CdrRecord.id).where(CdrRecord.uniqueid == uniqueid).limit(1))
        is not None
        or session.scalar(select(QueueEvent.id).where(QueueEvent.uniqueid == uniqueid).limit(1))
        is not None
    )
