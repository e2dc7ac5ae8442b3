"""Customers: who they are, their addresses and numbers, and erasure."""

from __future__ import annotations

import datetime as dt

import click

from evidence.cli.base import MOMENT, current_config, echo_json, json_option, main
from evidence.service import customers
from evidence.service.result import as_list
from evidence.timeutil import DATE_FORMS, TIME_FORMS, UserTime, format_local


@main.group()
def customer() -> None:
    """Customers and the addresses and numbers that identify them."""


@customer.command("add")
@click.argument("ref")
@click.option("--name", help="The customer's name (required for a new customer).")
@click.option("--email", "emails", multiple=True, help="Email address; repeatable.")
@click.option("--phone", "phones", multiple=True, help="Phone number, any spelling; repeatable.")
def customer_add(
    ref: str, name: str | None, emails: tuple[str, ...], phones: tuple[str, ...]
) -> None:
    """Add a customer, or more addresses and numbers to one.

    Email addresses match case-insensitively; phone numbers are stored in
    E.164, so 040 123 4567 and +358401234567 are the same number.

    Example:

    \b
        evidence customer add 100234 --name "Matti Virtanen" \\
            --email matti.virtanen@example.net --phone "040 123 4567"
    """
    added = customers.add_customer(
        current_config(), ref, name=name, emails=list(emails), phones=list(phones)
    )
    ids = ", ".join(added.identifiers) or "no identifiers yet"
    click.echo(f"customer {added.ref} ({added.name}): {ids}")


@customer.command("update")
@click.argument("ref")
@click.option("--name", help="The customer's new name.")
@click.option("--add-email", "add_emails", multiple=True, help="An address that becomes theirs.")
@click.option("--add-phone", "add_phones", multiple=True, help="A number that becomes theirs.")
@click.option(
    "--remove-email", "remove_emails", multiple=True, help="An address that is no longer theirs."
)
@click.option(
    "--remove-phone", "remove_phones", multiple=True, help="A number that is no longer theirs."
)
@click.option(
    "--from",
    "valid_from",
    required=True,
    type=MOMENT,
    help=f"When the change took effect: a day ({DATE_FORMS}; its local start) or a time "
    f"({TIME_FORMS}).",
)
@click.option("--reason", required=True, help="Why (shown in every dossier of the customer).")
@click.option("--by", help="Who records the change (default: EVIDENCE_USER, else login@host).")
def customer_update(
    ref: str,
    name: str | None,
    add_emails: tuple[str, ...],
    add_phones: tuple[str, ...],
    remove_emails: tuple[str, ...],
    remove_phones: tuple[str, ...],
    valid_from: UserTime,
    reason: str,
    by: str | None,
) -> None:
    """Record a new version of a customer: addresses or numbers added or removed, or a
    new name, from a time on. Nothing is overwritten: the old version stays and
    every dossier lists the identifiers with their validity and the reason.

    An email or call belongs to the customer when one of its addresses or numbers
    was theirs at its time: a number that moved to someone else on 1 October stops
    selecting this customer's calls from then on. Repeatable options.

    Example:

    \b
        evidence customer update 100234 --remove-phone "040 123 4567" \\
            --from "2026-10-01 00:00" --reason "number moved to another subscriber"
        evidence customer update 100777 --add-phone "040 123 4567" \\
            --from "2026-10-01 00:00" --reason "new subscriber of the number"
    """
    config = current_config()
    change = customers.update_customer(
        config,
        ref,
        valid_from=valid_from.at(config.zone),
        reason=reason,
        name=name,
        add_emails=add_emails,
        add_phones=add_phones,
        remove_emails=remove_emails,
        remove_phones=remove_phones,
        by=by,
    )
    what = ", ".join(f"{i.action} {i.value}" for i in change.identifiers)
    if change.name:
        what = ", ".join(filter(None, [what, f"name {change.name!r}"]))
    click.echo(
        f"customer {ref}: version #{change.id} from "
        f"{format_local(change.valid_from, config.zone)}: {what}"
    )


@customer.command("show")
@click.argument("ref")
@json_option
def customer_show(ref: str, as_json: bool) -> None:
    """A customer's identifiers, the periods each was theirs, and every change.

    Example:

    \b
        evidence customer show 100234 --json
    """
    config = current_config()
    data = customers.show_customer(config, ref)
    if as_json:
        echo_json(data)
        return
    click.echo(f"{data['ref']}\t{data['name']}")

    def local(value: str | None, missing: str) -> str:
        return format_local(dt.datetime.fromisoformat(value), config.zone) if value else missing

    for item in data["identifiers"]:
        periods = "; ".join(
            f"{local(p['from'], 'since ever')} – {local(p['until'], 'still')}"
            for p in item["periods"]
        )
        click.echo(f"  {item['kind']} {item['value']}: {periods or 'never'}")
    for change in data["changes"]:
        what = [f"+{v}" for v in change["added"]] + [f"-{v}" for v in change["removed"]]
        if change["name"]:
            what.append(f"name {change['name']!r}")
        click.echo(
            f"  version #{change['id']} from {local(change['valid_from'], '')}: "
            f"{', '.join(what)} ({change['reason']}; recorded "
            f"{local(change['recorded_at'], '')} by {change['by']})"
        )


@customer.command("list")
@json_option
def customer_list(as_json: bool) -> None:
    """List customers with their identifiers now.

    Example:

    \b
        evidence customer list --json
    """
    rows = as_list(customers.list_customers(current_config()))
    if as_json:
        echo_json(rows)
        return
    for row in rows:
        click.echo(f"{row['ref']}\t{row['name']}\t{', '.join(row['identifiers'])}")


@customer.command("erase")
@click.argument("ref")
@click.option("--reason", required=True, help="Why (e.g. the request's date); kept in the log.")
@click.option("--yes", is_flag=True, help="Do not ask for confirmation.")
@click.option("--by", help="Who erases (default: EVIDENCE_USER, else login@host).")
def customer_erase(ref: str, reason: str, yes: bool, by: str | None) -> None:
    """Erase a customer's personal content (GDPR Art. 17), leaving a tombstone in the log.

    Refused (exit 6) while the customer has an open case or an active legal
    hold (Art. 17(3)(e)). Otherwise removes the bytes of the customer's emails,
    attachments and call recordings (a blob another record also cites stays)
    and of the phone-system lines of their calls, blanks subjects, addresses,
    numbers and file names in the store and in the ledger, and removes the
    customer's name and identifiers. The hash chain and every signed checkpoint
    still verify: `evidence verify` reports the erasure (when, why, by whom,
    which blobs). Emails and calls that are also another customer's stay whole.

    Example:

    \b
        evidence customer erase 100234 --reason "erasure request of 2026-11-20" --yes
    """
    config = current_config()
    if not yes:
        plan = customers.plan_erasure(config, ref)
        click.echo(
            f"customer {ref}: {plan.emails} emails, {plan.recordings} "
            f"recordings and {plan.lines} call-log lines erased, {plan.blobs} "
            f"blobs removed; kept as shared with other customers: "
            f"{plan.shared_emails} emails, {plan.shared_recordings} recordings, "
            f"{plan.shared_lines} call-log lines, {plan.shared_blobs} blobs"
        )
        click.confirm("This cannot be undone. Erase?", abort=True)
    done = customers.erase_customer(config, ref, reason=reason, by=by)
    click.echo(
        f"erased customer {ref}: {done.emails} emails, {done.recordings} recordings, "
        f"{done.lines} call-log lines, {done.blobs} blobs "
        f"(erasure #{done.erasure}, chained; {done.shared_blobs} shared blobs kept)"
    )
