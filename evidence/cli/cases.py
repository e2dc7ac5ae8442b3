"""Cases: a regulator's request for one customer's history, its documents and claims."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import click

from evidence.cli.base import (
    DATE,
    PERIOD,
    current_config,
    echo_json,
    in_order,
    json_option,
    main,
)
from evidence.service import cases
from evidence.service.result import as_list
from evidence.timeutil import DATE_FORMS


@main.group()
def case() -> None:
    """Cases: a regulator's request about a customer, and its legal PDFs."""


@case.command("open")
@click.argument("reference")
@click.option("--customer", "customer_ref", required=True, help="Customer reference.")
@click.option(
    "--authority",
    required=True,
    help="Who asks: a key (lvv, kkv, kril, traficom, energiavirasto: the name is printed in "
    "the dossier's language) or any name, e.g. 'Etelä-Suomen AVI'.",
)
@click.option("--received", type=DATE, help=f"Date the request arrived ({DATE_FORMS}).")
@click.option(
    "--deadline", type=DATE, help=f"Date the answer is due ({DATE_FORMS}); not before --received."
)
@click.option(
    "--period",
    type=PERIOD,
    help=f"Local days the request covers, FROM..TO (inclusive; each {DATE_FORMS}); the "
    "default period of `export --case`.",
)
def case_open(
    reference: str,
    customer_ref: str,
    authority: str,
    received: dt.date | None,
    deadline: dt.date | None,
    period: tuple[dt.date | None, dt.date | None] | None,
) -> None:
    """Open a case for a customer.

    --authority takes a known key, and the dossier's cover names the authority
    in its own language: lvv (Lupa- ja valvontavirasto / Tillstånds- och
    tillsynsverket, the AVIs' successor from 1.1.2026), kkv (Kilpailu- ja
    kuluttajavirasto, kuluttajaneuvonta), kril (Kuluttajariitalautakunta),
    traficom (Liikenne- ja viestintävirasto Traficom), energiavirasto
    (Energiavirasto); or any other name as free text.

    Example:

    \b
        evidence case open ESAVI/31337/2026 --customer 100234 \\
            --authority lvv --received 2026-10-20 \\
            --deadline 2026-11-03 --period 2026-09-28..2026-09-30
    """
    in_order(received, deadline, "--received", "--deadline")
    period_from, period_to = period or (None, None)
    opened = cases.open_case(
        current_config(),
        reference,
        customer_ref=customer_ref,
        authority=authority,
        received=received,
        deadline=deadline,
        period_from=period_from,
        period_to=period_to,
    )
    click.echo(f"case {opened.reference} opened")


@case.command("close")
@click.argument("reference")
@click.option("--reason", required=True, help="Why the case is closed (kept in the audit log).")
@click.option("--by", help="Who closes it (default: EVIDENCE_USER, else login@host).")
def case_close(reference: str, reason: str, by: str | None) -> None:
    """Close a case once it is settled; its customer's data is then no longer held for it.

    While a customer has an open case, `evidence customer erase` refuses
    (GDPR Art. 17(3)(e)). The closing is recorded in the audit log.

    Example:

    \b
        evidence case close ESAVI/31337/2026 --reason "AVI decision of 2026-12-01 received"
    """
    closed = cases.close_case(current_config(), reference, reason=reason, by=by)
    click.echo(f"case {closed} closed")


def _days_left_text(days_left: int | None) -> str:
    if days_left is None:
        return "no deadline"
    if days_left < 0:
        return f"overdue by {-days_left} day{'' if days_left == -1 else 's'}"
    if days_left == 0:
        return "due today"
    return f"{days_left} day{'' if days_left == 1 else 's'} left"


@case.command("list")
@click.option(
    "--today", type=DATE, help=f"Count days left from this day instead of today ({DATE_FORMS})."
)
@json_option
def case_list(today: dt.date | None, as_json: bool) -> None:
    """List cases with the days left to each deadline, overdue first.

    Days are counted in EVIDENCE_TIMEZONE; a negative days_left is overdue.

    Example:

    \b
        evidence case list
        evidence case list --json
    """
    rows = cases.list_cases(current_config(), today=today)
    if as_json:
        echo_json(as_list(rows))
        return
    for row in rows:
        click.echo(
            f"{row.reference}\t{row.customer}\t{row.authority_name}\t"
            f"{row.deadline.isoformat() if row.deadline else '-'}\t"
            f"{_days_left_text(row.days_left)}"
        )


@case.command("attach")
@click.argument("reference")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--title", required=True, help="What the document is.")
@click.option("--date", "document_date", type=DATE, help=f"The document's own date ({DATE_FORMS}).")
def case_attach(reference: str, file: Path, title: str, document_date: dt.date | None) -> None:
    """Attach a PDF (the regulator's letter, a reply) to a case, byte-exact.

    Example:

    \b
        evidence case attach ESAVI/31337/2026 selvityspyynto.pdf --title "Selvityspyyntö"
    """
    document = cases.attach_document(
        current_config(), reference, file, title=title, document_date=document_date
    )
    click.echo(f"attached {document.filename} to {reference} (SHA-256 {document.sha256})")


@case.command("show")
@click.argument("reference")
@json_option
def case_show(reference: str, as_json: bool) -> None:
    """Show a case, its documents and the customer's claims.

    Example:

    \b
        evidence case show ESAVI/31337/2026 --json
    """
    found = cases.show_case(current_config(), reference)
    data = found.as_dict()
    if as_json:
        echo_json(data)
        return
    click.echo(f"{found.reference}: customer {found.customer}, {found.authority_name}")
    click.echo(f"received {data['received'] or '-'}, deadline {data['deadline'] or '-'}")
    if found.period_from or found.period_to:
        click.echo(f"period {data['period_from'] or ''}..{data['period_to'] or ''}")
    for doc in found.documents:
        click.echo(f"  {doc.title}: {doc.filename} ({doc.size} bytes) {doc.sha256}")
    for claim in found.claims:
        click.echo(f"  claim #{claim.id}: {claim.text}")
        if claim.evidence:
            click.echo(f"    evidence: {', '.join(claim.evidence)}")


@case.command("claim")
@click.argument("reference")
@click.option("--text", required=True, help="The claim, in the customer's words.")
@click.option(
    "--evidence",
    "items",
    multiple=True,
    help="A timeline item id the claim concerns (as `timeline --json` prints it); repeatable.",
)
@click.option("--corrects", type=int, help="The claim number this one replaces.")
def case_claim(reference: str, text: str, items: tuple[str, ...], corrects: int | None) -> None:
    """Record a claim of the customer, tied to the items that bear on it.

    Items are ids from `evidence timeline REF --json` (email:12,
    call:1790579705.312, incident:1) and must be in the case customer's
    timeline. Claims are never edited: --corrects N records a new version.

    Example:

    \b
        evidence case claim ESAVI/31337/2026 --text "queued at least half an hour" \\
            --evidence call:1790579705.312 --evidence call:1790581330.313
    """
    claim = cases.add_claim(current_config(), reference, text, list(items), corrects=corrects)
    count = len(claim.evidence)
    click.echo(
        f"claim #{claim.id} recorded on {reference} ({count} item{'' if count == 1 else 's'})"
    )
