"""What an email's kept headers say under the configuration in force: when it was
received, and which way it went.

Nothing here is frozen at import. The raw message is kept; at import its
``Received:`` lines are parsed into ``email_received`` rows and its From, To, Cc
and Bcc into ``email_addresses``. When the store is read, the rules below pick
the receive time and the direction from those, with the configuration of now:
setting the company's mail domains or receiving hosts later re-derives every
email, and a bare configuration costs precision, never an email.

Receive time (``placement``):

0. a message our own SMTP receiver took (``evidence receive smtp``): the time it
   took it, by our clock (the earliest delivery when there were more); flagged
   ``smtp-receiver``. Taken in the same moment as the mail server delivered it,
   it needs no trust in any Received: line;
1. with ``[mail] receiving_hosts`` set: the topmost ``Received:`` line whose
   ``by`` host matches one of the patterns and whose date parses;
2. otherwise (or when none matches): the topmost ``Received:`` line whose date
   parses: the last hop, the one into the mailbox (our server, or the mail
   provider's: ``by mail-ej1-f41.google.com``, ``by AM0PR07MB1234...outlook.com``);
3. no usable ``Received:`` line: the sender's ``Date`` header, flagged
   ``date-header`` (``own-date`` when the sender is one of the company's mail
   domains: our own outgoing mail, dated by our clock);
4. neither: the time it was imported, flagged ``import-time``.

Direction (``direction``): with company mail domains, mail from one of them is
ours (outbound) and any other is to us (inbound). Without them, it is relative
to the customer: mail the customer sent is inbound, mail sent to the customer
outbound.
"""

from __future__ import annotations

import datetime as dt
import fnmatch
from collections import defaultdict
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from sqlalchemy import CompoundSelect, func, select, union
from sqlalchemy.orm import Session

from evidence.config import Config
from evidence.store.models import (
    Direction,
    Email,
    EmailReceived,
    ReceivedSource,
    SmtpDelivery,
)


@dataclass(frozen=True)
class MailRules:
    """The configuration that decides receive times and directions."""

    domains: tuple[str, ...] = ()
    receiving_hosts: tuple[str, ...] = ()

    @classmethod
    def of(cls, config: Config) -> MailRules:
        return cls(config.mail_domains, config.receiving_hosts)

    def is_own(self, address: str | None) -> bool:
        """True when ``address`` is in one of the company's own mail domains."""
        if not address:
            return False
        domain = address.rpartition("@")[2].lower()
        return any(domain == d or domain.endswith("." + d) for d in self.domains)

    def is_receiving_host(self, host: str | None) -> bool:
        return bool(host) and any(
            fnmatch.fnmatchcase(str(host).lower(), pattern) for pattern in self.receiving_hosts
        )


@dataclass(frozen=True)
class Placement:
    """When an email is placed on the timeline, and from what."""

    at: dt.datetime
    source: ReceivedSource
    host: str | None = None  # the by host of the Received: line used
    # the line's host is one of the configured receiving hosts
    by_receiving_host: bool = False
    # receiving hosts are configured but no Received: line names one: the topmost was used
    unmatched: bool = False


Hop = tuple[str | None, dt.datetime | None]  # a Received: line's by host and time


def placement(mail: Email, rules: MailRules) -> Placement:
    """The receive time of ``mail`` under ``rules`` (see the module's docstring)."""
    return _place(
        [(hop.by_host, hop.received_at) for hop in mail.hops],
        mail.received_at,
        mail.received_source,
        mail.date_header,
        mail.from_addr,
        mail.imported_at,
        rules,
        min((d.received_at for d in mail.deliveries), default=None),
    )


def placements(
    session: Session, rules: MailRules, ids: Iterable[int] | None = None
) -> dict[int, Placement]:
    """The receive time of every email (or of those in ``ids``), read as plain rows."""
    columns = (
        Email.id,
        Email.received_at,
        Email.received_source,
        Email.date_header,
        Email.from_addr,
        Email.imported_at,
    )
    hop_columns = (EmailReceived.email_id, EmailReceived.by_host, EmailReceived.received_at)
    wanted = None if ids is None else sorted(set(ids))
    batches = (
        [None] if wanted is None else [wanted[i : i + 500] for i in range(0, len(wanted), 500)]
    )
    result: dict[int, Placement] = {}
    for batch in batches:
        mails = select(*columns)
        hop_rows = select(*hop_columns).order_by(EmailReceived.email_id, EmailReceived.position)
        if batch is not None:
            mails = mails.where(Email.id.in_(batch))
            hop_rows = hop_rows.where(EmailReceived.email_id.in_(batch))
        captured_rows = select(SmtpDelivery.email_id, func.min(SmtpDelivery.received_at)).where(
            SmtpDelivery.email_id.is_not(None)
        )
        if batch is not None:
            captured_rows = captured_rows.where(SmtpDelivery.email_id.in_(batch))
        captured: dict[int, dt.datetime] = {
            int(email_id): at  # min() keeps the column's type: aware UTC
            for email_id, at in session.execute(captured_rows.group_by(SmtpDelivery.email_id))
            if email_id is not None
        }
        hops: dict[int, list[Hop]] = defaultdict(list)
        for email_id, host, at in session.execute(hop_rows):
            hops[email_id].append((host, at))
        for email_id, received_at, source, date_header, sender, imported_at in session.execute(
            mails
        ):
            result[email_id] = _place(
                hops.get(email_id, []),
                received_at,
                source,
                date_header,
                sender,
                imported_at,
                rules,
                captured.get(email_id),
            )
    return result


def emails_between(
    session: Session, start: dt.datetime, end: dt.datetime, rules: MailRules
) -> list[int]:
    """Ids of the emails placed in [start, end), in time order.

    An email's time is our SMTP receiver's time, one of its Received: times, its Date,
    its import time or its recorded time, so those indexed columns find every candidate."""
    candidates: CompoundSelect[int | None] = union(
        select(EmailReceived.email_id).where(
            EmailReceived.received_at >= start, EmailReceived.received_at < end
        ),
        select(Email.id).where(Email.date_header >= start, Email.date_header < end),
        select(Email.id).where(Email.imported_at >= start, Email.imported_at < end),
        select(Email.id).where(Email.received_at >= start, Email.received_at < end),
        select(SmtpDelivery.email_id).where(
            SmtpDelivery.email_id.is_not(None),
            SmtpDelivery.received_at >= start,
            SmtpDelivery.received_at < end,
        ),
    )
    ids = [int(i) for i in session.scalars(candidates) if i is not None]
    placed = placements(session, rules, ids)
    inside = [i for i, p in placed.items() if start <= p.at < end]
    return sorted(inside, key=lambda i: (placed[i].at, i))


def _place(
    hops: list[Hop],
    recorded_at: dt.datetime,
    recorded_source: ReceivedSource,
    date_header: dt.datetime | None,
    sender: str | None,
    imported_at: dt.datetime,
    rules: MailRules,
    captured: dt.datetime | None = None,
) -> Placement:
    if captured is not None:
        return Placement(captured, ReceivedSource.SMTP_RECEIVER)
    if not hops and recorded_source is ReceivedSource.RECEIVED_HEADER:
        # Imported before migration 0010 with its raw bytes erased since, so its
        # Received: lines could not be read again: its time as derived at import stands.
        return Placement(recorded_at, ReceivedSource.RECEIVED_HEADER)
    return choose(hops, date_header, sender, imported_at, rules)


def choose(
    hops: list[Hop],
    date_header: dt.datetime | None,
    sender: str | None,
    imported_at: dt.datetime,
    rules: MailRules,
    captured: dt.datetime | None = None,
) -> Placement:
    """The rule itself, on plain values (the import records what it gives then);
    ``captured``: when our SMTP receiver took the message (rule 0)."""
    if captured is not None:
        return Placement(captured, ReceivedSource.SMTP_RECEIVER)
    dated = [(host, at) for host, at in hops if at is not None]
    if rules.receiving_hosts:
        for host, at in dated:
            if rules.is_receiving_host(host):
                assert at is not None
                return Placement(at, ReceivedSource.RECEIVED_HEADER, host, by_receiving_host=True)
    if dated:
        host, at = dated[0]
        assert at is not None
        return Placement(
            at, ReceivedSource.RECEIVED_HEADER, host, unmatched=bool(rules.receiving_hosts)
        )
    if date_header is not None:
        own = rules.is_own(sender)
        return Placement(
            date_header, ReceivedSource.OWN_DATE if own else ReceivedSource.DATE_HEADER
        )
    return Placement(imported_at, ReceivedSource.IMPORT_TIME)


def direction(mail: Email, rules: MailRules, *, party_sent: bool) -> Direction:
    """Which way ``mail`` went. ``party_sent``: the customer (or, company-wide, a
    customer) is its sender; used only when no company domain is configured."""
    if rules.domains:
        return Direction.OUTBOUND if rules.is_own(mail.from_addr) else Direction.INBOUND
    return Direction.INBOUND if party_sent else Direction.OUTBOUND


def describe_rules(
    rules: MailRules, _: Callable[[str], str] = str, *, captured: bool = False
) -> list[str]:
    """The rules in force, in words (``_`` translates them for a dossier). ``captured``:
    some of the emails described were taken by our SMTP receiver (rule 0 is stated)."""
    sentences = [
        _(
            "An email belongs to the customer's history when one of the customer's addresses "
            "is in its From, To, Cc or Bcc at the time it was received."
        )
    ]
    if rules.domains:
        sentences.append(
            _(
                "Direction: the company's mail domains are {domains}; an email from them is "
                "the company's (outbound), any other was sent to the company (inbound)."
            ).format(domains=", ".join(rules.domains))
        )
    else:
        sentences.append(
            _(
                "Direction: no company mail domain is configured, so the direction is relative "
                "to the customer: an email the customer sent is inbound, an email sent to the "
                "customer is outbound."
            )
        )
    if captured:
        sentences.append(
            _(
                "Receive time of an email our own SMTP receiver took (the mail server's journal "
                "copy): the time the receiver took it, by our clock, whatever its Received "
                "headers say; its SMTP envelope is shown next to it."
            )
        )
    if rules.receiving_hosts:
        sentences.append(
            _(
                "Receive time: the time on the topmost Received header added by one of the "
                "company's receiving hosts ({hosts}); without one, the topmost Received header."
            ).format(hosts=", ".join(rules.receiving_hosts))
        )
    else:
        sentences.append(
            _(
                "Receive time: the time on the topmost Received header, the last hop into the "
                "mailbox (the company's mail server or its mail provider's)."
            )
        )
    sentences.append(
        _(
            "An email without a Received header is placed at its Date header, one without "
            "either at the time it was imported; each such email says so."
        )
    )
    return sentences


def unconfigured_note(rules: MailRules) -> str | None:
    """What a missing ``[company] mail_domains`` means, for ``init``, ``status`` and imports."""
    if rules.domains:
        return None
    return (
        "no company mail domain is set: every email with a customer's address in From, To, "
        "Cc or Bcc is still in their history, but its direction is taken relative to the "
        "customer (sent by them: inbound; sent to them: outbound) and our own outgoing mail "
        "without a Received: line is placed at its Date header. Set the domains with "
        "`evidence init --mail-domain example.com` (every stored email is re-derived)"
    )
