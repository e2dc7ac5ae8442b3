"""Legal holds on a customer's data."""

from __future__ import annotations

import json

import click

from evidence.cli.base import json_option, main, opened_store
from evidence.timeutil import iso_utc


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
    from evidence.holds import add_hold

    with opened_store() as store:
        placed = add_hold(store, ref, reason=reason, by=by)
    on = (
        f"case {placed.case_ref} (customer {placed.customer_ref})"
        if placed.case_ref
        else (f"customer {placed.customer_ref}")
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
    from evidence.holds import release_hold

    with opened_store() as store:
        releases = release_hold(store, ref, reason=reason, by=by)
    for release in releases:
        click.echo(f"legal hold #{release.releases_id} released (record #{release.id})")


@hold.command("list")
@json_option
def hold_list(as_json: bool) -> None:
    """List legal holds, active and released.

    Example:

    \b
        evidence hold list --json
    """
    from evidence.holds import list_holds

    with opened_store() as store:
        states = list_holds(store)
    rows = [
        {
            "id": s.hold.id,
            "ref": s.ref,
            "customer": s.hold.customer_ref,
            "case": s.hold.case_ref,
            "reason": s.hold.reason,
            "held_by": s.hold.actor,
            "held_at": iso_utc(s.hold.at),
            "active": s.active,
            "released_at": iso_utc(s.release.at) if s.release else None,
            "released_by": s.release.actor if s.release else None,
            "release_reason": s.release.reason if s.release else None,
        }
        for s in states
    ]
    if as_json:
        click.echo(json.dumps(rows, ensure_ascii=False, indent=2))
        return
    for row in rows:
        state = "active" if row["active"] else f"released {row['released_at']}"
        click.echo(f"#{row['id']}\t{row['ref']}\t{state}\t{row['held_at']}\t{row['reason']}")


# --- imports --------------------------------------------------------------------
