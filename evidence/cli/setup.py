"""Setting up a store: `evidence init`."""

from __future__ import annotations

import click

from evidence.cli.base import current_config, main
from evidence.config import update_company_settings, write_initial_config
from evidence.files import private_dir
from evidence.store.db import upgrade
from evidence.timeline.mailfacts import MailRules, unconfigured_note


@main.command()
@click.option("--company", help="Company name for the dossier cover.")
@click.option(
    "--mail-domain",
    "mail_domains",
    multiple=True,
    help="The company's own mail domain; mail from it is outbound. Repeatable; on an "
    "existing store it is added to evidence.toml.",
)
@click.option("--timezone", help="IANA zone of local times (first init only; never changed).")
def init(company: str | None, mail_domains: tuple[str, ...], timezone: str | None) -> None:
    """Create the store, or upgrade an older one to this version's schema.

    Safe to run again at any time. On the first run, --company, --mail-domain
    and --timezone are written to evidence.toml in EVIDENCE_HOME, and the
    Ed25519 key that signs the store's checkpoints is created there
    (checkpoint-key.pem, owner-only). Publish its key id: it is what a third
    party compares with the id printed on a dossier's cover. The key that signs
    the desk's sessions (`evidence serve`) is made there too (desk-secret.key,
    owner-only), unless EVIDENCE_SECRET_KEY is set when serving.

    Nothing needs configuring: without --mail-domain every email with a
    customer's address in From, To, Cc or Bcc is in their history, its
    direction taken relative to the customer. Given later, --company and
    --mail-domain are written to the existing evidence.toml (domains are added),
    and every stored email's direction and time are derived from them at once.

    Example:

    \b
        evidence init --company "Aurora Energia Oy" --mail-domain aurora-energia.example
    """
    config = current_config()
    private_dir(config.home)
    written = write_initial_config(config.home, company, list(mail_domains), timezone)
    change = None
    if not written and (company or mail_domains or timezone):
        # An existing store: the options are applied, never silently ignored.
        change = update_company_settings(config, company, list(mail_domains), timezone)
    config = current_config()
    upgrade(config)
    click.echo(f"store ready: {config.database_url}")
    if written:
        click.echo(f"settings written to {written}")
    if change is not None and change.company_name is not None:
        click.echo(f"company name set to {change.company_name!r} in {change.path}")
    rules = MailRules.of(config)
    if (written and mail_domains) or (change is not None and change.added_domains):
        click.echo(
            f"mail domains now {', '.join(rules.domains)} in {config.config_path}: the "
            "direction and time of every stored email are derived from them from now on"
        )
    note = unconfigured_note(rules)
    if note:
        click.echo(f"note: {note}", err=True)
    from evidence.web.settings import ensure_secret_key

    secret, made = ensure_secret_key(config)
    click.echo(f"desk secret key {'created' if made else 'kept'}: {secret}")
    from evidence.store.checkpoints import ensure_signing_key

    key, created = ensure_signing_key(config)
    click.echo(
        f"checkpoint key {'created' if created else 'kept'}: {key.path} (key id {key.key_id})"
    )
