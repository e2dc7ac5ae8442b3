"""A journal address: an SMTP receiver that stores every message it is given.

The company's mail server journals (or BCCs) each support message to
``evidence receive smtp``, so mail is captured as it arrives, with our own
receive time and the SMTP envelope kept beside the raw bytes
(``smtp_deliveries``, migration 0015). The bytes are stored exactly as they came
after DATA (dot-unstuffed, nothing added), through the mail import's own path
(``MailImporter``): a message already in the store, from any source, is stored
once; what cannot be read as mail is quarantined with its bytes.

What the sender is told:

- ``250`` only after the message and its delivery are committed. Deliveries from
  every connection go to one writer thread, which commits whatever has arrived
  in one transaction (group commit) and then answers each of them;
- ``451`` when the store fails (the transaction left nothing): the sending server
  keeps the message and tries again later. A message sent again after a lost
  ``250`` is found by its content and its envelope and adds nothing;
- ``554`` and the connection closed, to a peer outside ``allow`` (by default
  this machine only: 127.0.0.1 and ::1);
- ``552`` for a message over ``[mail.limits] max_message_bytes`` (advertised as
  ``SIZE``), ``421`` when shutting down or with too many connections open.

RFC 5321 subset: EHLO/HELO, MAIL (SIZE, BODY=8BITMIME, SMTPUTF8), RCPT, DATA,
RSET, NOOP, QUIT, VRFY (252), HELP, and STARTTLS (RFC 3207) when a certificate is
given. SIGTERM (``stop``) stops taking connections, lets a message being sent
or stored finish, closes idle connections, signs a checkpoint and returns.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import logging
import queue
import re
import socket
import ssl
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import IO

from sqlalchemy import select
from sqlalchemy.exc import DataError, IntegrityError
from sqlalchemy.orm import Session

from evidence.errors import EvidenceError, InvalidInput
from evidence.ingest import ImportReport
from evidence.ingest.mail import MailImporter, RawMessage, content_key, mail_limits
from evidence.ingest.mime import MailLimits
from evidence.store import bulk, ledger
from evidence.store.blobs import sha256_hex
from evidence.store.checkpoints import write_checkpoint
from evidence.store.db import Store, failure_cause
from evidence.store.models import Email, ImportRun, QuarantineItem, SmtpDelivery
from evidence.timeutil import utcnow

log = logging.getLogger(__name__)

DEFAULT_ALLOW = ("127.0.0.1/32", "::1/128")
MAX_SESSIONS = 100  # connections open at once; more are told 421 and closed
MAX_RECIPIENTS = 1000  # RCPT TO per message (RFC 5321 4.5.3.1.8: at least 100)
MAX_LINE = 1000  # bytes of a command or text line, CRLF included (RFC 5321 4.5.3.1.6)
MAX_BATCH = 500  # deliveries committed in one transaction
COMMAND_TIMEOUT = 300.0  # seconds a peer may stay silent (RFC 5321 4.5.3.2)
STORE_TIMEOUT = 600.0  # seconds a message may wait for its commit before 451
STOP_GRACE = 60.0  # seconds a message being sent may take to finish after SIGTERM
CHECKPOINT_EVERY = 60.0  # seconds between signed checkpoints while mail keeps coming

STORE_FAILED = "451 4.3.0 not stored: the evidence store failed; try again later"
_CONTROL = re.compile(r"[\x00-\x08\x0a-\x1f\x7f]")  # a tab may separate words
_PATH = re.compile(r"^<([^<>]*)>(?:\s+(.*))?$")


@dataclass(frozen=True)
class ReceiverSettings:
    """Where to listen, whom to take mail from, and the certificate for STARTTLS."""

    host: str
    port: int
    allow: tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...]
    tls_cert: Path | None = None
    tls_key: Path | None = None

    @property
    def listener(self) -> str:
        return f"[{self.host}]:{self.port}" if ":" in self.host else f"{self.host}:{self.port}"

    def allows(self, address: str) -> bool:
        ip = ipaddress.ip_address(peer_address(address))
        return any(ip in network for network in self.allow)


def peer_address(address: str) -> str:
    """A peer's address as people write it: an IPv4 peer of an IPv6 socket (``::ffff:10.0.0.5``)
    as IPv4, without an IPv6 zone."""
    ip = ipaddress.ip_address(address.split("%", 1)[0])
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        return str(ip.ipv4_mapped)
    return str(ip)


def receiver_settings(
    listen: str,
    allow: Iterable[str] = (),
    tls_cert: Path | None = None,
    tls_key: Path | None = None,
) -> ReceiverSettings:
    """Read ``--listen HOST:PORT``, ``--allow CIDR``... and the certificate pair;
    ``InvalidInput`` saying what is wrong."""
    host, sep, port_text = listen.rpartition(":")
    host = host.strip("[]")
    if not sep or not host or not port_text.isdigit() or not 0 <= int(port_text) < 65536:
        raise InvalidInput(
            f"--listen {listen!r}: give HOST:PORT, e.g. 127.0.0.1:2525 or [::1]:2525"
        )
    networks = []
    for value in allow or DEFAULT_ALLOW:
        try:
            networks.append(ipaddress.ip_network(value.strip(), strict=False))
        except ValueError:
            raise InvalidInput(
                f"--allow {value!r}: give an address or network, e.g. 10.0.0.5 or 10.0.0.0/24"
            ) from None
    if (tls_cert is None) != (tls_key is None):
        raise InvalidInput("--tls-cert and --tls-key go together: give both, or neither")
    return ReceiverSettings(host, int(port_text), tuple(networks), tls_cert, tls_key)


# --- the store side: one writer, group commit --------------------------------------


@dataclass
class Envelope:
    mail_from: str
    rcpt_to: list[str]
    helo: str
    peer: str
    peer_port: int
    tls: bool


@dataclass
class Delivery:
    """A message waiting for its commit; ``done`` is set with ``reply``."""

    envelope: Envelope
    raw: bytes
    received_at: dt.datetime
    done: threading.Event = field(default_factory=threading.Event)
    reply: str = ""


class Writer(threading.Thread):
    """Stores deliveries from every connection: whatever has arrived, in one transaction."""

    def __init__(self, store: Store, settings: ReceiverSettings, limits: MailLimits) -> None:
        super().__init__(name="evidence-smtp-writer", daemon=True)
        self.store = store
        self.settings = settings
        self.inbox: queue.Queue[Delivery | None] = queue.Queue()
        self.importer = MailImporter(
            store, f"smtp://{settings.listener}", limits, workers=1, on_chunk=self._record
        )
        self._batch: list[Delivery] = []
        self._results: list[str] = []
        self.failures = 0
        self.stored_since_checkpoint = False
        self.last_checkpoint = time.monotonic()

    @property
    def report(self) -> ImportReport:
        return self.importer.report

    def submit(self, delivery: Delivery) -> str:
        self.inbox.put(delivery)
        if not delivery.done.wait(STORE_TIMEOUT):
            # Perhaps stored later: the sender's retry is then a duplicate, never a loss.
            return "451 4.3.0 not stored in time; try again later"
        return delivery.reply

    def run(self) -> None:
        stopping = False
        while not stopping:
            try:
                first = self.inbox.get(timeout=1.0)
            except queue.Empty:
                self._checkpoint_if_due()
                continue
            batch: list[Delivery] = []
            if first is None:
                stopping = True
            else:
                batch.append(first)
            while len(batch) < MAX_BATCH:
                try:
                    more = self.inbox.get_nowait()
                except queue.Empty:
                    break
                if more is None:
                    stopping = True
                else:
                    batch.append(more)
            if batch:
                self._store(batch)
            self._checkpoint_if_due()

    def _store(self, batch: list[Delivery]) -> None:
        self._batch, self._results = batch, []
        chunk = [
            RawMessage(
                f"smtp://{self.settings.listener}",
                None,
                delivery.raw,
                consumed=len(delivery.raw),
                captured_at=delivery.received_at,
            )
            for delivery in batch
        ]
        report = self.report
        before = (report.imported, report.duplicates, report.quarantined, len(report.messages))
        try:
            self.importer.store_now(chunk)
        except Exception as exc:  # any failure of the store: the sender retries
            log.debug("store failure", exc_info=True)
            report.imported, report.duplicates, report.quarantined = before[:3]
            del report.messages[before[3] :]
            if len(batch) > 1 and isinstance(exc, DataError | IntegrityError):
                # The database refused something in one message: it must not hold back the
                # others. (A database that is down or locked fails each alike: no retry.)
                for delivery in batch:
                    self._store([delivery])
                return
            self.failures += 1
            cause = failure_cause(exc)
            log.error("evidence: %d message(s) not stored (451): %s", len(batch), cause)
            replies = [STORE_FAILED] * len(batch)
        else:
            for line in report.messages[before[3] :]:  # carries no content (log_safe)
                log.warning("evidence: quarantined: %s", line)
            replies = self._results
            self.stored_since_checkpoint = True
        for delivery, reply in zip(batch, replies, strict=True):
            delivery.reply = reply
            delivery.done.set()

    def _record(self, session: Session, chunk: list[RawMessage]) -> None:
        """In the chunk's transaction: each delivery's envelope, beside its email (or its
        quarantined bytes), unless the same envelope is already recorded for it."""
        source = f"smtp://{self.settings.listener}"
        found = _stored_as(session, self._batch, [content_key(item.raw) for item in chunk], source)
        known = _recorded_envelopes(session, found)
        run_id = self.importer.run_id
        rows: list[dict[str, object]] = []
        for delivery, (email_id, quarantine_id) in zip(self._batch, found, strict=True):
            envelope = delivery.envelope
            rcpt_to = "\n".join(envelope.rcpt_to)
            what = (
                f"email #{email_id}" if email_id is not None else f"quarantine #{quarantine_id}"
            )
            mark = (email_id, quarantine_id, envelope.mail_from, rcpt_to)
            if mark in known:
                self._results.append(f"250 2.0.0 already stored as {what}")
                continue
            known.add(mark)
            rows.append(
                {
                    "email_id": email_id,
                    "quarantine_id": quarantine_id,
                    "received_at": delivery.received_at,
                    "mail_from": envelope.mail_from,
                    "rcpt_to": rcpt_to,
                    "helo": envelope.helo,
                    "peer": envelope.peer,
                    "peer_port": envelope.peer_port,
                    "tls": envelope.tls,
                    "listener": self.settings.listener,
                    "size": len(delivery.raw),
                    "import_run_id": run_id,
                }
            )
            self._results.append(f"250 2.0.0 stored as {what}")
        _insert_deliveries(session, rows)
        # The run's counts stay true even if this process is killed.
        run = session.get(ImportRun, run_id)
        if run is not None:
            run.imported = self.report.imported
            run.duplicates = self.report.duplicates
            run.quarantined = self.report.quarantined

    def _checkpoint_if_due(self) -> None:
        if not self.stored_since_checkpoint:
            return
        if time.monotonic() - self.last_checkpoint < CHECKPOINT_EVERY:
            return
        try:
            with self.store.writing() as session:
                write_checkpoint(session, self.store.config, "receive smtp")
        except Exception as exc:  # the mail is stored; the next one signs it
            log.error("evidence: checkpoint not written: %s", failure_cause(exc))
            return
        self.stored_since_checkpoint = False
        self.last_checkpoint = time.monotonic()


def _stored_as(
    session: Session, batch: list[Delivery], keys: list[str], source: str
) -> list[tuple[int | None, int | None]]:
    """Where each delivery's bytes are stored: (email id, None), or (None, quarantine id)
    for bytes not read as mail (None, None if neither is found)."""
    emails: dict[str, int] = {}
    for key, stored_id in session.execute(
        select(Email.content_key, Email.id).where(Email.content_key.in_(set(keys)))
    ):
        emails[key] = stored_id
    found: list[tuple[int | None, int | None]] = []
    for delivery, key in zip(batch, keys, strict=True):
        quarantine_id = None
        if key not in emails:  # not read as mail: its bytes are in the quarantine
            quarantine_id = session.scalar(
                select(QuarantineItem.id)
                .where(
                    QuarantineItem.source == source,
                    QuarantineItem.raw_sha256 == sha256_hex(delivery.raw),
                )
                .order_by(QuarantineItem.id)
                .limit(1)
            )
        found.append((emails.get(key), quarantine_id))
    return found


def _recorded_envelopes(
    session: Session, found: list[tuple[int | None, int | None]]
) -> set[tuple[int | None, int | None, str, str]]:
    """The envelopes already recorded for these emails and quarantined items:
    (email id, quarantine id, MAIL FROM, RCPT TO lines)."""
    known: set[tuple[int | None, int | None, str, str]] = set()
    for column, wanted in (
        (SmtpDelivery.email_id, {e for e, _ in found if e is not None}),
        (SmtpDelivery.quarantine_id, {q for _, q in found if q is not None}),
    ):
        if wanted:
            known.update(
                (email_id, quarantine_id, mail_from, rcpt_to)
                for email_id, quarantine_id, mail_from, rcpt_to in session.execute(
                    select(
                        SmtpDelivery.email_id,
                        SmtpDelivery.quarantine_id,
                        SmtpDelivery.mail_from,
                        SmtpDelivery.rcpt_to,
                    ).where(column.in_(wanted))
                )
            )
    return known


def _insert_deliveries(session: Session, rows: list[dict[str, object]]) -> None:
    """Inserted and chained as the mail import does its rows (one statement each)."""
    ids = bulk.reserve_ids(session, "smtp_deliveries", len(rows))
    for row, row_id in zip(rows, ids, strict=True):
        row["id"] = row_id
    bulk.insert_rows(session, SmtpDelivery, rows)
    ledger.append_payloads(
        session,
        [
            ("smtp_deliveries", str(row["id"]), ledger.payload_for_rows(SmtpDelivery, row))
            for row in rows
        ],
    )


# --- the SMTP side -------------------------------------------------------------------


class _Closed(Exception):
    """The peer went away, or we are closing the connection."""


class SmtpConnection:
    """One SMTP connection, in its own thread."""

    def __init__(
        self, server: SmtpReceiver, sock: socket.socket, peer: tuple[str, int]
    ) -> None:
        self.server = server
        self.sock = sock
        self.peer = peer
        self.file: IO[bytes] = sock.makefile("rb")
        self.tls = False
        self.helo: str | None = None
        self.mail_from: str | None = None
        self.rcpt_to: list[str] = []
        self.lock = threading.Lock()
        self.busy = False  # a message is being sent or stored: finish it before stopping

    # -- wire --------------------------------------------------------------------

    def send(self, line: str) -> None:
        try:
            self.sock.sendall(line.encode("utf-8", "replace") + b"\r\n")
        except OSError as exc:
            raise _Closed from exc

    def read_line(self) -> bytes:
        try:
            line = self.file.readline(MAX_LINE + 1)
        except (OSError, ValueError) as exc:
            raise _Closed from exc
        if not line:
            raise _Closed
        if len(line) > MAX_LINE and not line.endswith(b"\n"):
            # Read the rest of the over-long line so the next one is read from its start.
            while line and not line.endswith(b"\n"):
                try:
                    line = self.file.readline(64 * 1024)
                except (OSError, ValueError) as exc:
                    raise _Closed from exc
            return b""
        return line

    def close_for_stop(self) -> None:
        """Called by the server on SIGTERM: an idle connection stops reading at once."""
        with self.lock:
            if not self.busy:
                try:
                    # The plain socket's shutdown: an SSLSocket's own would drop its TLS
                    # state, and the 421 that follows would go out in clear text.
                    socket.socket.shutdown(self.sock, socket.SHUT_RD)
                except OSError:
                    pass

    # -- protocol ------------------------------------------------------------------

    def handle(self) -> None:
        try:
            self.sock.settimeout(COMMAND_TIMEOUT)
            if not self.server.settings.allows(self.peer[0]):
                log.warning("evidence: refused %s: not in --allow", self.peer[0])
                self.send(f"554 5.7.1 {self.peer[0]} may not send mail here")
                return
            self.send(f"220 {self.server.hostname} evidence ESMTP journal receiver")
            while True:
                if self.server.stopping.is_set():
                    self.send("421 4.3.2 shutting down; try again later")
                    return
                line = self.read_line()
                if not line:
                    self.send("500 5.5.2 line too long")
                    continue
                if not self.command(line.rstrip(b"\r\n")):
                    return
        except _Closed:
            if self.server.stopping.is_set():
                try:
                    self.send("421 4.3.2 shutting down; try again later")
                except _Closed:
                    pass
        except TimeoutError:
            try:
                self.send("421 4.4.2 idle too long; closing")
            except _Closed:
                pass
        finally:
            try:
                self.sock.close()
            except OSError:
                pass

    def command(self, raw_line: bytes) -> bool:
        """Answer one command; False to close the connection."""
        text = raw_line.decode("utf-8", "replace")
        if _CONTROL.search(text):
            # Never stored: a NUL in an envelope would make the database refuse the batch.
            self.send("501 5.5.2 control characters are not allowed in commands")
            return True
        verb, _, arg = text.partition(" ")
        verb = verb.upper()
        arg = arg.strip()
        if verb in ("EHLO", "HELO"):
            if not arg:
                self.send(f"501 5.5.4 {verb} needs the client's name")
                return True
            self.helo = arg
            self._reset()
            if verb == "HELO":
                self.send(f"250 {self.server.hostname}")
                return True
            lines = [
                self.server.hostname,
                "PIPELINING",
                "8BITMIME",
                "SMTPUTF8",
                f"SIZE {self.server.limits.max_message_bytes}",
            ]
            if self.server.tls_context is not None and not self.tls:
                lines.append("STARTTLS")
            for line in lines[:-1]:
                self.send(f"250-{line}")
            self.send(f"250 {lines[-1]}")
        elif verb == "STARTTLS":
            self._starttls(arg)
        elif verb == "MAIL":
            self._mail(arg)
        elif verb == "RCPT":
            self._rcpt(arg)
        elif verb == "DATA":
            self._data(arg)
        elif verb == "RSET":
            self._reset()
            self.send("250 2.0.0 reset")
        elif verb == "NOOP":
            self.send("250 2.0.0 OK")
        elif verb == "QUIT":
            self.send("221 2.0.0 bye")
            return False
        elif verb == "VRFY":
            self.send("252 2.5.0 cannot verify; send the message and it will be stored")
        elif verb == "HELP":
            self.send("214 2.0.0 EHLO HELO MAIL RCPT DATA RSET NOOP QUIT STARTTLS")
        else:
            self.send("500 5.5.1 command not recognised")
        return True

    def _reset(self) -> None:
        self.mail_from = None
        self.rcpt_to = []

    def _starttls(self, arg: str) -> None:
        context = self.server.tls_context
        if context is None:
            self.send("502 5.5.1 STARTTLS is not offered here")
            return
        if self.tls:
            self.send("503 5.5.1 TLS is already in use")
            return
        if arg:
            self.send("501 5.5.4 STARTTLS takes no argument")
            return
        self.send("220 2.0.0 ready to start TLS")
        try:
            self.sock = context.wrap_socket(self.sock, server_side=True)
        except (OSError, ssl.SSLError) as exc:
            raise _Closed from exc
        # Whatever the peer sent before the handshake is forgotten (RFC 3207 4.2).
        self.file = self.sock.makefile("rb")
        self.tls = True
        self.helo = None
        self._reset()

    def _mail(self, arg: str) -> None:
        if self.helo is None:
            self.send("503 5.5.1 say EHLO or HELO first")
            return
        if self.mail_from is not None:
            self.send("503 5.5.1 MAIL already given; RSET first")
            return
        if not arg.upper().startswith("FROM:"):
            self.send("501 5.5.4 syntax: MAIL FROM:<address>")
            return
        match = _PATH.match(arg[5:].strip())
        if match is None:
            self.send("501 5.1.7 syntax: MAIL FROM:<address>")
            return
        for param in (match.group(2) or "").split():
            name, _, value = param.partition("=")
            name = name.upper()
            if name == "SIZE":
                if not value.isdigit():
                    self.send("501 5.5.4 SIZE takes a number")
                    return
                if int(value) > self.server.limits.max_message_bytes:
                    self.send(
                        "552 5.3.4 message too large: the limit is "
                        f"{self.server.limits.max_message_bytes} bytes"
                    )
                    return
            elif name == "BODY" and value.upper() in ("7BIT", "8BITMIME"):
                continue
            elif name == "SMTPUTF8" and not value:
                continue
            else:
                self.send(f"555 5.5.4 parameter {name} is not supported")
                return
        self.mail_from = match.group(1)
        self.rcpt_to = []
        self.send("250 2.1.0 OK")

    def _rcpt(self, arg: str) -> None:
        if self.mail_from is None:
            self.send("503 5.5.1 MAIL first")
            return
        if not arg.upper().startswith("TO:"):
            self.send("501 5.5.4 syntax: RCPT TO:<address>")
            return
        match = _PATH.match(arg[3:].strip())
        if match is None or not match.group(1):
            self.send("501 5.1.3 syntax: RCPT TO:<address>")
            return
        if len(self.rcpt_to) >= MAX_RECIPIENTS:
            self.send("452 4.5.3 too many recipients")
            return
        self.rcpt_to.append(match.group(1))
        self.send("250 2.1.5 OK")

    def _data(self, arg: str) -> None:
        if self.mail_from is None:
            self.send("503 5.5.1 MAIL first")
            return
        if not self.rcpt_to:
            self.send("554 5.5.1 no valid recipients")
            return
        if arg:
            self.send("501 5.5.4 DATA takes no argument")
            return
        with self.lock:
            if self.server.stopping.is_set():
                self.send("421 4.3.2 shutting down; try again later")
                raise _Closed
            self.busy = True
        try:
            self.send("354 end data with <CR><LF>.<CR><LF>")
            raw, too_large = self._read_data()
            envelope = Envelope(
                self.mail_from,
                list(self.rcpt_to),
                self.helo or "",
                self.peer[0],
                self.peer[1],
                self.tls,
            )
            self._reset()
            if too_large:
                self.send(
                    "552 5.3.4 message too large: the limit is "
                    f"{self.server.limits.max_message_bytes} bytes"
                )
                return
            delivery = Delivery(envelope, raw, utcnow())
            self.send(self.server.writer.submit(delivery))
        finally:
            with self.lock:
                self.busy = False

    def _read_data(self) -> tuple[bytes, bool]:
        """The message up to the line ``.``: dot-unstuffed (RFC 5321 4.5.2), line ends kept.
        Only CRLF . CRLF ends it (a bare LF . LF is data: no smuggling past the end)."""
        limit = self.server.limits.max_message_bytes
        parts: list[bytes] = []
        size = 0
        too_large = False
        line_start = True  # a line longer than one read comes in pieces: only the first counts
        while True:
            try:
                line = self.file.readline(64 * 1024)
            except (OSError, ValueError) as exc:
                raise _Closed from exc
            if not line:
                raise _Closed  # the peer went away in the middle: nothing was acknowledged
            starts, line_start = line_start, line.endswith(b"\n")
            if starts and line == b".\r\n":
                break
            if starts and line.startswith(b"."):
                line = line[1:]
            size += len(line)
            if size > limit:
                too_large = True
                parts = []
            elif not too_large:
                parts.append(line)
        return b"".join(parts), too_large


class SmtpReceiver:
    """The listening socket, a thread per connection and the writer."""

    def __init__(self, store: Store, settings: ReceiverSettings) -> None:
        self.store = store
        self.settings = settings
        self.limits = mail_limits(store.config)
        self.hostname = socket.gethostname()
        self.stopping = threading.Event()
        self.tls_context: ssl.SSLContext | None = None
        if settings.tls_cert is not None and settings.tls_key is not None:
            context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            context.minimum_version = ssl.TLSVersion.TLSv1_2
            try:
                context.load_cert_chain(settings.tls_cert, settings.tls_key)
            except (OSError, ssl.SSLError) as exc:
                raise EvidenceError(
                    f"cannot use --tls-cert {settings.tls_cert} with --tls-key "
                    f"{settings.tls_key}: {exc}"
                ) from exc
            self.tls_context = context
        self.sessions: set[SmtpConnection] = set()
        self.sessions_lock = threading.Lock()
        self.threads: list[threading.Thread] = []
        self.listener = self._bind()
        # The port actually bound (port 0: the system chose one) names the source.
        self.settings = replace(settings, port=int(self.listener.getsockname()[1]))
        self.writer = Writer(store, self.settings, self.limits)

    def _bind(self) -> socket.socket:
        """The listening socket."""
        settings = self.settings
        try:
            infos = socket.getaddrinfo(
                settings.host, settings.port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
            )
        except socket.gaierror as exc:
            raise EvidenceError(f"--listen {settings.listener}: {exc.strerror}") from exc
        family, kind, proto, _, address = infos[0]
        sock = socket.socket(family, kind, proto)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(address)
        except OSError as exc:
            sock.close()
            raise EvidenceError(
                f"cannot listen on {settings.listener}: {exc.strerror}"
                + (" (another program holds the port)" if exc.errno == 98 else "")
            ) from exc
        sock.listen(128)
        sock.settimeout(0.5)
        return sock

    def stop(self) -> None:
        """Ask the receiver to stop (safe from a signal handler)."""
        self.stopping.set()

    def serve(self, ready: Callable[[str, int], None] | None = None) -> ImportReport:
        """Take mail until ``stop``; then finish what is being sent, close the run with a
        checkpoint and return what was stored."""
        self.writer.importer.start()
        self.writer.start()
        if ready is not None:
            host, port = self.listener.getsockname()[:2]
            ready(str(host), int(port))
        try:
            while not self.stopping.is_set():
                try:
                    sock, peer = self.listener.accept()
                except TimeoutError:
                    continue
                except OSError as exc:
                    log.error("evidence: accept failed: %s", exc)
                    continue
                self._start_session(sock, peer)
        finally:
            self.listener.close()
            self._wind_down()
        return self.writer.report

    def _start_session(self, sock: socket.socket, peer: tuple[str, int]) -> None:
        self.threads = [t for t in self.threads if t.is_alive()]
        if len(self.threads) >= MAX_SESSIONS:
            try:
                sock.sendall(b"421 4.3.2 too many connections; try again later\r\n")
            except OSError:
                pass
            sock.close()
            return
        session = SmtpConnection(self, sock, (peer_address(str(peer[0])), int(peer[1])))

        def run() -> None:
            try:
                session.handle()
            except Exception:  # one connection's bug must not stop the others
                log.exception("evidence: SMTP connection from %s failed", peer[0])
            finally:
                with self.sessions_lock:
                    self.sessions.discard(session)

        with self.sessions_lock:
            self.sessions.add(session)
        thread = threading.Thread(target=run, name=f"smtp {peer[0]}", daemon=True)
        self.threads.append(thread)
        thread.start()

    def _wind_down(self) -> None:
        with self.sessions_lock:
            open_sessions = list(self.sessions)
        for session in open_sessions:
            session.close_for_stop()
        deadline = time.monotonic() + STOP_GRACE
        for thread in self.threads:
            thread.join(max(0.0, deadline - time.monotonic()))
        self.writer.inbox.put(None)
        self.writer.join()
        self.writer.importer.finish("receive smtp")


def receive_smtp(
    store: Store,
    settings: ReceiverSettings,
    *,
    ready: Callable[[str, int], None] | None = None,
    receiver: Callable[[SmtpReceiver], None] | None = None,
) -> ImportReport:
    """Run the receiver until it is stopped (``SmtpReceiver.stop``, e.g. on SIGTERM).

    ``ready(host, port)`` is called once it listens; ``receiver`` is handed the
    receiver first (to wire a signal handler to its ``stop``)."""
    server = SmtpReceiver(store, settings)
    if receiver is not None:
        receiver(server)
    return server.serve(ready)
