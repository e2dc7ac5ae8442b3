"""The legal desk: its users and API tokens, the web server and the export worker."""

from __future__ import annotations

import sys

import click

from evidence.cli.base import current_config, echo_json, json_option, main, opened_store
from evidence.service import users


@main.group()
def user() -> None:
    """Users of the legal desk (`evidence serve`) and their roles.

    Roles: viewer reads timelines, cases and dossiers; agent also logs
    incidents; legal also opens cases, attaches, claims, exports; admin also
    manages users.
    """


@user.command("add")
@click.argument("name")
@click.option(
    "--role",
    required=True,
    type=click.Choice(["viewer", "agent", "legal", "admin"]),
    help="What the user may do.",
)
@click.option(
    "--password-stdin",
    is_flag=True,
    help="Read the password from standard input (else it is asked for, hidden; without a "
    "terminal, the user signs in only through the trusted proxy).",
)
@click.option(
    "--lang",
    "language",
    type=click.Choice(["fi", "sv", "en"]),
    default="fi",
    show_default=True,
    help="The desk's language for this user.",
)
def user_add(name: str, role: str, password_stdin: bool, language: str) -> None:
    """Add a user of the desk; the password is hashed with argon2.

    Example:

    \b
        evidence user add laura --role legal
        printf '%s\\n' "$PASSWORD" | evidence user add crm --role legal --password-stdin
    """
    password: str | None
    if password_stdin:
        password = sys.stdin.readline().rstrip("\n")
    elif sys.stdin.isatty():
        password = click.prompt("password", hide_input=True, confirmation_prompt=True)
    else:
        password = None
    added = users.add_user(
        current_config(), name, role=role, password=password, language=language
    )
    click.echo(f"user {added.name} added ({added.role})")
    if not added.has_password:
        click.echo(
            f"note: {added.name} has no password (none was given, and no terminal to ask on): "
            "they sign in only through the trusted proxy ([desk] user_header); to sign in "
            "with a password, add the user with --password-stdin",
            err=True,
        )


@user.command("list")
@json_option
def user_list(as_json: bool) -> None:
    """List the desk's users and their roles.

    Example:

    \b
        evidence user list --json
    """
    found = users.list_users(current_config())
    if as_json:
        echo_json([u.as_dict() for u in found])
        return
    for u in found:
        click.echo(f"{u.name}\t{u.role}\t{u.language}" + ("\tdisabled" if u.disabled else ""))


@user.command("disable")
@click.argument("name")
def user_disable(name: str) -> None:
    """Disable a user: no more sign-in, and their API tokens stop working.

    Example:

    \b
        evidence user disable laura
    """
    users.disable_user(current_config(), name)
    click.echo(f"user {name} disabled")


@main.group()
def token() -> None:
    """API tokens of the desk's JSON API."""


@token.command("create")
@click.argument("name")
@click.option(
    "--expires", type=click.IntRange(min=1), help="Days until it expires (default never)."
)
@json_option
def token_create(name: str, expires: int | None, as_json: bool) -> None:
    """Make an API token for user NAME and print it once (only its hash is kept).

    Example:

    \b
        evidence token create crm --expires 365
        curl -H "Authorization: Bearer $TOKEN" http://127.0.0.1:8080/api/cases
    """
    made = users.create_token(current_config(), name, expires_days=expires)
    if as_json:
        echo_json(made.as_dict())
        return
    click.echo(made.token)


@main.command()
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option(
    "--port",
    default=8080,
    show_default=True,
    type=click.IntRange(1, 65535),
    help="Port to listen on.",
)
@click.option(
    "--workers",
    type=click.IntRange(1, 64),
    help="Server processes (default: [desk] workers in evidence.toml, else 2).",
)
def serve(host: str, port: int, workers: int | None) -> None:
    """Serve the legal desk (web pages and JSON API) with gunicorn.

    Sessions are signed with EVIDENCE_SECRET_KEY, else desk-secret.key made by
    `evidence init`. On SQLite the server runs queued exports itself (in an
    `evidence worker` process it starts and stops); on PostgreSQL run
    `evidence worker` (any number, anywhere) to run them.
    Settings: [desk] in evidence.toml (see README, "The legal desk").

    Example:

    \b
        evidence serve --host 127.0.0.1 --port 8080
    """
    from evidence.web.server import serve as run

    config = current_config()
    click.echo(f"the desk is at http://{host}:{port}/", err=True)
    run(config, host, port, workers)


@main.command()
def worker() -> None:
    """Run the desk's queued exports (PostgreSQL); stop with Ctrl-C or SIGTERM.

    Any number of workers, on any machine that reaches the database (through
    procrastinate). A job whose worker was killed is run again (3 tries) or
    failed with the reason. Runs at a lower CPU priority (nice 10). On SQLite,
    `evidence serve` starts one itself.

    Example:

    \b
        EVIDENCE_DATABASE_URL=postgresql+psycopg://... evidence worker
    """
    from evidence.jobs import run_worker

    with opened_store() as store:
        run_worker(store, log=lambda line: click.echo(line, err=True))
