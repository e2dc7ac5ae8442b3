"""Receiving mail as it arrives: the SMTP journal address."""

from __future__ import annotations

import signal
from pathlib import Path

import click

from evidence.cli.base import current_config, echo_json, json_option, main
from evidence.errors import InvalidInput
from evidence.service import imports


@main.group()
def receive() -> None:
    """Take mail as it arrives (long-running; see README, "A journal address")."""


@receive.command("smtp")
@click.option(
    "--listen",
    required=True,
    metavar="HOST:PORT",
    help="Address to listen on, e.g. 0.0.0.0:2525 ([::]:2525; port 0: any free one, printed).",
)
@click.option(
    "--allow",
    "allow",
    multiple=True,
    metavar="CIDR",
    help="A peer address or network that may send; repeatable (default 127.0.0.1 and ::1).",
)
@click.option(
    "--tls-cert",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="Certificate (PEM, chain included) to offer STARTTLS with; needs --tls-key.",
)
@click.option(
    "--tls-key",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="The certificate's private key (PEM).",
)
@json_option
def receive_smtp_cmd(
    listen: str,
    allow: tuple[str, ...],
    tls_cert: Path | None,
    tls_key: Path | None,
    as_json: bool,
) -> None:
    """Run an SMTP receiver that stores every message the mail server sends it.

    Point the mail server's journal (or a BCC rule for the support mailbox) at
    it. Each message is stored with our own receive time and its SMTP envelope
    (MAIL FROM, RCPT TO, the peer's address and HELO); the sender gets 250 only
    once it is committed, 451 (it retries) if the store fails. A message sent
    twice is stored once. Peers outside --allow get 554. Runs until SIGTERM or
    Ctrl-C, finishing a message being sent, then prints what it stored and exits
    0; exit 1 if it cannot start (port taken, bad certificate), 2 for a
    --listen or --allow it cannot use.

    Example:

    \b
        evidence receive smtp --listen 0.0.0.0:2525 --allow 10.20.0.0/24 \\
            --tls-cert /etc/evidence/smtp.pem --tls-key /etc/evidence/smtp.key
    """
    from evidence.ingest.smtp import SmtpReceiver, receiver_settings

    try:
        settings = receiver_settings(listen, allow, tls_cert, tls_key)
    except InvalidInput as exc:
        raise click.UsageError(str(exc)) from exc

    def on_signals(server: SmtpReceiver) -> None:
        for signum in (signal.SIGTERM, signal.SIGINT):
            signal.signal(signum, lambda _signum, _frame: server.stop())

    def ready(host: str, port: int) -> None:
        allowed = ", ".join(str(n) for n in settings.allow)
        tls = "STARTTLS offered" if settings.tls_cert else "no STARTTLS"
        where = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
        click.echo(f"evidence: receiving SMTP on {where} from {allowed} ({tls})", err=True)

    report = imports.receive_smtp(current_config(), settings, ready=ready, receiver=on_signals)
    if as_json:
        echo_json(report.as_dict())
    else:
        click.echo(f"stopped: {report.summary()}")
