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
    """Where an email's receive time came from."""

    RECEIVED_HEADER = "received-header"  # newest Received: added by our own server
    OWN_DATE = "own-date"  # our own outgoing mail: its Date is our clock
    IMPORT_TIME = "import-time"  # nothing better: the time we imported it


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
    __tablename__ = "customers"

    id: Mapped[int] = mapped_column(primary_key=True)
    ref: Mapped[str] = mapped_column(String(100), unique=True)
    name: Mapped[str] = mapped_column(String(300))
    created_at: Mapped[datetime_utc]

    identifiers: Mapped[list[CustomerIdentifier]] = relationship(
        back_populates="customer", order_by="CustomerIdentifier.id"
    )


class CustomerIdentifier(Base):
    """An email address (lower-cased) or phone number (E.164) that ties contacts to a customer."""

    __tablename__ = "customer_identifiers"
    __table_args__ = (UniqueConstraint("customer_id", "kind", "value"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    customer_id: Mapped[int] = mapped_column(ForeignKey("customers.id"), index=True)
    kind: Mapped[IdentifierKind] = mapped_column(_enum(IdentifierKind, "identifier_kind"))
    value: Mapped[str] = mapped_column(String(320), index=True)
    raw: Mapped[str] = mapped_column(String(320))

    customer: Mapped[Customer] = relationship(back_populates="identifiers")


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
    date_header: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    date_header_offset: Mapped[int | None] = mapped_column(Integer)  # minutes east of UTC
    date_header_raw: Mapped[str | None] = mapped_column(Text)
    received_at: Mapped[datetime_utc] = mapped_column(index=True)
    received_source: Mapped[ReceivedSource] = mapped_column(
        _enum(ReceivedSource, "received_source")
    )
    direction: Mapped[Direction] = mapped_column(_enum(Direction, "direction"))
    parse_defects: Mapped[str | None] = mapped_column(Text)
    imported_at: Mapped[datetime_utc]
    import_run_id: Mapped[int | None] = mapped_column(ForeignKey("import_runs.id"))
    source: Mapped[str] = mapped_column(Text)  # file (and message number) it came from

    addresses: Mapped[list[EmailAddress]] = relationship(order_by="EmailAddress.id")
    attachments: Mapped[list[EmailAttachment]] = relationship(order_by="EmailAttachment.id")


class EmailAddress(Base):
    """Every address in From/To/Cc, lower-cased, for matching mail to customers."""

    __tablename__ = "email_addresses"
    __table_args__ = (Index("ix_email_addresses_address", "address"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    email_id: Mapped[int] = mapped_column(ForeignKey("emails.id"), index=True)
    role: Mapped[str] = mapped_column(String(8))  # from, to, cc
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
    linkedid: Mapped[str | None] = mapped_column(String(150))
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
    """A logged incident. A correction is a new row with ``corrects_id`` set."""

    __tablename__ = "incidents"

    id: Mapped[int] = mapped_column(primary_key=True)
    title: Mapped[str] = mapped_column(Text)
    start: Mapped[datetime_utc] = mapped_column(index=True)
    end: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    channels: Mapped[str] = mapped_column(String(100))  # comma-separated; "" = all
    note: Mapped[str | None] = mapped_column(Text)
    logged_by: Mapped[str] = mapped_column(String(300))
    logged_at: Mapped[datetime_utc]  # when the person says it was logged
    recorded_at: Mapped[datetime_utc]  # when it entered this store
    corrects_id: Mapped[int | None] = mapped_column(ForeignKey("incidents.id"))
    correction_reason: Mapped[str | None] = mapped_column(Text)

    def applies_to(self, channel: str) -> bool:
        chans = {c for c in self.channels.split(",") if c}
        return not chans or "all" in chans or channel in chans


class Case(Base):
    __tablename__ = "cases"

    id: Mapped[int] = mapped_column(primary_key=True)
    reference: Mapped[str] = mapped_column(String(200), unique=True)
    customer_id: Mapped[int] = mapped_column(ForeignKey("customers.id"), index=True)
    authority: Mapped[str] = mapped_column(Text)
    received: Mapped[dt.date | None] = mapped_column(Date)
    deadline: Mapped[dt.date | None] = mapped_column(Date)
    opened_at: Mapped[datetime_utc]

    customer: Mapped[Customer] = relationship()
    documents: Mapped[list[CaseDocument]] = relationship(order_by="CaseDocument.id")


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


# Tables the database refuses to UPDATE or DELETE (and, on PostgreSQL, TRUNCATE).
APPEND_ONLY_TABLES = (
    "blobs",
    "emails",
    "email_addresses",
    "email_attachments",
    "source_lines",
    "cdr_records",
    "queue_events",
    "recordings",
    "incidents",
    "case_documents",
    "quarantine",
    "ledger",
)
