"""What the dossier shows of each item: plain dicts for the templates, in the dossier's language.

Reading the store happens here (raw bytes, hash-checked); the templates only lay out.
"""

from __future__ import annotations

import datetime as dt
import hashlib
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy.orm import Session

from evidence.domain import outcome_label, service_state_label
from evidence.errors import IntegrityFailure
from evidence.ingest.mime import MailLimits
from evidence.render.attachments import show
from evidence.render.i18n import Formatter
from evidence.render.mailbody import Body, extract_body
from evidence.store.blobs import read_blob
from evidence.store.models import (
    Email,
    EmailAttachment,
    Incident,
    ReceivedSource,
    SmtpDelivery,
)
from evidence.timeline.calls import AgentPause, Call
from evidence.timeline.history import Item, Timeline
from evidence.timeline.mailfacts import Placement

Translate = Callable[[str], str]


@dataclass
class Embedded:
    """An original embedded in the dossier, byte for byte.

    Its bytes are read again when they are written (``load`` gives them, in one piece
    or several), not held: a long history's originals are hundreds of MB. ``chunks``
    and ``read`` check them against the SHA-256 and size taken when the dossier was
    prepared, which its manifest states."""

    name: str
    mime_type: str
    description: str
    exhibit: str
    sha256: str
    size: int
    load: Callable[[], Iterable[bytes]] = field(repr=False, compare=False)

    @classmethod
    def of(cls, name: str, data: bytes, mime_type: str, description: str, exhibit: str) -> Embedded:
        """An original held in memory (a file made for the dossier)."""
        digest = hashlib.sha256(data).hexdigest()
        return cls(name, mime_type, description, exhibit, digest, len(data), lambda: (data,))

    @property
    def data(self) -> bytes:
        return self.read()

    def read(self) -> bytes:
        """The bytes, read again and checked."""
        return b"".join(self.chunks())

    def chunks(self) -> Iterator[bytes]:
        """The bytes in pieces, read again; checked when the last piece is read."""
        digest = hashlib.sha256()
        size = 0
        for chunk in self.load():
            digest.update(chunk)
            size += len(chunk)
            yield chunk
        if size != self.size or digest.hexdigest() != self.sha256:
            raise IntegrityFailure(
                f"{self.name} is not what the dossier was prepared from "
                f"(SHA-256 {self.sha256}): run `evidence verify`"
            )


@dataclass
class Insert:
    """A PDF whose pages go right after the slip sheet with ``anchor``."""

    anchor: str
    data: bytes
    max_pages: int


@dataclass
class Exhibit:
    number: str  # E-001 ...
    anchor: str  # the named destination of the exhibit in the PDF
    item: Item
    view: dict[str, Any]
    day: dt.date  # local calendar day
    title: str  # one line, for the index and the bookmarks
    # Set when the exhibit's pages could not be rendered: what happened, where the original is.
    placeholder: dict[str, Any] | None = None


def exhibit_number(index: int) -> str:
    """The exhibit number of the ``index``-th item (from 1) of a timeline."""
    return f"E-{index:03d}"


def safe_name(text: str) -> str:
    keep = "".join(c if c.isalnum() or c in "-_." else "_" for c in text)
    return keep.strip("._")[:80] or "file"


@dataclass
class ViewBuilder:
    session: Session
    fmt: Formatter
    _: Translate
    embedded: list[Embedded] = field(default_factory=list)
    inserts: list[Insert] = field(default_factory=list)
    mail_limits: MailLimits | None = None  # the store's [mail.limits], as at import
    # Reads a blob by its SHA-256 when the dossier is written; without it, the
    # originals from the store are held in memory.
    read_later: Callable[[str], bytes] | None = None

    def embed(self, name: str, data: bytes, mime: str, description: str, exhibit: str) -> str:
        self.embedded.append(Embedded.of(name, data, mime, description, exhibit))
        return name

    def embed_blob(
        self, name: str, digest: str, data: bytes, mime: str, description: str, exhibit: str
    ) -> str:
        """Embed a blob of the store (``data``, read by its SHA-256 ``digest``)."""
        reader = self.read_later
        if reader is None:
            return self.embed(name, data, mime, description, exhibit)
        self.embedded.append(
            Embedded(name, mime, description, exhibit, digest, len(data), lambda: (reader(digest),))
        )
        return name

    # -- labels that depend on values --------------------------------------------

    def direction(self, value: str) -> str:
        _ = self._
        return {"inbound": _("inbound"), "outbound": _("outbound"), "internal": _("internal")}[
            value
        ]

    def outcome(self, value: str) -> str:
        return outcome_label(value, self._)

    def time_flag(self, call: Call) -> str | None:
        _ = self._
        if not call.time_flag:
            return None
        texts = {
            "ambiguous-resolved-by-uniqueid": _(
                "The local time {local} occurs twice (end of summer time). The instant was "
                "resolved from the Unix time in the call's uniqueid: {resolved}."
            ),
            "ambiguous-unresolved": _(
                "The local time {local} occurs twice (end of summer time) and the source does "
                "not tell which: {resolved} is the earlier of the two; it may be an hour later."
            ),
            "ambiguous-resolved-by-duration": _(
                "The local time {local} falls on a daylight-saving change. The instant was "
                "resolved from the call's unambiguous end time and the duration the phone "
                "system recorded: {resolved}."
            ),
            "ambiguous-resolved-by-queue-log": _(
                "The local time {local} occurs twice (end of summer time). The instant was "
                "resolved from the Unix times in the same call's queue_log: {resolved}."
            ),
            "nonexistent-resolved-by-uniqueid": _(
                "The local time {local} does not exist (start of summer time). The instant was "
                "resolved from the Unix time in the call's uniqueid: {resolved}."
            ),
            "nonexistent-unresolved": _(
                "The local time {local} does not exist (start of summer time) and the source "
                "does not tell the instant: {resolved} is an estimate."
            ),
        }
        text = texts.get(call.time_flag, call.time_flag)
        return text.format(local=call.start_local or "", resolved=self.fmt.local(call.started_at))

    # -- items -------------------------------------------------------------------

    def placement(self, placed: Placement) -> tuple[str, str]:
        """The label of an email's placed time, and where the time came from, in words."""
        _ = self._
        if placed.source is ReceivedSource.RECEIVED_HEADER:
            host = placed.host or _("a server not named in the line")
            if placed.unmatched:
                detail = _(
                    "the topmost Received header (by {host}): no Received header names one "
                    "of the configured receiving hosts"
                )
            elif placed.by_receiving_host:
                detail = _("the Received header added by our receiving host {host}")
            else:
                detail = _("the topmost Received header: the last hop into the mailbox, by {host}")
            return _("Received"), detail.format(host=host)
        if placed.source is ReceivedSource.SMTP_RECEIVER:
            return _("Received"), _(
                "our own SMTP receiver took the message at this time (the mail server's "
                "journal copy); its envelope is below"
            )
        if placed.source is ReceivedSource.OWN_DATE:
            return _("Sent from our system"), _(
                "our own outgoing message: its Date header is our system's clock"
            )
        if placed.source is ReceivedSource.DATE_HEADER:
            return _("Dated (no Received header)"), _(
                "the message has no Received header: this is the sender's Date header"
            )
        return _("Imported (no receive information)"), _(
            "the message has neither a Received nor a Date header; this is the import time"
        )

    def email(self, number: str, item: Item, mail: Email) -> dict[str, Any]:
        _ = self._
        raw = read_blob(self.session, mail.raw_sha256)
        body: Body = extract_body(raw, self.mail_limits)
        name = self.embed_blob(
            f"{number}-email-{mail.raw_sha256[:12]}.eml",
            mail.raw_sha256,
            raw,
            "message/rfc822",
            f"{number}: {mail.subject or ''}"[:200],
            number,
        )
        if mail.date_header is not None:
            offset = dt.timezone(dt.timedelta(minutes=mail.date_header_offset or 0))
            date_header = self.fmt.with_offset(mail.date_header.astimezone(offset))
        elif mail.date_header_raw:
            date_header = _("unreadable: {raw}").format(raw=mail.date_header_raw)
        else:
            date_header = _("missing")
        placed = item.placement
        assert placed is not None and item.direction is not None
        received_label, received_source = self.placement(placed)
        return {
            "direction": self.direction(item.direction.value),
            "from": mail.from_display or mail.from_addr or "",
            "to": mail.to_display or "",
            "cc": mail.cc_display or "",
            "subject": mail.subject or "",
            "received_label": received_label,
            "received": self.fmt.local(placed.at),
            "received_source": received_source,
            "date_header": date_header,
            "message_id": mail.message_id or _("missing"),
            "message_id_reused": mail.message_id_reused,
            "sha256": mail.raw_sha256,
            "via_graph": (
                _(
                    "via Microsoft Graph: the MIME message was rebuilt by Microsoft, "
                    "not the bytes as received"
                )
                if mail.source.startswith("graph://")
                else None
            ),
            "body": body,
            "attachments": [
                self.attachment(number, n, a) for n, a in enumerate(mail.attachments, start=1)
            ],
            "embedded_name": name,
            "deliveries": [self.delivery(d) for d in mail.deliveries],
        }

    def delivery(self, delivery: SmtpDelivery) -> str:
        """One SMTP delivery of an email to our receiver, in words."""
        _ = self._
        text = _(
            "taken by our SMTP receiver {listener} at {at} from {peer} (HELO {helo}), {tls}; "
            "MAIL FROM {mail_from}; RCPT TO {rcpt_to}"
        )
        return text.format(
            listener=delivery.listener,
            at=self.fmt.local(delivery.received_at),
            peer=delivery.peer,
            helo=delivery.helo,
            tls=_("over TLS (STARTTLS)") if delivery.tls else _("unencrypted"),
            mail_from=f"<{delivery.mail_from}>" if delivery.mail_from else _("<> (empty)"),
            rcpt_to=", ".join(f"<{a}>" for a in delivery.rcpt_to.splitlines()),
        )

    def attachment(self, number: str, n: int, attachment: EmailAttachment) -> dict[str, Any]:
        _ = self._
        data = read_blob(self.session, attachment.sha256)
        filename = attachment.filename or _("(no name)")
        embedded = self.embed_blob(
            f"{number}-attachment-{n}-{safe_name(attachment.filename or 'file')}",
            attachment.sha256,
            data,
            attachment.content_type,
            f"{number}: attachment {filename}"[:200],
            number,
        )
        shown = show(attachment.content_type, attachment.filename, data)
        notes = {
            "too-large": _("The image is too large to draw here; the original is embedded."),
            "unreadable": _("The file cannot be read as an image; the original is embedded."),
            "encrypted": _(
                "The PDF is encrypted and cannot be opened without a password; "
                "the original is embedded."
            ),
            "damaged": _("The PDF is damaged and cannot be shown; the original is embedded."),
        }
        note = notes.get(shown.note or "")
        if shown.kind == "text" and shown.note == "truncated":
            note = _("Only the beginning is shown; the whole file is embedded.")
        if shown.kind == "pdf" and shown.note == "truncated":
            note = _(
                "Only the first {shown} of {pages} pages are appended; the whole file is embedded."
            ).format(shown=shown.pdf_appended, pages=shown.pdf_pages)
        if shown.kind == "other":
            note = _(
                "Shown as a file only: the original is embedded in this PDF and was never "
                "opened or run."
            )
        anchor = f"{number}-attachment-{n}"
        if shown.kind == "pdf" and shown.pdf_appended:
            self.inserts.append(Insert(anchor, data, shown.pdf_appended))
        return {
            "filename": filename,
            "content_type": attachment.content_type,
            "size": self.fmt.number(attachment.size),
            "sha256": attachment.sha256,
            "embedded_name": embedded,
            "shown": shown,
            "note": note,
            "anchor": anchor,
        }

    def agents(self, item: Item) -> str | None:
        """How many agents were free when a call started, and who was paused why."""
        state = item.availability
        if state is None:
            return None
        logged_in = self._("logged in")
        paused = "".join(f"; {a}: {r}" for a, r in sorted(state.paused.items()))
        return f"{len(state.available)} ({logged_in} {len(state.logged_in)}{paused})"

    def call(self, number: str, item: Item, call: Call) -> dict[str, Any]:
        _ = self._
        lines = b"\n".join(line.raw for line in call.source_lines) + b"\n"
        lines_name = self.embed(
            f"{number}-call-{safe_name(call.uniqueid)}-lines.txt",
            lines,
            "text/plain",
            f"{number}: phone-system lines of call {call.uniqueid}",
            number,
        )
        recordings = self.recordings(number, call)
        return {
            "direction": self.direction(call.direction.value),
            "number": call.number or call.number_raw or _("hidden number"),
            "queue": call.queue,
            "queue_wait": self.fmt.duration(call.queue_wait),
            "queue_wait_source": call.queue_wait_source,
            "talk_time": self.fmt.duration(call.talk_time),
            "talk_time_source": call.talk_time_source,
            "outcome": self.outcome(call.outcome),
            "ring_time": self.fmt.duration(call.ring_time) if call.ring_time is not None else None,
            "ring_time_source": call.ring_time_source,
            "outcome_source": ", ".join(
                s for s in (call.outcome_source, call.outcome_recorded) if s
            ),
            "transfers": [
                f"{self.fmt.local(x.at)} {x.agent} → {x.target} ({x.kind})" for x in call.transfers
            ],
            "rang": [
                f"{self.fmt.local(r.at)} {r.agent}"
                + (f" ({self.fmt.duration(r.ring_time)})" if r.ring_time is not None else "")
                for r in call.ring_attempts
            ],
            "agents": self.agents(item),
            "agent": call.agent,
            "uniqueid": call.uniqueid,
            "local_time": call.start_local,
            "time_flag": self.time_flag(call),
            "note": call.note,
            "recordings": recordings,
            "source_lines": [
                {
                    "text": line.raw.decode("utf-8", "replace"),
                    "where": f"{Path(line.source).name}:{line.line_number}",
                }
                for line in call.source_lines
            ],
            "lines_name": lines_name,
        }

    def recordings(self, number: str, call: Call) -> list[dict[str, Any]]:
        """The call's recordings, each embedded."""
        recordings = []
        for rec in call.recordings:
            data = read_blob(self.session, rec.sha256)
            rec_name = self.embed_blob(
                f"{number}-{safe_name(rec.filename)}",
                rec.sha256,
                data,
                rec.content_type,
                f"{number}: recording of call {call.uniqueid}",
                number,
            )
            recordings.append(
                {
                    "filename": rec.filename,
                    "sha256": rec.sha256,
                    "duration": self.fmt.duration(rec.duration) if rec.duration else None,
                    "embedded_name": rec_name,
                }
            )
        return recordings

    def incident(self, number: str, item: Item, incident: Incident) -> dict[str, Any]:
        _ = self._
        names = {"phone": _("phone"), "email": _("email"), "all": _("all channels")}
        versions = item.versions or [incident]
        first = versions[0]
        history = self.incident_history(versions)
        attachments = self.incident_attachments(number, versions)
        entered_late = first.recorded_at > (first.end or first.start) + dt.timedelta(hours=1)
        return {
            "number": incident.number,
            "planned": incident.plan_id is not None,
            "rrule": incident.plan.rrule if incident.plan is not None else None,
            "corrected": any(v.change == "corrected" for v in versions),
            "history": history if len(history) > 1 else [],
            "attachments": attachments,
            "entered_late": entered_late and incident.plan_id is None,
            "title": incident.title,
            "start": self.fmt.local(incident.start),
            "end": self.fmt.local(incident.end) if incident.end else _("ongoing"),
            "channels": ", ".join(names.get(c, c) for c in incident.channel_names),
            "logged_by": incident.logged_by,
            "logged_at": self.fmt.local(incident.logged_at),
            "recorded_at": self.fmt.local(incident.recorded_at),
            "recorded_later": incident.recorded_at - incident.logged_at > dt.timedelta(minutes=10),
            "note": incident.note,
        }

    def incident_history(self, versions: list[Incident]) -> list[dict[str, Any]]:
        """Every version of an incident, oldest first: what changed, when, by whom and why."""
        _ = self._
        changes = {
            "logged": _("logged"),
            "ended": _("end logged"),
            "corrected": _("corrected"),
        }
        return [
            {
                "id": version.id,
                "kind": changes.get(version.change, version.change),
                "recorded_at": self.fmt.local(version.recorded_at),
                "by": version.changed_by,
                "reason": version.correction_reason,
                "period": f"{self.fmt.local(version.start)} – "
                + (self.fmt.local(version.end) if version.end else _("ongoing")),
                "title": version.title,
            }
            for version in versions
        ]

    def incident_attachments(self, number: str, versions: list[Incident]) -> list[dict[str, Any]]:
        """The files attached to any version of an incident, each embedded."""
        attachments = []
        for version in versions:
            for a in version.attachments:
                data = read_blob(self.session, a.sha256)
                attachments.append(
                    {
                        "filename": a.filename,
                        "content_type": a.content_type,
                        "size": self.fmt.number(a.size),
                        "sha256": a.sha256,
                        "embedded_name": self.embed_blob(
                            f"{number}-incident-{safe_name(a.filename)}",
                            a.sha256,
                            data,
                            a.content_type,
                            f"{number}: {a.filename}",
                            number,
                        ),
                    }
                )
        return attachments

    def service(self, item: Item) -> dict[str, str] | None:
        """A contact's service state in words: during an incident, outside hours, normal."""
        _ = self._
        state = item.service_state
        if state is None:
            return None
        details = [f"#{inc.number} {inc.title}" for inc in item.incidents]
        verdict = item.hours
        if verdict is not None:
            day = f"{self.fmt.weekday(verdict.local)} {self.fmt.day(verdict.local)}"
            if verdict.basis == "holiday":
                hours = _("closed, public holiday ({name})").format(name=verdict.holiday)
            else:
                hours = ", ".join(
                    f"{a // 60:02d}.{a % 60:02d}–{b // 60:02d}.{b % 60:02d}"
                    for a, b in verdict.hours
                ) or _("closed")
                if verdict.basis == "exception":
                    exceptional = _("exceptional hours")
                    hours = f"{exceptional}: {hours}"
            channel = {"phone": _("phone"), "email": _("email")}.get(
                verdict.channel, verdict.channel
            )
            details.append(f"{channel}: {day} {hours}")
        label = service_state_label(state, _)
        return {"state": state, "label": label, "detail": "; ".join(details)}

    def pause(self, pause: AgentPause) -> dict[str, Any]:
        return {
            "agent": pause.agent,
            "start": self.fmt.local(pause.start),
            "end": self.fmt.local(pause.end) if pause.end else self._("ongoing"),
            "reason": pause.reason,
            "queue": pause.queue if pause.queue and pause.queue != "NONE" else None,
        }

    def exhibits(self, timeline: Timeline) -> list[Exhibit]:
        _ = self._
        result = []
        for index, item in enumerate(timeline.items, start=1):
            number = exhibit_number(index)
            record = item.record
            if isinstance(record, Email):
                view = self.email(number, item, record)
                title = f"{_('Email')} ({view['direction']}): {record.subject or ''}"
                view["when"] = view["received"]
            elif isinstance(record, Call):
                view = self.call(number, item, record)
                title = f"{_('Call')} ({view['direction']}): {view['outcome']}"
                view["when"] = self.fmt.local(item.at)
            elif isinstance(record, Incident):
                view = self.incident(number, item, record)
                title = f"{_('Incident')}: {record.title}"
                view["when"] = f"{view['start']} – {view['end']}"
            else:
                view = self.pause(record)
                title = f"{_('Agent pause')}: {record.agent}"
                view["when"] = f"{view['start']} – {view['end']}"
            view["incidents"] = [{"id": inc.number, "title": inc.title} for inc in item.incidents]
            view["service"] = self.service(item)
            day = item.at.astimezone(self.fmt.zone).date()
            result.append(Exhibit(number, number, item, view, day, title[:160]))
        return result
