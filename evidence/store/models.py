"""The evidence store.

Evidence tables (blobs, emails, CDR rows, queue events, recordings, incidents,
case documents, quarantine, the ledger) are insert-only: the code has no path
that updates or deletes them and the database refuses it with triggers (see
the initial migration). A correction is a new row that points at the old one.

Calls are not stored as such: a call is derived from the phone system's own
records (CDR rows and queue_log events, kept line by line) when it is read, so
whichever file arrives first, nothing needs to be rewritten later.
"""

from __future__ import annotations

import datetime as dt
import enum

from sqlalchemy import (
    BigInteger,
    Boolean,
    Date,
    Enum,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    String,
    Text,
    UniqueConstraint,
    text,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

from evidence.store.types import UTCDateTime, datetime_utc, sha256_hex


class Base(DeclarativeBase):
    pass


def _enum(cls: type[enum.Enum], name: str) -> Enum:
    # Stored by value, so renaming a Python member never rewrites data.
    return Enum(
        cls,
        name=name,
        values_callable=lambda members: [m.value for m in members],
        native_enum=False,
        length=32,
        validate_strings=True,
    )


class Direction(enum.StrEnum):
    INBOUND = "inbound"
    OUTBOUND = "outbound"
    INTERNAL = "internal"


class ReceivedSource(enum.StrEnum):
    """Where the time an email is placed at came from (see ``evidence.timeline.mailfacts``)."""

    RECEIVED_HEADER = "received-header"  # a Received: line: the last hop into the mailbox
    OWN_DATE = "own-date"  # our own outgoing mail (company domain): its Date is our clock
    DATE_HEADER = "date-header"  # no Received: line: the sender's Date header
    IMPORT_TIME = "import-time"  # neither: the time we imported it
    SMTP_RECEIVER = "smtp-receiver"  # our own SMTP receiver's clock when it took the message


class IdentifierKind(enum.StrEnum):
    EMAIL = "email"
    PHONE = "phone"


# --- raw bytes --------------------------------------------------------------


class Blob(Base):
    """Bytes exactly as received, addressed by their SHA-256."""

    __tablename__ = "blobs"

    sha256: Mapped[sha256_hex] = mapped_column(primary_key=True)
    size: Mapped[int] = mapped_column(BigInteger)
    data: Mapped[bytes] = mapped_column(LargeBinary, deferred=True)
    stored_at: Mapped[datetime_utc]


# --- bookkeeping (not evidence) ---------------------------------------------


class Customer(Base):
    """A customer as added (chained, never updated: a change of name or identifiers is a
    ``CustomerChange``; an erasure blanks the name)."""

    __tablename__ = "customers"

    id: Mapped[int] = mapped_column(primary_key=True)
    ref: Mapped[str] = mapped_column(String(100), unique=True)
    name: Mapped[str] = mapped_column(String(300))
    created_at: Mapped[datetime_utc]

    identifiers: Mapped[list[CustomerIdentifier]] = relationship(
        back_populates="customer", order_by="CustomerIdentifier.id"
    )
    changes: Mapped[list[CustomerChange]] = relationship(
        order_by="(CustomerChange.valid_from, CustomerChange.id)"
    )


class CustomerIdentifier(Base):
    """An email address (lower-cased) or phone number (E.164) that ties contacts to a customer
    since ever (chained; an erasure blanks it). ``customer add`` adds each once."""

    __tablename__ = "customer_identifiers"

    id: Mapped[int] = mapped_column(primary_key=True)
    customer_id: Mapped[int] = mapped_column(ForeignKey("customers.id"), index=True)
    kind: Mapped[IdentifierKind] = mapped_column(_enum(IdentifierKind, "identifier_kind"))
    value: Mapped[str] = mapped_column(String(320), index=True)
    raw: Mapped[str] = mapped_column(String(320))

    customer: Mapped[Customer] = relationship(back_populates="identifiers")


class CustomerChange(Base):
    """A new version of a customer from ``valid_from`` on: addresses or numbers added or
    removed, or a new name, with the reason (``evidence customer update``).

    Never updated: a later change is a new row. The identifiers given when the
    customer was added are theirs since ever unless a change removes them; an
    email or call belongs to the customer when one of its addresses or numbers was
    the customer's at its time (``evidence.records.customers.Identity``).
    """

    __tablename__ = "customer_changes"

    id: Mapped[int] = mapped_column(primary_key=True)
    customer_id: Mapped[int] = mapped_column(ForeignKey("customers.id"), index=True)
    valid_from: Mapped[datetime_utc]
    name: Mapped[str | None] = mapped_column(String(300))  # the new name, if it changed
    reason: Mapped[str] = mapped_column(Text)
    changed_by: Mapped[str] = mapped_column(String(300))
    recorded_at: Mapped[datetime_utc]

    identifiers: Mapped[list[CustomerChangeIdentifier]] = relationship(
        order_by="CustomerChangeIdentifier.id"
    )


class CustomerChangeIdentifier(Base):
    """An address or number a customer change adds or removes."""

    __tablename__ = "customer_change_identifiers"

    id: Mapped[int] = mapped_column(primary_key=True)
    change_id: Mapped[int] = mapped_column(ForeignKey("customer_changes.id"), index=True)
    action: Mapped[str] = mapped_column(String(8))  # add, remove
    kind: Mapped[IdentifierKind] = mapped_column(_enum(IdentifierKind, "identifier_kind"))
    value: Mapped[str] = mapped_column(String(320), index=True)
    raw: Mapped[str] = mapped_column(String(320))


class ImportRun(Base):
    """One run of an importer over one source, with what it brought."""

    __tablename__ = "import_runs"

    id: Mapped[int] = mapped_column(primary_key=True)
    kind: Mapped[str] = mapped_column(String(40))
    source: Mapped[str] = mapped_column(Text)
    started_at: Mapped[datetime_utc]
    finished_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    imported: Mapped[int] = mapped_column(Integer, default=0)
    duplicates: Mapped[int] = mapped_column(Integer, default=0)
    quarantined: Mapped[int] = mapped_column(Integer, default=0)


class SyncRun(Base):
    """One run of ``evidence sync``. A run without ``finished_at`` was interrupted."""

    __tablename__ = "sync_runs"

    id: Mapped[int] = mapped_column(primary_key=True)
    started_at: Mapped[datetime_utc]
    finished_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    exit_code: Mapped[int | None] = mapped_column(Integer)
    host: Mapped[str] = mapped_column(String(255))
    pid: Mapped[int] = mapped_column(Integer)


class SyncResult(Base):
    """What one source brought in one sync run (or why it failed)."""

    __tablename__ = "sync_results"

    id: Mapped[int] = mapped_column(primary_key=True)
    sync_run_id: Mapped[int] = mapped_column(ForeignKey("sync_runs.id"), index=True)
    kind: Mapped[str] = mapped_column(String(40))  # mail, calls, recordings, imap, plans
    source: Mapped[str] = mapped_column(Text)
    started_at: Mapped[datetime_utc]
    finished_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    imported: Mapped[int] = mapped_column(Integer, default=0)
    duplicates: Mapped[int] = mapped_column(Integer, default=0)
    quarantined: Mapped[int] = mapped_column(Integer, default=0)
    error: Mapped[str | None] = mapped_column(Text)


class ImapFolderState(Base):
    """How far an IMAP folder has been imported: its UIDVALIDITY and the highest UID stored.

    Bookkeeping, not evidence (updated in place): a changed UIDVALIDITY means the
    server renumbered the folder, and the next import starts over from UID 1;
    what was already stored is then found again as duplicates.
    """

    __tablename__ = "imap_folder_state"
    __table_args__ = (UniqueConstraint("account", "folder"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    account: Mapped[str] = mapped_column(String(500))  # user@host:port
    folder: Mapped[str] = mapped_column(String(1000))
    uidvalidity: Mapped[int] = mapped_column(BigInteger)
    last_uid: Mapped[int] = mapped_column(BigInteger)
    updated_at: Mapped[datetime_utc]
    # Reconciliation (migration 0016): messages of the folder the store holds (stored, or
    # found already stored; not quarantined), and the server's count at the last run.
    held: Mapped[int] = mapped_column(BigInteger, default=0, server_default=text("0"))
    server_count: Mapped[int | None] = mapped_column(BigInteger)
    counted_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)


class GraphFolderState(Base):
    """How far a Microsoft Graph mail folder has been imported (migration 0016).

    Bookkeeping, not evidence (updated in place): the delta link of the last
    complete run (the next fetches only what changed since), the page link of a
    run that was interrupted (the next run resumes there), and the reconciliation
    as for IMAP: messages the store holds from the folder, and Graph's
    ``totalItemCount`` at the last run.
    """

    __tablename__ = "graph_folder_state"
    __table_args__ = (UniqueConstraint("mailbox", "folder_id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    mailbox: Mapped[str] = mapped_column(String(320))
    folder_id: Mapped[str] = mapped_column(String(500))
    folder: Mapped[str] = mapped_column(String(1000))  # its display name
    delta_link: Mapped[str | None] = mapped_column(Text)
    next_link: Mapped[str | None] = mapped_column(Text)
    held: Mapped[int] = mapped_column(BigInteger, default=0, server_default=text("0"))
    server_count: Mapped[int | None] = mapped_column(BigInteger)
    counted_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    updated_at: Mapped[datetime_utc]


class GraphMessage(Base):
    """A Graph message id the store holds from a folder (migration 0016): counted once
    for the reconciliation, and not fetched again when Graph lists it again."""

    __tablename__ = "graph_messages"
    __table_args__ = (UniqueConstraint("folder_state_id", "message_id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    folder_state_id: Mapped[int] = mapped_column(ForeignKey("graph_folder_state.id"))
    message_id: Mapped[str] = mapped_column(String(500))


# --- evidence ---------------------------------------------------------------


class Email(Base):
    """One message, its raw bytes kept as first received, plus fields indexed at import."""

    __tablename__ = "emails"

    id: Mapped[int] = mapped_column(primary_key=True)
    raw_sha256: Mapped[sha256_hex] = mapped_column(ForeignKey("blobs.sha256"))
    # SHA-256 of the raw message normalised for line ends and mbox "From " escaping:
    # the same message from an .eml and from an mbox is one record.
    content_key: Mapped[sha256_hex] = mapped_column(unique=True)
    message_id: Mapped[str | None] = mapped_column(String(998), index=True)
    message_id_reused: Mapped[bool] = mapped_column(Boolean, default=False)
    in_reply_to: Mapped[str | None] = mapped_column(Text)
    references: Mapped[str | None] = mapped_column(Text)
    from_addr: Mapped[str | None] = mapped_column(String(320), index=True)
    from_display: Mapped[str | None] = mapped_column(Text)
    to_display: Mapped[str | None] = mapped_column(Text)
    cc_display: Mapped[str | None] = mapped_column(Text)
    subject: Mapped[str | None] = mapped_column(Text)
    date_header: Mapped[dt.datetime | None] = mapped_column(UTCDateTime, index=True)
    date_header_offset: Mapped[int | None] = mapped_column(Integer)  # minutes east of UTC
    date_header_raw: Mapped[str | None] = mapped_column(Text)
    # As derived at import (kept, chained, never updated). The time and direction a
    # reader sees are derived again when the store is read, from the kept headers
    # and the configuration in force: ``evidence.timeline.mailfacts``. Do not read these two
    # for that; ``received_at`` still bounds queries (see ``mailfacts.emails_between``).
    received_at: Mapped[datetime_utc] = mapped_column(index=True)
    received_source: Mapped[ReceivedSource] = mapped_column(
        _enum(ReceivedSource, "received_source")
    )
    direction: Mapped[Direction] = mapped_column(_enum(Direction, "direction"))
    parse_defects: Mapped[str | None] = mapped_column(Text)
    imported_at: Mapped[datetime_utc] = mapped_column(index=True)
    import_run_id: Mapped[int | None] = mapped_column(ForeignKey("import_runs.id"))
    source: Mapped[str] = mapped_column(Text)  # file (and message number) it came from

    addresses: Mapped[list[EmailAddress]] = relationship(order_by="EmailAddress.id")
    attachments: Mapped[list[EmailAttachment]] = relationship(order_by="EmailAttachment.id")
    hops: Mapped[list[EmailReceived]] = relationship(order_by="EmailReceived.position")
    deliveries: Mapped[list[SmtpDelivery]] = relationship(
        order_by=lambda: (SmtpDelivery.received_at, SmtpDelivery.id)
    )


class EmailReceived(Base):
    """One ``Received:`` line of a message, as parsed from its kept raw bytes (migration 0010).

    Position 0 is the topmost line, added by the last hop (the one into the mailbox).
    ``received_at`` is None when the line's date does not parse. The receive time an
    email is placed at is chosen from these when the store is read, under the
    configuration in force (``evidence.timeline.mailfacts``), not frozen at import.
    """

    __tablename__ = "email_received"

    id: Mapped[int] = mapped_column(primary_key=True)
    email_id: Mapped[int] = mapped_column(ForeignKey("emails.id"), index=True)
    position: Mapped[int] = mapped_column(Integer)
    by_host: Mapped[str | None] = mapped_column(String(255))  # lower-cased
    received_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime, index=True)


class EmailAddress(Base):
    """Every address in From/To/Cc (and Bcc, where a sent copy has one; imports since
    migration 0010), lower-cased, for matching mail to customers."""

    __tablename__ = "email_addresses"
    __table_args__ = (Index("ix_email_addresses_address", "address"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    email_id: Mapped[int] = mapped_column(ForeignKey("emails.id"), index=True)
    role: Mapped[str] = mapped_column(String(8))  # from, to, cc, bcc
    address: Mapped[str] = mapped_column(String(320))


class EmailAttachment(Base):
    __tablename__ = "email_attachments"

    id: Mapped[int] = mapped_column(primary_key=True)
    email_id: Mapped[int] = mapped_column(ForeignKey("emails.id"), index=True)
    part: Mapped[str] = mapped_column(String(200))  # MIME part path, e.g. "2" or "1.3"
    filename: Mapped[str | None] = mapped_column(Text)
    content_type: Mapped[str] = mapped_column(String(255))
    size: Mapped[int] = mapped_column(BigInteger)
    sha256: Mapped[sha256_hex] = mapped_column(ForeignKey("blobs.sha256"))


class SmtpDelivery(Base):
    """One message handed to ``evidence receive smtp`` (migration 0015): the SMTP envelope
    and our own receive time, beside the raw bytes (``email_id``, or ``quarantine_id`` when
    the bytes could not be read as mail). Append-only and chained like every record.

    A message delivered again with the same envelope (the sender retrying after a lost
    reply) adds nothing; the same message with another envelope (a second recipient's
    copy) adds a delivery, never a second email. ``rcpt_to`` is the RCPT TO addresses in
    the order given, one a line. The earliest delivery's ``received_at`` is the email's
    receive time (``evidence.timeline.mailfacts``).
    """

    __tablename__ = "smtp_deliveries"

    id: Mapped[int] = mapped_column(primary_key=True)
    email_id: Mapped[int | None] = mapped_column(ForeignKey("emails.id"), index=True)
    quarantine_id: Mapped[int | None] = mapped_column(ForeignKey("quarantine.id"), index=True)
    received_at: Mapped[datetime_utc] = mapped_column(index=True)
    mail_from: Mapped[str] = mapped_column(Text)  # the reverse-path; "" for a bounce (<>)
    rcpt_to: Mapped[str] = mapped_column(Text)
    helo: Mapped[str] = mapped_column(Text)  # what the peer said in EHLO or HELO
    peer: Mapped[str] = mapped_column(String(64))  # the peer's IP address
    peer_port: Mapped[int] = mapped_column(Integer)
    tls: Mapped[bool] = mapped_column(Boolean)  # the message came over STARTTLS
    listener: Mapped[str] = mapped_column(String(300))  # our HOST:PORT that took it
    size: Mapped[int] = mapped_column(BigInteger)  # bytes of the message as received
    import_run_id: Mapped[int | None] = mapped_column(ForeignKey("import_runs.id"))


class SourceLine(Base):
    """One raw line of a phone-system log (CDR row, queue_log line), kept byte-exact."""

    __tablename__ = "source_lines"

    id: Mapped[int] = mapped_column(primary_key=True)
    format: Mapped[str] = mapped_column(String(40))
    # SHA-256 of the line without its line end: re-importing a file (or a grown
    # log) adds only what is new.
    line_sha256: Mapped[sha256_hex] = mapped_column(unique=True)
    raw: Mapped[bytes] = mapped_column(LargeBinary)
    source: Mapped[str] = mapped_column(Text)
    line_number: Mapped[int] = mapped_column(Integer)
    imported_at: Mapped[datetime_utc]
    import_run_id: Mapped[int | None] = mapped_column(ForeignKey("import_runs.id"))


class CdrRecord(Base):
    """A parsed Asterisk CDR row (cdr_csv Master.csv)."""

    __tablename__ = "cdr_records"

    id: Mapped[int] = mapped_column(primary_key=True)
    source_line_id: Mapped[int] = mapped_column(ForeignKey("source_lines.id"), unique=True)
    uniqueid: Mapped[str | None] = mapped_column(String(150), index=True)
    linkedid: Mapped[str | None] = mapped_column(String(150), index=True)
    src: Mapped[str] = mapped_column(String(80))
    dst: Mapped[str] = mapped_column(String(80))
    src_e164: Mapped[str | None] = mapped_column(String(32), index=True)
    dst_e164: Mapped[str | None] = mapped_column(String(32), index=True)
    dcontext: Mapped[str] = mapped_column(String(80))
    clid: Mapped[str] = mapped_column(String(160))
    channel: Mapped[str] = mapped_column(String(160))
    dstchannel: Mapped[str] = mapped_column(String(160))
    lastapp: Mapped[str] = mapped_column(String(80))
    lastdata: Mapped[str] = mapped_column(Text)
    start_local: Mapped[str] = mapped_column(String(32))  # as written by the PBX
    started_at: Mapped[datetime_utc] = mapped_column(index=True)
    answered_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    ended_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    time_flag: Mapped[str | None] = mapped_column(String(40))
    duration: Mapped[int] = mapped_column(Integer)
    billsec: Mapped[int] = mapped_column(Integer)
    disposition: Mapped[str] = mapped_column(String(40))
    userfield: Mapped[str | None] = mapped_column(Text)


class QueueEvent(Base):
    """A parsed Asterisk queue_log line: ``epoch|uniqueid|queue|agent|event|data...``."""

    __tablename__ = "queue_events"

    id: Mapped[int] = mapped_column(primary_key=True)
    source_line_id: Mapped[int] = mapped_column(ForeignKey("source_lines.id"), unique=True)
    at: Mapped[datetime_utc] = mapped_column(index=True)
    uniqueid: Mapped[str] = mapped_column(String(150), index=True)
    queue: Mapped[str] = mapped_column(String(80))
    agent: Mapped[str] = mapped_column(String(160))
    event: Mapped[str] = mapped_column(String(40), index=True)
    data: Mapped[str] = mapped_column(Text)  # the remaining fields, '|'-joined
    caller_e164: Mapped[str | None] = mapped_column(String(32), index=True)


class CallRecord(Base):
    """A parsed call-detail row of another phone system: FreeSWITCH mod_cdr_csv, or any CSV
    export read through a mapping file. Figures are the system's own; None when it has none.
    """

    __tablename__ = "call_records"

    id: Mapped[int] = mapped_column(primary_key=True)
    source_line_id: Mapped[int] = mapped_column(ForeignKey("source_lines.id"), unique=True)
    # The CSV header the row was read with, kept so the row can be cited with its column names.
    header_line_id: Mapped[int | None] = mapped_column(ForeignKey("source_lines.id"))
    format: Mapped[str] = mapped_column(String(40))
    # The mapping file (bytes in blobs) that said which column is which.
    mapping_sha256: Mapped[str | None] = mapped_column(ForeignKey("blobs.sha256"))
    call_id: Mapped[str | None] = mapped_column(String(150), index=True)
    linked_id: Mapped[str | None] = mapped_column(String(150), index=True)
    caller: Mapped[str] = mapped_column(String(160))
    caller_e164: Mapped[str | None] = mapped_column(String(32), index=True)
    caller_name: Mapped[str | None] = mapped_column(Text)
    callee: Mapped[str] = mapped_column(String(160))
    callee_e164: Mapped[str | None] = mapped_column(String(32), index=True)
    direction: Mapped[str | None] = mapped_column(String(16))  # inbound, outbound, internal
    direction_recorded: Mapped[str | None] = mapped_column(String(80))  # as the system wrote it
    context: Mapped[str | None] = mapped_column(String(80))
    start_local: Mapped[str] = mapped_column(String(40))  # as written by the system
    started_at: Mapped[datetime_utc] = mapped_column(index=True)
    answered_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    ended_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    time_flag: Mapped[str | None] = mapped_column(String(40))
    queue: Mapped[str | None] = mapped_column(String(80))
    agent: Mapped[str | None] = mapped_column(String(160))
    queue_wait: Mapped[int | None] = mapped_column(Integer)  # seconds
    ring_time: Mapped[int | None] = mapped_column(Integer)
    talk_time: Mapped[int | None] = mapped_column(Integer)
    duration: Mapped[int | None] = mapped_column(Integer)
    outcome: Mapped[str | None] = mapped_column(String(32))
    outcome_recorded: Mapped[str | None] = mapped_column(String(80))  # as the system wrote it


class Recording(Base):
    __tablename__ = "recordings"

    id: Mapped[int] = mapped_column(primary_key=True)
    uniqueid: Mapped[str | None] = mapped_column(String(150), index=True)
    filename: Mapped[str] = mapped_column(Text)
    content_type: Mapped[str] = mapped_column(String(100))
    size: Mapped[int] = mapped_column(BigInteger)
    duration: Mapped[float | None]
    sha256: Mapped[sha256_hex] = mapped_column(ForeignKey("blobs.sha256"), unique=True)
    imported_at: Mapped[datetime_utc]


class Incident(Base):
    """One version of a logged incident.

    An incident is a chain of versions: the first is logged (``incident add``,
    ``start`` or a planned occurrence); ending or correcting it appends a new
    version whose ``corrects_id`` points at the one it replaces and whose
    ``original_id`` is the first version's id (the incident's number).
    """

    __tablename__ = "incidents"

    id: Mapped[int] = mapped_column(primary_key=True)
    title: Mapped[str] = mapped_column(Text)
    start: Mapped[datetime_utc] = mapped_column(index=True)
    end: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    channels: Mapped[str] = mapped_column(String(100))  # comma-separated; "" = all
    note: Mapped[str | None] = mapped_column(Text)
    logged_by: Mapped[str] = mapped_column(String(300))
    logged_at: Mapped[datetime_utc]  # when the person says it was logged
    recorded_at: Mapped[datetime_utc]  # when this version entered this store
    corrects_id: Mapped[int | None] = mapped_column(ForeignKey("incidents.id"))
    correction_reason: Mapped[str | None] = mapped_column(Text)
    # Added by migration 0006. Nullable without defaults, so records chained
    # before it keep their canonical encoding (see evidence.verify.store._as_chained).
    original_id: Mapped[int | None] = mapped_column(ForeignKey("incidents.id"), index=True)
    version_kind: Mapped[str | None] = mapped_column(String(16))  # logged, ended, corrected
    corrected_by: Mapped[str | None] = mapped_column(String(300))
    plan_id: Mapped[int | None] = mapped_column(ForeignKey("incident_plans.id"), index=True)

    attachments: Mapped[list[IncidentAttachment]] = relationship(order_by="IncidentAttachment.id")
    plan: Mapped[IncidentPlan | None] = relationship()

    @property
    def number(self) -> int:
        """The incident's number: its first version's id, the same for every version."""
        return self.original_id or self.id

    @property
    def change(self) -> str:
        """How this version came to be: logged, ended or corrected."""
        return self.version_kind or ("corrected" if self.corrects_id else "logged")

    @property
    def changed_by(self) -> str | None:
        """Who made this version: the logger for the first, else who ended or corrected it."""
        return self.corrected_by if self.corrects_id else self.logged_by

    @property
    def channel_names(self) -> list[str]:
        return [c for c in self.channels.split(",") if c] or ["all"]

    def applies_to(self, channel: str) -> bool:
        chans = {c for c in self.channels.split(",") if c}
        return not chans or "all" in chans or channel in chans


class IncidentAttachment(Base):
    """A supporting file (e.g. the authorities' evacuation order), byte-exact."""

    __tablename__ = "incident_attachments"

    id: Mapped[int] = mapped_column(primary_key=True)
    incident_id: Mapped[int] = mapped_column(ForeignKey("incidents.id"), index=True)
    filename: Mapped[str] = mapped_column(Text)
    content_type: Mapped[str] = mapped_column(String(255))
    size: Mapped[int] = mapped_column(BigInteger)
    sha256: Mapped[sha256_hex] = mapped_column(ForeignKey("blobs.sha256"))
    attached_at: Mapped[datetime_utc]


class IncidentPlan(Base):
    """A planned break (maintenance, training), once or recurring (RFC 5545 RRULE).

    Times are kept as local wall-clock times in ``timezone``: a plan for 15:00
    means 15:00 local on both sides of a DST change. Its occurrences are
    materialised as incidents (``evidence.schedule.materialise_plans``).
    """

    __tablename__ = "incident_plans"

    id: Mapped[int] = mapped_column(primary_key=True)
    title: Mapped[str] = mapped_column(Text)
    channels: Mapped[str] = mapped_column(String(100))
    note: Mapped[str | None] = mapped_column(Text)
    timezone: Mapped[str] = mapped_column(String(64))
    start_local: Mapped[str] = mapped_column(String(19))  # YYYY-MM-DDTHH:MM:SS
    end_local: Mapped[str] = mapped_column(String(19))
    rrule: Mapped[str | None] = mapped_column(Text)
    logged_by: Mapped[str] = mapped_column(String(300))
    logged_at: Mapped[datetime_utc]
    recorded_at: Mapped[datetime_utc]


class Case(Base):
    __tablename__ = "cases"

    id: Mapped[int] = mapped_column(primary_key=True)
    reference: Mapped[str] = mapped_column(String(200), unique=True)
    customer_id: Mapped[int] = mapped_column(ForeignKey("customers.id"), index=True)
    authority: Mapped[str] = mapped_column(Text)
    received: Mapped[dt.date | None] = mapped_column(Date)
    deadline: Mapped[dt.date | None] = mapped_column(Date)
    opened_at: Mapped[datetime_utc]
    # The local days the regulator asks about, inclusive; the default period of an export.
    period_from: Mapped[dt.date | None] = mapped_column(Date)
    period_to: Mapped[dt.date | None] = mapped_column(Date)
    # Added by migration 0009 and written in place until migration 0013, which made cases
    # append-only: a closing is now a ``CaseClosure`` (the migration made one for each case
    # closed before). Never written any more.
    closed_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    closed_by: Mapped[str | None] = mapped_column(String(300))
    close_reason: Mapped[str | None] = mapped_column(Text)

    customer: Mapped[Customer] = relationship()
    documents: Mapped[list[CaseDocument]] = relationship(order_by="CaseDocument.id")
    claims: Mapped[list[Claim]] = relationship(order_by="Claim.id")
    closures: Mapped[list[CaseClosure]] = relationship(order_by="CaseClosure.id")

    @property
    def closure(self) -> CaseClosure | None:
        """How the case was closed; None while it is open."""
        return self.closures[0] if self.closures else None


class CaseClosure(Base):
    """The closing of a case (migration 0013): when, by whom and why. A closed case no
    longer holds the customer's data against erasure (GDPR Art. 17(3)(e) covers only
    claims still being dealt with)."""

    __tablename__ = "case_closures"

    id: Mapped[int] = mapped_column(primary_key=True)
    case_id: Mapped[int] = mapped_column(ForeignKey("cases.id"), unique=True)
    closed_at: Mapped[datetime_utc]
    closed_by: Mapped[str] = mapped_column(String(300))
    reason: Mapped[str] = mapped_column(Text)


class CaseDocument(Base):
    """A legal PDF attached to a case (the regulator's letter, the reply), byte-exact."""

    __tablename__ = "case_documents"

    id: Mapped[int] = mapped_column(primary_key=True)
    case_id: Mapped[int] = mapped_column(ForeignKey("cases.id"), index=True)
    title: Mapped[str] = mapped_column(Text)
    filename: Mapped[str] = mapped_column(Text)
    size: Mapped[int] = mapped_column(BigInteger)
    sha256: Mapped[sha256_hex] = mapped_column(ForeignKey("blobs.sha256"))
    document_date: Mapped[dt.date | None] = mapped_column(Date)
    attached_at: Mapped[datetime_utc]


class Claim(Base):
    """What the customer claims in a case. A correction is a new row with ``corrects_id`` set."""

    __tablename__ = "claims"

    id: Mapped[int] = mapped_column(primary_key=True)
    case_id: Mapped[int] = mapped_column(ForeignKey("cases.id"), index=True)
    text: Mapped[str] = mapped_column(Text)
    recorded_at: Mapped[datetime_utc]
    corrects_id: Mapped[int | None] = mapped_column(ForeignKey("claims.id"))

    evidence: Mapped[list[ClaimEvidence]] = relationship(order_by="ClaimEvidence.id")

    @property
    def item_ids(self) -> list[str]:
        return [e.item_id for e in self.evidence]


class ClaimEvidence(Base):
    """A timeline item (``email:12``, ``call:1790579705.312``, ``incident:1``) a claim rests on."""

    __tablename__ = "claim_evidence"

    id: Mapped[int] = mapped_column(primary_key=True)
    claim_id: Mapped[int] = mapped_column(ForeignKey("claims.id"), index=True)
    item_id: Mapped[str] = mapped_column(String(200))


class ExportRecord(Base):
    """One dossier written: when, by whom, with what arguments, and the digest of the output.

    Append-only and chained in the ledger, like the audit event the same export writes
    (both in one transaction, naming the same person). ``checkpoint_*`` is the signed
    checkpoint the dossier was proved against, as its cover and manifest.json state it
    (NULL on exports recorded before migration 0015); ``chain_seq``/``chain_head`` is the
    ledger's head when the export was recorded (its audit event included), which is later
    than that checkpoint whenever anything was added since.
    """

    __tablename__ = "exports"

    id: Mapped[int] = mapped_column(primary_key=True)
    exported_at: Mapped[datetime_utc]
    exported_by: Mapped[str] = mapped_column(String(300))
    customer_ref: Mapped[str | None] = mapped_column(String(100))
    case_ref: Mapped[str | None] = mapped_column(String(200))
    format: Mapped[str] = mapped_column(String(16))
    output: Mapped[str] = mapped_column(Text)
    size: Mapped[int] = mapped_column(BigInteger)
    sha256: Mapped[sha256_hex]
    arguments: Mapped[str] = mapped_column(Text)  # canonical JSON of the arguments given
    program_version: Mapped[str] = mapped_column(String(40))
    chain_seq: Mapped[int] = mapped_column(BigInteger)
    chain_head: Mapped[sha256_hex]
    checkpoint_id: Mapped[int | None] = mapped_column(ForeignKey("checkpoints.id"))
    checkpoint_tree_size: Mapped[int | None] = mapped_column(BigInteger)
    checkpoint_root: Mapped[str | None] = mapped_column(String(64))


class QuarantineItem(Base):
    """Input that could not be imported: its raw bytes, where it came from, and why."""

    __tablename__ = "quarantine"

    id: Mapped[int] = mapped_column(primary_key=True)
    kind: Mapped[str] = mapped_column(String(40))
    source: Mapped[str] = mapped_column(Text)
    locator: Mapped[str | None] = mapped_column(String(100))  # line or message number
    reason: Mapped[str] = mapped_column(Text)
    raw_sha256: Mapped[sha256_hex] = mapped_column(ForeignKey("blobs.sha256"))
    quarantined_at: Mapped[datetime_utc]
    import_run_id: Mapped[int | None] = mapped_column(ForeignKey("import_runs.id"))


class QuarantineDismissal(Base):
    """A quarantined input set aside as no part of any source (e.g. a call log imported as mail
    by mistake): it stays in the quarantine, bytes and all; this record says who, when and why.
    Added by migration 0012."""

    __tablename__ = "quarantine_dismissals"

    id: Mapped[int] = mapped_column(primary_key=True)
    quarantine_id: Mapped[int] = mapped_column(ForeignKey("quarantine.id"), unique=True)
    reason: Mapped[str] = mapped_column(Text)
    dismissed_by: Mapped[str] = mapped_column(String(300))
    dismissed_at: Mapped[datetime_utc]


class LedgerEntry(Base):
    """The hash chain: entry n covers entry n-1's hash and a canonical encoding of one record."""

    __tablename__ = "ledger"

    seq: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    record_type: Mapped[str] = mapped_column(String(40))
    record_id: Mapped[str] = mapped_column(String(100))
    payload: Mapped[str] = mapped_column(Text)  # canonical JSON
    prev_hash: Mapped[sha256_hex]
    entry_hash: Mapped[sha256_hex] = mapped_column(unique=True)
    appended_at: Mapped[datetime_utc]

    __table_args__ = (Index("ix_ledger_record", "record_type", "record_id"),)


class Checkpoint(Base):
    """A signed statement of the Merkle tree over the ledger: its size and root at a time.

    ``body`` is the exact text signed (Ed25519) and timestamped (RFC 3161); the
    other columns repeat what it says so they can be queried. ``frontier`` is a
    cache (the roots of the tree's perfect subtrees) that lets the next
    checkpoint hash only the leaves added since; it is checked against the
    signed root before use.
    """

    __tablename__ = "checkpoints"

    id: Mapped[int] = mapped_column(primary_key=True)
    tree_size: Mapped[int] = mapped_column(BigInteger)
    root_hash: Mapped[sha256_hex]
    created_at: Mapped[datetime_utc]
    reason: Mapped[str] = mapped_column(String(40))
    body: Mapped[str] = mapped_column(Text)
    signature: Mapped[str] = mapped_column(String(100))  # base64 Ed25519 signature of body
    key_id: Mapped[sha256_hex]  # SHA-256 of the raw 32-byte public key
    public_key: Mapped[str] = mapped_column(Text)  # PEM
    frontier: Mapped[str] = mapped_column(Text)  # JSON list of hex hashes
    timestamp_token: Mapped[bytes | None] = mapped_column(LargeBinary)  # RFC 3161 token, DER
    tsa_url: Mapped[str | None] = mapped_column(Text)


class AuditEvent(Base):
    """Something done with the evidence (an export, a verification, a correction), logged
    like evidence: who, when, what, and the SHA-256 of what it produced."""

    __tablename__ = "audit_events"

    id: Mapped[int] = mapped_column(primary_key=True)
    action: Mapped[str] = mapped_column(String(40), index=True)
    actor: Mapped[str] = mapped_column(String(300))
    at: Mapped[datetime_utc]
    subject: Mapped[str] = mapped_column(Text)
    output_sha256: Mapped[str | None] = mapped_column(String(64))
    details: Mapped[str | None] = mapped_column(Text)  # compact JSON


# --- data protection (migration 0009) ----------------------------------------


class LegalHold(Base):
    """A legal hold on a customer's data (``action`` hold), or the release of one.

    A release is a new row pointing at the hold it ends (``releases_id``); the
    hold itself is never changed. A hold placed by case reference holds that
    case's customer.
    """

    __tablename__ = "legal_holds"

    id: Mapped[int] = mapped_column(primary_key=True)
    action: Mapped[str] = mapped_column(String(16))  # hold, release
    customer_ref: Mapped[str] = mapped_column(String(100), index=True)
    case_ref: Mapped[str | None] = mapped_column(String(200))
    reason: Mapped[str] = mapped_column(Text)
    actor: Mapped[str] = mapped_column(String(300))
    at: Mapped[datetime_utc]
    releases_id: Mapped[int | None] = mapped_column(ForeignKey("legal_holds.id"))


class Erasure(Base):
    """The tombstone of a customer's erasure (GDPR Art. 17): when, why, by whom, and what.

    Its children (chained with it) name every blob whose bytes were removed and
    every ledger entry whose payload was redacted, with that entry's original
    Merkle leaf hash, so the signed log still verifies without the content.
    """

    __tablename__ = "erasures"

    id: Mapped[int] = mapped_column(primary_key=True)
    customer_ref: Mapped[str] = mapped_column(String(100), index=True)
    erased_at: Mapped[datetime_utc]
    erased_by: Mapped[str] = mapped_column(String(300))
    reason: Mapped[str] = mapped_column(Text)
    records: Mapped[str] = mapped_column(Text)  # JSON list of "table/id" whose content went

    blobs: Mapped[list[ErasedBlob]] = relationship(order_by="ErasedBlob.id")
    entries: Mapped[list[ErasedEntry]] = relationship(order_by="ErasedEntry.id")


class ErasedBlob(Base):
    """A blob whose bytes an erasure removed; the database allows exactly that, nothing else."""

    __tablename__ = "erased_blobs"

    id: Mapped[int] = mapped_column(primary_key=True)
    erasure_id: Mapped[int] = mapped_column(ForeignKey("erasures.id"), index=True)
    sha256: Mapped[sha256_hex] = mapped_column(ForeignKey("blobs.sha256"), unique=True)
    size: Mapped[int] = mapped_column(BigInteger)


class ErasedEntry(Base):
    """A ledger entry whose payload an erasure redacted.

    ``leaf_hash`` is the entry's Merkle leaf hash before (checked against every
    checkpoint signed since); ``redacted_sha256`` pins the payload it holds now.
    """

    __tablename__ = "erased_entries"

    id: Mapped[int] = mapped_column(primary_key=True)
    erasure_id: Mapped[int] = mapped_column(ForeignKey("erasures.id"), index=True)
    # No foreign key: the ledger must stay truncatable by an attacker whom `verify` then finds.
    seq: Mapped[int] = mapped_column(BigInteger, unique=True)
    leaf_hash: Mapped[sha256_hex]
    redacted_sha256: Mapped[sha256_hex]


# Tables the database refuses to UPDATE or DELETE (and, on PostgreSQL, TRUNCATE).
APPEND_ONLY_TABLES = (
    "blobs",
    "emails",
    "email_addresses",
    "email_attachments",
    "email_received",
    "smtp_deliveries",
    "source_lines",
    "cdr_records",
    "queue_events",
    "call_records",
    "recordings",
    "incidents",
    "incident_attachments",
    "incident_plans",
    "case_documents",
    "quarantine",
    "quarantine_dismissals",
    "ledger",
    "claims",
    "claim_evidence",
    "exports",
    "checkpoints",
    "audit_events",
    "legal_holds",
    "customers",
    "customer_identifiers",
    "cases",
    "case_closures",
    "customer_changes",
    "customer_change_identifiers",
    "erasures",
    "erased_blobs",
    "erased_entries",
)


# --- the legal desk (web app and JSON API): bookkeeping, not evidence --------------------
# Who may sign in, their API tokens, failed sign-ins (throttling shared by every server
# process) and queued exports. These tables are updated in place; what users do is kept in
# the audit log, which is evidence.


class DeskUser(Base):
    __tablename__ = "desk_users"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(100), unique=True)
    role: Mapped[str] = mapped_column(String(16))
    # argon2id hash; None: the user signs in only through the trusted proxy header
    password_hash: Mapped[str | None] = mapped_column(String(255))
    language: Mapped[str] = mapped_column(String(8), default="fi")
    disabled: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[datetime_utc]


class ApiToken(Base):
    __tablename__ = "desk_api_tokens"

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("desk_users.id"), index=True)
    # SHA-256 of the token: the token is 32 random bytes, shown once and never stored
    token_sha256: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[datetime_utc]
    expires_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)

    user: Mapped[DeskUser] = relationship()


class SigninFailure(Base):
    __tablename__ = "desk_signin_failures"

    id: Mapped[int] = mapped_column(primary_key=True)
    username: Mapped[str] = mapped_column(String(100), index=True)
    address: Mapped[str] = mapped_column(String(64))
    at: Mapped[datetime_utc]


class ExportJob(Base):
    """An export queued by the desk; the worker that runs it updates it."""

    __tablename__ = "desk_export_jobs"

    id: Mapped[int] = mapped_column(primary_key=True)
    customer_ref: Mapped[str] = mapped_column(String(100))
    case_ref: Mapped[str | None] = mapped_column(String(200))
    language: Mapped[str | None] = mapped_column(String(8))
    date_from: Mapped[dt.date | None] = mapped_column(Date)
    date_to: Mapped[dt.date | None] = mapped_column(Date)
    requested_by: Mapped[str] = mapped_column(String(100))
    status: Mapped[str] = mapped_column(String(16), index=True)  # queued|running|done|failed
    progress: Mapped[int] = mapped_column(Integer, default=0)  # percent
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    created_at: Mapped[datetime_utc]
    started_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    heartbeat_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    finished_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    sha256: Mapped[str | None] = mapped_column(String(64))
    pages: Mapped[int | None] = mapped_column(Integer)
    error: Mapped[str | None] = mapped_column(Text)
