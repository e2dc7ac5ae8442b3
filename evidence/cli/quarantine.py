"""The quarantine: input that could not be read, kept byte-exact."""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING

import click

from evidence.cli.base import current_config, echo_json, json_option, main, opened_store
from evidence.timeutil import format_local

if TYPE_CHECKING:
    from zoneinfo import ZoneInfo

    from evidence.store.models import QuarantineDismissal


@main.group()
def quarantine() -> None:
    """Input that could not be imported (mail, call-log lines, recordings) and why."""


@quarantine.command("list")
@click.option("--kind", help="Only this kind, e.g. mail, asterisk-cdr, asterisk-queue-log.")
@click.option("--open", "only_open", is_flag=True, help="Leave out dismissed items.")
@json_option
def quarantine_list(kind: str | None, only_open: bool, as_json: bool) -> None:
    """List quarantined input of every kind, oldest first.

    A dismissed item is listed with who dismissed it, when and why (`dismissed`,
    `dismissed_at`, `dismissed_by`, `dismiss_reason` in --json) unless --open.

    Example:

    \b
        evidence quarantine list --kind mail --json
    """
    from evidence.records.quarantine import list_quarantine

    config = current_config()
    with opened_store() as store, store.session() as session:
        items = list_quarantine(session, kind, dismissed=not only_open)
        rows = [q.as_dict() for q in items]
        when = [format_local(q.item.quarantined_at, config.zone) for q in items]
        gone = [_dismissed_text(q.dismissal, config.zone) for q in items]
    if as_json:
        echo_json(rows)
        return
    for row, at, dismissed in zip(rows, when, gone, strict=True):
        where = f"{row['source']}:{row['locator']}" if row["locator"] else row["source"]
        mark = f"\t{dismissed}" if dismissed else ""
        click.echo(f"#{row['id']}\t{row['kind']}\t{at}\t{where}\t{row['reason']}{mark}")


def _dismissed_text(dismissal: QuarantineDismissal | None, zone: ZoneInfo) -> str:
    if dismissal is None:
        return ""
    return (
        f"DISMISSED {format_local(dismissal.dismissed_at, zone)} by {dismissal.dismissed_by}: "
        f"{dismissal.reason}"
    )


@quarantine.command("show")
@click.argument("item_id", metavar="ID", type=int)
@click.option("--raw", is_flag=True, help="Write the quarantined bytes to stdout, exactly.")
@json_option
def quarantine_show(item_id: int, raw: bool, as_json: bool) -> None:
    """Show one quarantined item: where it came from, why, and its first lines.

    Example:

    \b
        evidence quarantine show 17
        evidence quarantine show 17 --raw > message-17.eml
    """
    from evidence.records.quarantine import get_quarantined

    config = current_config()
    with opened_store() as store, store.session() as session:
        found, data = get_quarantined(session, item_id)
        row = found.as_dict()
        at = format_local(found.item.quarantined_at, config.zone)
        dismissed = _dismissed_text(found.dismissal, config.zone)
    if raw:
        sys.stdout.buffer.write(data)
        sys.stdout.buffer.flush()
        return
    if as_json:
        echo_json(row)
        return
    where = f"{row['source']} ({row['locator']})" if row["locator"] else row["source"]
    click.echo(f"quarantine #{row['id']} ({row['kind']}), {at}")
    click.echo(f"from:   {where}")
    click.echo(f"reason: {row['reason']}")
    click.echo(f"bytes:  {row['size']:,}, SHA-256 {row['sha256']}")
    if dismissed:
        click.echo(dismissed)
    click.echo("first lines:")
    for line in data[:2000].decode("utf-8", "replace").splitlines()[:12]:
        printable = "".join(c if c.isprintable() else "\ufffd" for c in line.expandtabs(4))
        click.echo(f"  {printable[:200]}")


@quarantine.command("dismiss")
@click.argument("item_id", metavar="ID", type=int)
@click.option("--reason", required=True, help="Why it is no part of any source (kept, chained).")
@click.option("--by", help="Who dismisses it (default: the OS user).")
def quarantine_dismiss(item_id: int, reason: str, by: str | None) -> None:
    """Set aside a quarantined item that is no part of any source, e.g. a file imported
    by mistake.

    The item and its bytes stay in the quarantine (`quarantine list` marks it);
    the dismissal is a new record, chained like evidence, saying who, when and
    why. A dismissed item is no longer listed in a dossier's completeness of
    the sources, nor counted by `evidence status`.

    Example:

    \b
        evidence quarantine dismiss 17 --reason "Master.csv imported as mail by mistake"
    """
    from evidence.records.quarantine import dismiss

    with opened_store() as store:
        found = dismiss(store, item_id, reason=reason, by=by)
    assert found.dismissal is not None
    click.echo(
        f"quarantine #{item_id} dismissed by {found.dismissal.dismissed_by} "
        f"(kept, with its bytes: `evidence quarantine show {item_id}`)"
    )
