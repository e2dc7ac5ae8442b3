"""The dossier export and the record of past exports."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import click

from evidence.cli.base import (
    DATE,
    TIME,
    current_config,
    echo_json,
    json_option,
    main,
    progress_bar,
)
from evidence.service import exports
from evidence.service.result import as_list
from evidence.timeutil import DATE_FORMS, TIME_FORMS, UserTime, format_local


@main.command()
@click.argument("ref", required=False)
@click.option(
    "-o",
    "--output",
    required=True,
    type=click.Path(path_type=Path),
    help="Where to write the PDF (or the .zip); an existing file is replaced only with --force.",
)
@click.option("--force", is_flag=True, help="Replace the -o file if it exists.")
@click.option("--from", "date_from", type=DATE, help=f"First local day ({DATE_FORMS}).")
@click.option("--to", "date_to", type=DATE, help=f"Last local day, inclusive ({DATE_FORMS}).")
@click.option(
    "--case", "case_ref", help="Case reference: its authority on the cover, its PDFs appended."
)
@click.option(
    "--generated-at",
    type=TIME,
    help=f"Pin the generation time ({TIME_FORMS}), for reproducible output.",
)
@click.option(
    "--lang",
    "language",
    type=click.Choice(["fi", "sv", "en"]),
    help="Language of the dossier (default: fi, or `language` in evidence.toml).",
)
@click.option("--jobs", type=click.IntRange(1, 64), help="Rendering processes (default: 2).")
@click.option("--no-cache", is_flag=True, help="Render every page again (ignore the page cache).")
@click.option(
    "--format",
    "fmt",
    type=click.Choice(exports.FORMATS),
    default="pdf",
    show_default=True,
    help="zip: the PDF plus originals/, manifest.csv, as a BagIt bag (RFC 8493).",
)
@click.option(
    "--by",
    help="Who exports, for the audit log and the record of exports "
    "(default: EVIDENCE_USER, else login@host).",
)
@json_option
def export(
    ref: str | None,
    output: Path,
    force: bool,
    date_from: dt.date | None,
    date_to: dt.date | None,
    case_ref: str | None,
    generated_at: UserTime | None,
    language: str | None,
    jobs: int | None,
    no_cache: bool,
    fmt: str,
    by: str | None,
    as_json: bool,
) -> None:
    """Write a customer's dossier as one PDF (or a ZIP with the originals).

    The dossier has a cover, every email (verbatim), call and incident in
    time order, and the case's PDFs appended whole. The raw originals are
    embedded in the PDF (list them with `pdfdetach -list`), with manifest.json:
    each exhibit's inclusion proof against a checkpoint signed for this export
    (its root is on the cover; see VERIFYING.md). With [signing] in
    evidence.toml the PDF gets a PAdES signature. The export is logged in the
    audit log and in the record of exports, with the output's SHA-256, who
    exported it and the checkpoint the dossier is proved against (see
    `evidence audit`, `evidence exports list`). With --case and neither --from
    nor --to, the case's period is used. An exhibit the renderer cannot lay out
    within the limits ([render] in evidence.toml) gets a placeholder page that
    names its embedded original; the export goes on and names the exhibit on
    stderr.

    Nothing is rendered when -o names an existing file (without --force), a
    folder, or a file in a folder that is missing or not writable, nor for a
    customer whose content was erased.

    Example:

    \b
        evidence export 100234 --case ESAVI/31337/2026 -o dossier.pdf
        evidence export 100234 -o dossier.pdf --force --by "Laura Lakimies"
    """
    request = exports.ExportRequest(
        output=output,
        customer_ref=ref,
        case_ref=case_ref,
        date_from=date_from,
        date_to=date_to,
        generated_at=generated_at,
        language=language,
        jobs=jobs,
        use_cache=not no_cache,
        fmt=fmt,
        force=force,
        by=by,
    )
    with progress_bar("rendering") as progress:
        result = exports.export(current_config(), request, progress=progress)
    for line in result.warnings():
        click.echo(line, err=True)
    if as_json:
        echo_json(result.as_dict())
    else:
        click.echo(result.summary())


@main.group("exports")
def exports_group() -> None:
    """The record of every dossier exported from this store."""


@exports_group.command("list")
@json_option
def exports_list(as_json: bool) -> None:
    """List every export: when, by whom, arguments, size and SHA-256 of the output.

    Example:

    \b
        evidence exports list --json
    """
    config = current_config()
    rows = exports.list_exports(config)
    if as_json:
        echo_json(as_list(rows))
        return
    for r in rows:
        click.echo(
            f"#{r.id}\t{format_local(r.exported_at, config.zone)}\t{r.exported_by}\t"
            f"{r.case or r.customer or '-'}\t{r.format}\t{r.size} bytes\t{r.sha256}"
            f"\t{r.output}"
        )
