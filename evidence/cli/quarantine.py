"""The quarantine: input that could not be read, kept byte-exact."""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING

import click

from evidence.cli.base import current_config, echo_json, json_option, main
from evidence.service import quarantine as quarantined
from evidence.service.result import as_list
from evidence.timeutil import format_local

if TYPE_CHECKING:
    from zoneinfo import ZoneInfo

    from evidence.service.quarantine import QuarantineRow


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
    config = current_config()
    rows = quarantined.list_quarantine(config, kind=kind, only_open=only_open)
    if as_json:
        echo_json(as_list(rows))
        return
    for row in rows:
        at = format_local(row.quarantined_at, config.zone)
        where = f"{row.source}:{row.locator}" if row.locator else row.source
        dismissed = _dismissed_text(row, config.zone)
        mark = f"\t{dismissed}" if dismissed else ""
        click.echo(f"#{row.id}\t{row.kind}\t{at}\t{where}\t{row.reason}{mark}")


def _dismissed_text(row: QuarantineRow, zone: ZoneInfo) -> str:
    if not row.dismissed:
        return ""
    return (
        f"DISMISSED {format_local(row.dismissed_at, zone)} by {row.dismissed_by}: "
        f"{row.dismiss_reason}"
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
    config = current_config()
    found = quarantined.show_quarantined(config, item_id)
    row, data = found.row, found.data
    if raw:
        sys.stdout.buffer.write(data)
        sys.stdout.buffer.flush()
        return
    if as_json:
        echo_json(found.as_dict())
        return
    where = f"{row.source} ({row.locator})" if row.locator else row.source
    at = format_local(row.quarantined_at, config.zone)
    click.echo(f"quarantine #{row.id} ({row.kind}), {at}")
    click.echo(f"from:   {where}")
    click.echo(f"reason: {row.reason}")
    click.echo(f"bytes:  {row.size:,}, SHA-256 {row.sha256}")
    dismissed = _dismissed_text(row, config.zone)
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
    found = quarantined.dismiss(current_config(), item_id, reason=reason, by=by)
    click.echo(
        f"quarantine #{item_id} dismissed by {found.dismissed_by} "
        f"(kept, with its bytes: `evidence quarantine show {item_id}`)"
    )
