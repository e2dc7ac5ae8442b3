"""Call recordings, linked to calls by the call id (Asterisk uniqueid, FreeSWITCH uuid,
an export's call id) in their file name, or by a pattern that finds it there.

Each file is stored byte-exact with its SHA-256 and, where the format says, its
duration. A recording whose call is not in the store is kept and reported: it
is linked when that call's log is imported (calls are derived when read).
"""

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
from evidence.store.models import CallRecord, CdrRecord, ImportRun, QueueEvent, Recording
from evidence.timeutil import utcnow

KIND = "recordings"
AUDIO_TYPES = {
    ".wav": "audio/wav",
    ".mp3": "audio/mpeg",
    ".ogg": "audio/ogg",
    ".gsm": "audio/gsm",
}
_UNIQUEID = re.compile(
    r"(\d{9,11}\.\d+|[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12})"
)
# MPEG audio: samples per frame and bit rates (kbit/s) by version and layer.
_MP3_BITRATES = {
    (1, 1): (0, 32, 64, 96, 128, 160, 192, 224, 256, 288, 320, 352, 384, 416, 448),
    (1, 2): (0, 32, 48, 56, 64, 80, 96, 112, 128, 160, 192, 224, 256, 320, 384),
    (1, 3): (0, 32, 40, 48, 56, 64, 80, 96, 112, 128, 160, 192, 224, 256, 320),
    (2, 1): (0, 32, 48, 56, 64, 80, 96, 112, 128, 144, 160, 176, 192, 224, 256),
    (2, 2): (0, 8, 16, 24, 32, 40, 48, 56, 64, 80, 96, 112, 128, 144, 160),
}
_MP3_RATES = {1: (44100, 48000, 32000), 2: (22050, 24000, 16000), 25: (11025, 12000, 8000)}


def wav_duration(data: bytes) -> float | None:
    with contextlib.suppress(wave.Error, EOFError), wave.open(io.BytesIO(data)) as wav:
        rate = wav.getframerate()
        return round(wav.getnframes() / rate, 3) if rate else None
    return None


def gsm_duration(data: bytes) -> float | None:
    """Raw GSM 06.10: 33-byte frames of 20 ms."""
    return round(len(data) / 33 * 0.02, 3) if data and len(data) % 33 == 0 else None


def ogg_duration(data: bytes) -> float | None:
    """Ogg Vorbis or Opus: the last page's granule position over the sample rate."""
    if not data.startswith(b"OggS"):
        return None
    if b"\x01vorbis" in data[:512]:
        at = data.index(b"\x01vorbis") + 7
        rate = int.from_bytes(data[at + 5 : at + 9], "little")
        skip = 0
    elif b"OpusHead" in data[:512]:
        at = data.index(b"OpusHead")
        rate, skip = 48000, int.from_bytes(data[at + 10 : at + 12], "little")
    else:
        return None
    last = data.rfind(b"OggS")
    granule = int.from_bytes(data[last + 6 : last + 14], "little", signed=True)
    if rate <= 0 or granule <= 0:
        return None
    return round((granule - skip) / rate, 3)


def mp3_duration(data: bytes) -> float | None:
    """MPEG audio: the sum of its frames' lengths (constant or variable bit rate)."""
    pos = 0
    if data.startswith(b"ID3") and len(data) > 10:
        size = 0
        for byte in data[6:10]:
            size = (size << 7) | (byte & 0x7F)
        pos = 10 + size
    seconds, frames = 0.0, 0
    while pos + 4 <= len(data):
        header = int.from_bytes(data[pos : pos + 4], "big")
        if header >> 21 != 0x7FF:
            break
        version_bits, layer_bits = (header >> 19) & 3, (header >> 17) & 3
        version = {3: 1, 2: 2, 0: 25}.get(version_bits)
        layer = {3: 1, 2: 2, 1: 3}.get(layer_bits)
        rate_index, bitrate_index = (header >> 10) & 3, (header >> 12) & 15
        if version is None or layer is None or rate_index == 3 or bitrate_index in (0, 15):
            break
        table = _MP3_BITRATES[(1, layer)] if version == 1 else _MP3_BITRATES[(2, min(layer, 2))]
        bitrate = table[bitrate_index] * 1000
        rate = _MP3_RATES[version][rate_index]
        padding = (header >> 9) & 1
        if layer == 1:
            samples, length = 384, (12 * bitrate // rate + padding) * 4
        else:
            samples = 1152 if version == 1 or layer == 2 else 576
            length = samples // 8 * bitrate // rate + padding
        if length <= 0:
            break
        seconds += samples / rate
        frames += 1
        pos += length
    return round(seconds, 3) if frames else None


def audio_duration(data: bytes, content_type: str) -> float | None:
    return {
        "audio/wav": wav_duration,
        "audio/gsm": gsm_duration,
        "audio/ogg": ogg_duration,
        "audio/mpeg": mp3_duration,
    }[content_type](data)


def import_recordings(store: Store, directory: Path, pattern: str | None = None) -> ImportReport:
    """Store every audio file under ``directory`` byte-exact and link it to its call.

    ``pattern`` is a regular expression searched in the file name: its group
    named ``id`` (or else its first group, or else the whole match) is the
    call id. By default the first Asterisk uniqueid (``<digits>.<digits>``) or
    UUID in the name. Recordings whose call is not in the store are listed in
    ``report.unmatched``.
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
            _import_file(session, path, matcher, report, run)
        run.finished_at = utcnow()
        run.imported, run.duplicates, run.quarantined = (
            report.imported,
            report.duplicates,
            report.quarantined,
        )
        write_checkpoint(session, store.config, "import recordings")
    return report


def _import_file(
    session: Session, path: Path, matcher: re.Pattern[str], report: ImportReport, run: ImportRun
) -> None:
    """Store one file as a recording (or quarantine it, or count it as a duplicate)."""
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
        return
    digest = sha256_hex(data)
    if session.scalar(select(Recording.id).where(Recording.sha256 == digest)):
        report.duplicates += 1
        return
    match = matcher.search(path.name)
    uniqueid = _call_id(match) if match else None
    recording = Recording(
        uniqueid=uniqueid,
        filename=path.name,
        content_type=content_type,
        size=len(data),
        duration=audio_duration(data, content_type),
        sha256=put_blob(session, data),
        imported_at=utcnow(),
    )
    ledger.add(session, recording)
    report.imported += 1
    if uniqueid is None or not _call_exists(session, uniqueid):
        report.unmatched.append(
            f"{path}: stored, but no call with id {uniqueid or '(none in the name)'} "
            "is in the store; it will be linked when that call is imported"
        )


def _call_id(match: re.Match[str]) -> str | None:
    if "id" in match.re.groupindex:
        return match.group("id")
    return match.group(1) if match.re.groups else match.group(0)


def _call_exists(session: Session, uniqueid: str) -> bool:
    queries = (
        select(CdrRecord.id).where(CdrRecord.uniqueid == uniqueid),
        select(CdrRecord.id).where(CdrRecord.linkedid == uniqueid),
        select(QueueEvent.id).where(QueueEvent.uniqueid == uniqueid),
        select(CallRecord.id).where(CallRecord.call_id == uniqueid),
        select(CallRecord.id).where(CallRecord.linked_id == uniqueid),
    )
    return any(session.scalar(q.limit(1)) is not None for q in queries)
