"""Legal holds on a customer's data."""

from __future__ import annotations

import click

from evidence.cli.base import current_config, echo_json, json_option, main
from evidence.service import holds
from evidence.service.result import as_list


@main.group()
def hold() -> None:
    """Legal holds: keep a customer's data whatever else is asked (GDPR Art. 17(3)(e))."""


@hold.command("add")
@click.argument("ref")
@click.option("--reason", required=True, help="Why the data is held.")
@click.option("--by", help="Who places the hold (default: EVIDENCE_USER, else login@host).")
def hold_add(ref: str, reason: str, by: str | None) -> None:
    """Place a legal hold on a customer, or on a case (which holds its customer).

    REF is a customer reference, else a case reference. While a hold is active,
    `evidence customer erase` refuses. Holds are chained like evidence.

    Example:

    \b
        evidence hold add 100234 --reason "court summons of 2026-11-20"
    """
    placed = holds.add_hold(current_config(), ref, reason=reason, by=by)
    on = (
        f"case {placed.case} (customer {placed.customer})"
        if placed.case
        else (f"customer {placed.customer}")
    )
    click.echo(f"legal hold #{placed.id} on {on}")


@hold.command("release")
@click.argument("ref")
@click.option("--reason", required=True, help="Why the hold ends.")
@click.option("--by", help="Who releases it (default: EVIDENCE_USER, else login@host).")
def hold_release(ref: str, reason: str, by: str | None) -> None:
    """Release the active holds placed on REF. The release is a new record; the hold stays.

    Example:

    \b
        evidence hold release 100234 --reason "proceedings ended 2026-12-15"
    """
    for release in holds.release_hold(current_config(), ref, reason=reason, by=by):
        click.echo(f"legal hold #{release.releases} released (record #{release.id})")


@hold.command("list")
@json_option
def hold_list(as_json: bool) -> None:
    """List legal holds, active and released.

    Example:

    \b
        evidence hold list --json
    """
    rows = as_list(holds.list_holds(current_config()))
    if as_json:
        echo_json(rows)
        return
    for row in rows:
        state = "active" if row["active"] else f"released {row['released_at']}"
        click.echo(f"#{row['id']}\t{row['ref']}\t{state}\t{row['held_at']}\t{row['reason']}")
