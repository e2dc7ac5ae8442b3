"""Scheduled work and the state of the store: `evidence sync` and `evidence status`."""

from __future__ import annotations

import datetime as dt
import sys
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import click

from evidence.cli.base import current_config, echo_json, json_option, main, opened_store
from evidence.timeutil import format_local

if TYPE_CHECKING:
    from zoneinfo import ZoneInfo


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
    from evidence.ingest.sync import run_sync
    from evidence.timeutil import iso_utc, utcnow

    def log(line: str) -> None:
        if not as_json:
            click.echo(f"{iso_utc(utcnow())} {line}")

    with opened_store() as store:
        outcome = run_sync(store, log=log)
    for result in outcome.results:
        for message in result.report.messages if result.report else []:
            click.echo(f"  {message}", err=True)
    if as_json:
        echo_json(outcome.as_dict())
    if outcome.exit_code:
        sys.exit(outcome.exit_code)


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
    from evidence.errors import IntegrityFailure
    from evidence.status import store_status

    with opened_store() as store:
        data = store_status(store)
    chain = data["chain"]
    if as_json:
        echo_json(data)
    else:
        _say_status(data, current_config().zone)
    if not chain["ok"]:
        sys.exit(IntegrityFailure.exit_code)


def _say_status(data: dict[str, Any], zone: ZoneInfo) -> None:
    """`evidence status` for a person: sync, sources, incidents, quarantine, mail, checks."""

    def local(value: str | None) -> str:
        return format_local(dt.datetime.fromisoformat(value), zone) if value else "never"

    click.echo(f"store: {data['database']}")
    key = data["signing_key"]
    if key["key_id"]:
        click.echo(
            f"signing key id: {key['key_id']} (publish it: `evidence verify DOSSIER.pdf "
            "--key-id ID` ties a dossier to it)"
        )
    elif key.get("error"):
        click.echo(f"signing key: unreadable: {key['error']}")
    else:
        click.echo(f"signing key: none yet at {key['path']} (`evidence init` creates it)")
    last = data["last_sync"]
    if last is None:
        click.echo("last sync: never")
    else:
        click.echo(
            f"last sync: #{last['id']} started {local(last['started_at'])}, {last['state']}"
            + (f", exit {last['exit_code']}" if last["exit_code"] is not None else "")
        )
    for src in data["sources"]:
        click.echo(_source_line(src, local))
    click.echo(f"open incidents: {len(data['open_incidents'])}")
    for inc in data["open_incidents"]:
        click.echo(
            f"  #{inc['number']} since {local(inc['start'])}: {inc['title']}"
            + (" (planned)" if inc["planned"] else "")
        )
    quarantine = data["quarantine"]
    kinds = ", ".join(f"{k} {n}" for k, n in quarantine["by_kind"].items())
    click.echo(
        f"quarantined items: {quarantine['total']}"
        + (f" ({kinds})" if kinds else "")
        + (f"; {quarantine['dismissed']} dismissed" if quarantine["dismissed"] else "")
    )
    for folder in data["reconciliation"]:
        click.echo(_folder_line(folder, local))
    mail = data["mail"]
    click.echo(
        f"mail domains: {', '.join(mail['domains']) or 'none'}; receiving hosts: "
        f"{', '.join(mail['receiving_hosts']) or 'none (the topmost Received: line)'}"
    )
    if mail["note"]:
        click.echo(f"  note: {mail['note']}")
    _say_checks(data["chain"])


def _source_line(src: dict[str, Any], local: Callable[[str | None], str]) -> str:
    head = f"  {src['kind']} {src['source']}".rstrip()
    if src["last_synced_at"]:
        head += (
            f": synced {local(src['last_synced_at'])}: imported {src['imported']}, "
            f"duplicates {src['duplicates']}, quarantined {src['quarantined']}"
        )
    else:
        head += ": never synced"
    if src["last_error"]:
        head += f"; last attempt {local(src['last_attempt_at'])} FAILED: {src['last_error']}"
    elif src["interrupted"]:
        head += f"; last attempt {local(src['last_attempt_at'])} was interrupted"
    return head


def _folder_line(folder: dict[str, Any], local: Callable[[str | None], str]) -> str:
    gap = folder["difference"]
    verdict = (
        "matches"
        if gap == 0
        else f"{gap} not in the store"
        if gap > 0
        else f"{-gap} more in the store than on the server (deleted there?)"
    )
    return (
        f"mailbox {folder['mailbox']}: server {folder['server_count']}, "
        f"store {folder['in_store']} at {local(folder['counted_at'])}: {verdict}"
    )


def _say_checks(chain: dict[str, Any]) -> None:
    click.echo("store checks (those of `evidence verify` except reading the blobs' bytes):")
    for line in chain["checks"]:
        click.echo(f"  ok    {line}")
    for line in chain["not_checked"]:
        click.echo(f"  not checked  {line}")
    for line in chain["notes"]:
        click.echo(f"  note  {line}")
    for problem in chain["problems"]:
        click.echo(f"  FAIL  {problem['subject']}: {problem['problem']}")
    n = len(chain["problems"])
    verdict = (
        "verifies as far as checked"
        if chain["ok"]
        else f"DOES NOT VERIFY ({n} problem{'s' if n != 1 else ''})"
    )
    click.echo(f"store: {verdict}, {chain['entries']} ledger entries, head {chain['head']}")
