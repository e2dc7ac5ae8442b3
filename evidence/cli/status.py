"""Scheduled work and the state of the store: `evidence sync` and `evidence status`."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from typing import TYPE_CHECKING

import click

from evidence.cli.base import current_config, echo_json, json_option, main
from evidence.errors import NotIntact
from evidence.timeutil import format_local

if TYPE_CHECKING:
    from zoneinfo import ZoneInfo

    from evidence.service.status import FolderCount, SourceState, StoreChecks, StoreStatus


@main.command()
@json_option
def sync(as_json: bool) -> None:
    """Import from every source in evidence.toml [sync], then extend planned incidents.

    For cron or a systemd timer. Prints one line per source with its counts
    (quarantined items on stderr). A second run while one is going exits at
    once with code 4. A run killed half-way leaves only whole records; the
    next run adds exactly what is missing.

    Exit codes: 0 done; 1 a source failed (the others still ran) or the
    configuration is wrong; 3 done, some input quarantined; 4 already running.

    Example:

    \b
        */15 * * * *  EVIDENCE_HOME=/srv/evidence evidence sync >> /srv/evidence/sync.log 2>&1
    """
    from evidence.service.status import sync as run_sync
    from evidence.timeutil import iso_utc, utcnow

    def log(line: str) -> None:
        if not as_json:
            click.echo(f"{iso_utc(utcnow())} {line}")

    outcome = run_sync(current_config(), log=log)
    for result in outcome.results:
        for message in result.report.messages if result.report else []:
            click.echo(f"  {message}", err=True)
    if as_json:
        echo_json(outcome.as_dict())
    outcome.raise_for_exit()


@main.command()
@json_option
def status(as_json: bool) -> None:
    """When each source last synced and what it brought, open incidents,
    quarantined items, each hosted mailbox folder's count on the server beside
    what the store holds from it (at its last import), and whether the store
    verifies.

    Runs the checks of `evidence verify` but one: the database file (SQLite's
    quick check), the hash chain, every record against its ledger entry, the
    append-only triggers and the signed checkpoints. It does not read the blobs'
    bytes (it checks that every cited blob is stored) and says so: `evidence
    verify` hashes them. Exits 5 when a check fails (each problem is listed),
    8 when the database is damaged.

    Example:

    \b
        evidence status --json
    """
    from evidence.service.status import store_status

    config = current_config()
    found = store_status(config)
    if as_json:
        echo_json(found.as_dict())
    else:
        _say_status(found, config.zone)
    if not found.chain.ok:
        raise NotIntact


def _say_status(found: StoreStatus, zone: ZoneInfo) -> None:
    """`evidence status` for a person: sync, sources, incidents, quarantine, mail, checks."""

    def local(value: dt.datetime | None) -> str:
        return format_local(value, zone) if value else "never"

    click.echo(f"store: {found.database}")
    key = found.signing_key
    if key.key_id:
        click.echo(
            f"signing key id: {key.key_id} (publish it: `evidence verify DOSSIER.pdf "
            "--key-id ID` ties a dossier to it)"
        )
    elif key.error:
        click.echo(f"signing key: unreadable: {key.error}")
    else:
        click.echo(f"signing key: none yet at {key.path} (`evidence init` creates it)")
    last = found.last_sync
    if last is None:
        click.echo("last sync: never")
    else:
        click.echo(
            f"last sync: #{last.id} started {local(last.started_at)}, {last.state}"
            + (f", exit {last.exit_code}" if last.exit_code is not None else "")
        )
    for src in found.sources:
        click.echo(_source_line(src, local))
    click.echo(f"open incidents: {len(found.open_incidents)}")
    for inc in found.open_incidents:
        click.echo(
            f"  #{inc.number} since {local(inc.start)}: {inc.title}"
            + (" (planned)" if inc.planned else "")
        )
    quarantine = found.quarantine
    kinds = ", ".join(f"{k} {n}" for k, n in quarantine.by_kind.items())
    click.echo(
        f"quarantined items: {quarantine.total}"
        + (f" ({kinds})" if kinds else "")
        + (f"; {quarantine.dismissed} dismissed" if quarantine.dismissed else "")
    )
    for folder in found.reconciliation:
        click.echo(_folder_line(folder, local))
    mail = found.mail
    click.echo(
        f"mail domains: {', '.join(mail.domains) or 'none'}; receiving hosts: "
        f"{', '.join(mail.receiving_hosts) or 'none (the topmost Received: line)'}"
    )
    if mail.note:
        click.echo(f"  note: {mail.note}")
    _say_checks(found.chain)


def _source_line(src: SourceState, local: Callable[[dt.datetime | None], str]) -> str:
    head = f"  {src.kind} {src.source}".rstrip()
    if src.last_synced_at:
        head += (
            f": synced {local(src.last_synced_at)}: imported {src.imported}, "
            f"duplicates {src.duplicates}, quarantined {src.quarantined}"
        )
    else:
        head += ": never synced"
    if src.last_error:
        head += f"; last attempt {local(src.last_attempt_at)} FAILED: {src.last_error}"
    elif src.interrupted:
        head += f"; last attempt {local(src.last_attempt_at)} was interrupted"
    return head


def _folder_line(folder: FolderCount, local: Callable[[dt.datetime | None], str]) -> str:
    gap = folder.difference
    verdict = (
        "matches"
        if gap == 0
        else f"{gap} not in the store"
        if gap > 0
        else f"{-gap} more in the store than on the server (deleted there?)"
    )
    return (
        f"mailbox {folder.mailbox}: server {folder.server_count}, "
        f"store {folder.in_store} at {local(folder.counted_at)}: {verdict}"
    )


def _say_checks(chain: StoreChecks) -> None:
    click.echo("store checks (those of `evidence verify` except reading the blobs' bytes):")
    for line in chain.checks:
        click.echo(f"  ok    {line}")
    for line in chain.not_checked:
        click.echo(f"  not checked  {line}")
    for line in chain.notes:
        click.echo(f"  note  {line}")
    for problem in chain.problems:
        click.echo(f"  FAIL  {problem.subject}: {problem.problem}")
    n = len(chain.problems)
    verdict = (
        "verifies as far as checked"
        if chain.ok
        else f"DOES NOT VERIFY ({n} problem{'s' if n != 1 else ''})"
    )
    click.echo(f"store: {verdict}, {chain.entries} ledger entries, head {chain.head}")
