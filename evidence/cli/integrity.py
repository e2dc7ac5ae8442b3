"""Integrity: verifying the store and dossiers, backups and the audit log."""

from __future__ import annotations

from pathlib import Path

import click

from evidence.cli.base import current_config, echo_json, json_option, main
from evidence.errors import NotIntact
from evidence.service import integrity
from evidence.service.result import as_list
from evidence.timeutil import format_local


def _key_ids(
    _ctx: click.Context, _param: click.Parameter, values: tuple[str, ...]
) -> tuple[str, ...]:
    from evidence.verify.dossier import parse_key_id

    try:
        return tuple(parse_key_id(v) for v in values)
    except ValueError as exc:
        raise click.BadParameter(str(exc)) from exc


@main.command()
@click.argument(
    "dossier", required=False, type=click.Path(exists=True, dir_okay=False, path_type=Path)
)
@click.option(
    "--trust",
    "trust",
    multiple=True,
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="PEM certificate of a CA (or TSA) to trust when checking a dossier's signature.",
)
@click.option(
    "--previous",
    multiple=True,
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="An earlier dossier of the same store: check its log is a prefix of this one's.",
)
@click.option(
    "--key-id",
    "key_ids",
    multiple=True,
    callback=_key_ids,
    metavar="HEX",
    help="The id of the company's key (as `evidence status` prints it, and the company "
    "publishes it): the dossier must be signed with it (repeatable: any of them).",
)
@json_option
def verify(
    dossier: Path | None,
    trust: tuple[Path, ...],
    previous: tuple[Path, ...],
    key_ids: tuple[str, ...],
    as_json: bool,
) -> None:
    """Prove the store, or a dossier PDF, is untouched.

    Without an argument: recompute every blob's SHA-256, the ledger's hash chain
    and Merkle tree, every record against its ledger entry, the append-only
    triggers and every signed checkpoint. With a PDF: check it on its own (no
    store needed): the embedded originals against its manifest, each inclusion
    proof against the checkpoint printed on the cover, the checkpoint's
    signature, every page against the digests signed with the store's key
    (pages.json: a page removed, added, reordered or changed is named) and the
    PDF's signature; with --previous, that an earlier dossier's log is a prefix
    of this one's. Anyone can make a key: only --key-id with the id the company
    publishes ties the dossier to the company (without it, the id found is
    printed). Each verification is kept in the audit log when a store is at
    hand. Exit code 5 means something failed; every failure is named.

    Example:

    \b
        evidence verify
        evidence verify dossier.pdf --key-id "$COMPANY_KEY_ID" --trust company-ca.pem
        evidence verify dossier-2.pdf --previous dossier-1.pdf
    """
    if dossier is None and (key_ids or trust or previous):
        raise click.UsageError("--key-id, --trust and --previous check a dossier: give its PDF")
    if dossier is None:
        report = integrity.verify_store(current_config())
    else:
        checked = integrity.verify_dossier(
            dossier, trust=trust, previous=previous, key_ids=key_ids, config=current_config
        )
        report = checked.report
        if checked.not_logged is not None:
            click.echo(
                "note: this check of the dossier is not in the audit log: the local store "
                f"could not record it ({checked.not_logged})",
                err=True,
            )
    if as_json:
        # Sorted keys: the SHA-256 of this output is the one the audit log records.
        echo_json(report.as_dict(), sort_keys=True)
    else:
        for line in report.lines():
            click.echo(line)
    if not report.intact:
        raise NotIntact


@main.command()
@click.argument("dest", type=click.Path(file_okay=True, dir_okay=True, path_type=Path))
@click.option("--force", is_flag=True, help="Replace DEST when it is an earlier backup.")
@json_option
def backup(dest: Path, force: bool, as_json: bool) -> None:
    """Copy the store to the new folder DEST while it is in use, verify the copy,
    and print the checkpoint it holds.

    The SQLite database is copied with SQLite's online backup API (one consistent
    state, even while an import runs), with the files in EVIDENCE_HOME the store
    needs (evidence.toml, the checkpoint key and other keys and certificates). The
    copy is opened and checked as `evidence verify` checks a store before it is
    renamed to DEST. To restore, make a copy of DEST the EVIDENCE_HOME. An existing
    DEST is refused unless --force (and then only an earlier backup). A PostgreSQL
    store is backed up with pg_dump (README, "Backups and restore"). Exit 5 when
    the copy does not verify (the backup is kept: it holds what the store holds).

    Example:

    \b
        evidence backup /mnt/backup/evidence-2026-12-06
        evidence backup /mnt/backup/evidence-latest --force --json
    """
    result = integrity.backup(current_config(), dest, force=force)
    if as_json:
        echo_json(result.as_dict())
    else:
        data = result.as_dict()
        others = ", ".join(result.files[1:])
        click.echo(
            f"backup: {result.dest} ({'replaced; ' if result.replaced else ''}"
            f"{result.files[0]} {result.database_bytes:,} bytes"
            + (f"; {others}" if others else "")
            + ")"
        )
        for line in result.report.lines()[1:-1]:
            click.echo(line)
        root = data["root"] or "none (an entry is missing: see the failures above)"
        click.echo(
            f"checkpoint: {data['tree_size']} ledger entries, Merkle root {root}; "
            f"chain head #{result.head_seq} {result.head_hash}"
        )
        last = data["last_checkpoint"]
        if last is not None:
            click.echo(
                f"last signed checkpoint: #{last['id']}, {last['tree_size']} entries, "
                f"root {last['root']}"
            )
        click.echo(
            "INTACT: the copy verifies"
            if result.intact
            else "NOT INTACT: the copy holds what the store holds: run `evidence verify`"
        )
    if not result.intact:
        raise NotIntact


@main.command()
@json_option
def audit(as_json: bool) -> None:
    """List the audit log: every export, verification and correction, oldest first.

    Each event is itself a record in the ledger (its leaf index is shown), so
    it is covered by the signed checkpoints like the evidence.

    Example:

    \b
        evidence audit --json
    """
    config = current_config()
    events = integrity.list_audit(config)
    if as_json:
        echo_json(as_list(events))
        return
    for event in events:
        digest = f"  SHA-256 {event.output_sha256}" if event.output_sha256 else ""
        click.echo(
            f"#{event.id}\t{format_local(event.at, config.zone)}\t{event.action}\t"
            f"{event.actor}\t{event.subject}{digest}"
        )
