"""`evidence receive smtp`, the journal address: the real command in its own process,
fed by smtplib over real sockets, on SQLite and PostgreSQL."""

from __future__ import annotations

import json
import os
import re
import signal
import smtplib
import socket
import ssl
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest
from sqlalchemy import func, select, text
from sqlalchemy.exc import DBAPIError

from evidence.config import load_config
from evidence.errors import InvalidInput
from evidence.ingest.mail import content_key, mail_limits
from evidence.ingest.smtp import (
    STORE_FAILED,
    Delivery,
    Envelope,
    Writer,
    peer_address,
    receiver_settings,
)
from evidence.store.blobs import read_blob
from evidence.store.db import open_store
from evidence.store.guards import trigger_names
from evidence.store.models import Email, ImportRun, LedgerEntry, ReceivedSource, SmtpDelivery
from evidence.timeline.mailfacts import MailRules, placements
from evidence.timeutil import utcnow
from tests.conftest import Env, pdf_text, run_evidence

READY = re.compile(r"receiving SMTP on (\S+):(\d+) ")


@dataclass
class Receiver:
    proc: subprocess.Popen[str]
    port: int
    stderr_lines: list[str]

    def stop(self, timeout: float = 60) -> tuple[int, str, str]:
        self.proc.send_signal(signal.SIGTERM)
        out, err = self.proc.communicate(timeout=timeout)
        return self.proc.returncode, out, "".join(self.stderr_lines) + err


@contextmanager
def receiver(env: Env, *args: str, listen: str = "127.0.0.1:0") -> Iterator[Receiver]:
    """``evidence receive smtp --listen 127.0.0.1:0 ARGS`` in a fresh process, once it listens."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "evidence", "receive", "smtp", "--listen", listen, *args],
        env={**os.environ, **env.vars},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert proc.stderr is not None
    lines: list[str] = []
    port = None
    deadline = time.monotonic() + 60
    while port is None and time.monotonic() < deadline:
        line = proc.stderr.readline()
        if not line:
            break
        lines.append(line)
        match = READY.search(line)
        if match:
            port = int(match.group(2))
    if port is None:
        proc.kill()
        out, err = proc.communicate()
        raise AssertionError(f"the receiver did not start: {''.join(lines)}{err}{out}")
    try:
        yield Receiver(proc, port, lines)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()


def message(n: int, *, body: str = "Hei, laskussani on virhe.") -> bytes:
    return (
        "From: Anna Asiakas <anna@example.net>\r\n"
        "To: asiakaspalvelu@aurora-energia.example\r\n"
        f"Subject: Lasku {n}\r\n"
        f"Message-ID: <msg-{n}@example.net>\r\n"
        # A Received: line far from now: the receiver's own time must win over it.
        "Received: from mx.example.net by mx1.aurora-energia.example; "
        "Tue, 10 Mar 2026 08:01:05 +0200\r\n"
        "Date: Tue, 10 Mar 2026 08:01:00 +0200\r\n"
        "\r\n"
        f"{body}\r\n"
    ).encode()


def count(env: Env, model: type[Email] | type[SmtpDelivery]) -> int:
    store = open_store(load_config(env.vars))
    try:
        with store.session() as session:
            return int(session.scalar(select(func.count()).select_from(model)) or 0)
    finally:
        store.close()


def test_a_message_is_stored_with_its_envelope_and_our_receive_time(env: Env) -> None:
    raw = message(1, body="Rivi\r\n.alkaa pisteellä\r\n..kaksi pistettä")
    with receiver(env) as rx:
        before = time.time()
        with smtplib.SMTP("127.0.0.1", rx.port, local_hostname="relay.aurora.test") as client:
            refused = client.sendmail(
                "anna@example.net",
                ["asiakaspalvelu@aurora-energia.example", "journal@evidence.test"],
                raw,
            )
            assert refused == {}
            # The same message again with the same envelope (a retry): nothing is added.
            client.mail("anna@example.net")
            client.rcpt("asiakaspalvelu@aurora-energia.example")
            client.rcpt("journal@evidence.test")
            code, reply = client.data(raw)
            assert (code, reply) == (250, b"2.0.0 already stored as email #1")
            # Another copy of it to one more recipient: a second delivery, one email.
            client.mail("anna@example.net")
            client.rcpt("laskutus@aurora-energia.example")
            code, reply = client.data(raw)
            assert (code, reply) == (250, b"2.0.0 stored as email #1")
        after = time.time()
        code_, out, err = rx.stop()
    assert code_ == 0, err
    assert out == "stopped: imported 1, duplicates 2, quarantined 0\n"

    store = open_store(load_config(env.vars))
    try:
        with store.session() as session:
            mail = session.scalars(select(Email)).one()
            # The bytes as sent, dot-unstuffed: smtplib doubled the leading dots on the wire.
            assert read_blob(session, mail.raw_sha256) == raw
            assert mail.source == f"smtp://127.0.0.1:{rx.port}"
            deliveries = session.scalars(select(SmtpDelivery).order_by(SmtpDelivery.id)).all()
            assert [(d.mail_from, d.rcpt_to, d.helo, d.peer, d.tls) for d in deliveries] == [
                (
                    "anna@example.net",
                    "asiakaspalvelu@aurora-energia.example\njournal@evidence.test",
                    "relay.aurora.test",
                    "127.0.0.1",
                    False,
                ),
                (
                    "anna@example.net",
                    "laskutus@aurora-energia.example",
                    "relay.aurora.test",
                    "127.0.0.1",
                    False,
                ),
            ]
            assert all(d.email_id == mail.id and d.size == len(raw) for d in deliveries)
            first = deliveries[0].received_at
            assert before <= first.timestamp() <= after
            # Our receive time, not the Received: line's (2026-03-10), as recorded and as read.
            assert (mail.received_at, mail.received_source) == (
                first,
                ReceivedSource.SMTP_RECEIVER,
            )
            placed = placements(session, MailRules.of(store.config))[mail.id]
            assert (placed.at, placed.source) == (first, ReceivedSource.SMTP_RECEIVER)
            run = session.get(ImportRun, mail.import_run_id)
            assert run is not None and run.finished_at is not None
            assert (run.imported, run.duplicates, run.kind) == (1, 2, "mail")
    finally:
        store.close()
    verified = run_evidence(env, "verify")
    assert "INTACT" in verified.stdout


def _block_deliveries(env: Env, on: bool) -> None:
    """Make the database refuse (or accept again) every new delivery row: a store failure."""
    store = open_store(load_config(env.vars))
    try:
        with store.engine.begin() as conn:
            if env.backend == "sqlite":
                conn.execute(
                    text(
                        "CREATE TRIGGER test_refuse BEFORE INSERT ON smtp_deliveries BEGIN "
                        "SELECT RAISE(ABORT, 'refused by the test'); END"
                    )
                    if on
                    else text("DROP TRIGGER test_refuse")
                )
            elif on:
                conn.execute(
                    text(
                        "CREATE FUNCTION test_refuse() RETURNS trigger AS $$ BEGIN "
                        "RAISE EXCEPTION 'refused by the test'; END; $$ LANGUAGE plpgsql"
                    )
                )
                conn.execute(
                    text(
                        "CREATE TRIGGER test_refuse BEFORE INSERT ON smtp_deliveries "
                        "FOR EACH ROW EXECUTE FUNCTION test_refuse()"
                    )
                )
            else:
                conn.execute(text("DROP TRIGGER test_refuse ON smtp_deliveries"))
                conn.execute(text("DROP FUNCTION test_refuse()"))
    finally:
        store.close()


def test_a_store_failure_answers_451_and_the_retry_stores_it_once(env: Env) -> None:
    with receiver(env) as rx:
        _block_deliveries(env, on=True)
        with smtplib.SMTP("127.0.0.1", rx.port) as client:
            with pytest.raises(smtplib.SMTPDataError) as failed:
                client.sendmail("anna@example.net", ["journal@evidence.test"], message(7))
            assert failed.value.smtp_code == 451
            assert b"try again later" in failed.value.smtp_error
        # Nothing half-written: the email went with its delivery.
        assert count(env, Email) == 0
        _block_deliveries(env, on=False)
        with smtplib.SMTP("127.0.0.1", rx.port) as client:
            assert client.sendmail("anna@example.net", ["journal@evidence.test"], message(7)) == {}
        code, out, err = rx.stop()
    assert code == 0, err
    assert "1 message(s) not stored (451): the database failed (refused by the test)" in err
    assert (count(env, Email), count(env, SmtpDelivery)) == (1, 1)
    assert "INTACT" in run_evidence(env, "verify").stdout


def test_peers_outside_allow_are_refused(env: Env) -> None:
    with receiver(env, "--allow", "192.0.2.0/24") as rx:
        with pytest.raises(smtplib.SMTPConnectError) as refused:
            smtplib.SMTP("127.0.0.1", rx.port)
        assert refused.value.smtp_code == 554
        code, _out, err = rx.stop()
    assert code == 0
    assert "refused 127.0.0.1: not in --allow" in err
    assert count(env, SmtpDelivery) == 0


def test_listen_and_allow_are_checked_before_anything_starts(env: Env) -> None:
    bad = run_evidence(
        env, "receive", "smtp", "--listen", "127.0.0.1:0", "--allow", "10.0.0.300", check_code=2
    )
    assert "--allow '10.0.0.300': give an address or network" in bad.stderr
    bad = run_evidence(env, "receive", "smtp", "--listen", "localhost", check_code=2)
    assert "--listen 'localhost': give HOST:PORT" in bad.stderr
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        busy = run_evidence(
            env, "receive", "smtp", "--listen", f"127.0.0.1:{port}", check_code=1
        )
    assert f"cannot listen on 127.0.0.1:{port}" in busy.stderr


def test_starttls(env: Env, tmp_path: Path) -> None:
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2"]
        + ["-subj", "/CN=localhost", "-keyout", str(key), "-out", str(cert)],
        check=True,
        capture_output=True,
    )
    with receiver(env, "--tls-cert", str(cert), "--tls-key", str(key)) as rx:
        context = ssl.create_default_context(cafile=str(cert))
        with smtplib.SMTP("localhost", rx.port) as client:
            client.ehlo()
            assert client.has_extn("starttls")
            client.starttls(context=context)
            client.ehlo()
            assert not client.has_extn("starttls")
            client.sendmail("anna@example.net", ["journal@evidence.test"], message(3))
        code, _out, err = rx.stop()
    assert code == 0, err
    store = open_store(load_config(env.vars))
    try:
        with store.session() as session:
            delivery = session.scalars(select(SmtpDelivery)).one()
            assert delivery.tls is True
    finally:
        store.close()


def test_sigterm_finishes_the_message_being_sent(env: Env) -> None:
    with receiver(env) as rx:
        client = smtplib.SMTP("127.0.0.1", rx.port)
        client.ehlo()
        client.mail("anna@example.net")
        client.rcpt("journal@evidence.test")
        client.putcmd("data")
        assert client.getreply()[0] == 354
        raw = message(5)
        client.send(raw[:40])
        rx.proc.send_signal(signal.SIGTERM)
        time.sleep(1.0)
        assert rx.proc.poll() is None  # still taking the message
        client.send(raw[40:] + b".\r\n")
        assert client.getreply() == (250, b"2.0.0 stored as email #1")
        assert client.getreply()[0] == 421  # then it says goodbye
        client.close()
        out, _err = rx.proc.communicate(timeout=60)
        assert rx.proc.returncode == 0
    assert out == "stopped: imported 1, duplicates 0, quarantined 0\n"
    assert count(env, Email) == 1


def _client(port: int, numbers: range, acked: list[int], errors: list[BaseException]) -> None:
    """Send each message on one connection, reconnecting after a failure; note each 250."""
    client: smtplib.SMTP | None = None
    for n in numbers:
        try:
            if client is None:
                client = smtplib.SMTP("127.0.0.1", port, timeout=60)
            client.sendmail("anna@example.net", ["journal@evidence.test"], message(n))
            acked.append(n)
        except (smtplib.SMTPException, OSError) as exc:
            errors.append(exc)
            client = None
            return
    if client is not None:
        client.quit()


def _send_concurrently(
    port: int, clients: int, per_client: int
) -> tuple[list[int], list[BaseException]]:
    acked: list[int] = []
    errors: list[BaseException] = []
    threads = [
        threading.Thread(
            target=_client,
            args=(port, range(c * per_client, (c + 1) * per_client), acked, errors),
        )
        for c in range(clients)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return acked, errors


@pytest.mark.slow
def test_a_thousand_messages_from_ten_clients_each_stored_once(env: Env) -> None:
    with receiver(env) as rx:
        acked, errors = _send_concurrently(rx.port, 10, 100)
        # Everything once more, from fresh connections: every one a duplicate.
        again, errors_again = _send_concurrently(rx.port, 10, 100)
        code, out, err = rx.stop()
    assert errors == [] and errors_again == []
    assert sorted(acked) == sorted(again) == list(range(1000))
    assert code == 0, err
    assert out == "stopped: imported 1,000, duplicates 1,000, quarantined 0\n"
    store = open_store(load_config(env.vars))
    try:
        with store.session() as session:
            ids = list(session.scalars(select(Email.message_id)))
            assert sorted(ids) == sorted(f"<msg-{n}@example.net>" for n in range(1000))
            deliveries = session.scalar(select(func.count()).select_from(SmtpDelivery))
            assert deliveries == 1000
    finally:
        store.close()
    assert "INTACT" in run_evidence(env, "verify").stdout


@pytest.mark.slow
def test_killed_mid_stream_every_acknowledged_message_is_stored(env: Env) -> None:
    with receiver(env) as rx:
        acked: list[int] = []
        errors: list[BaseException] = []
        threads = [
            threading.Thread(
                target=_client, args=(rx.port, range(c * 10_000, (c + 1) * 10_000), acked, errors)
            )
            for c in range(10)
        ]
        for thread in threads:
            thread.start()
        deadline = time.monotonic() + 120
        while len(acked) < 300 and time.monotonic() < deadline:
            time.sleep(0.01)
        rx.proc.send_signal(signal.SIGKILL)
        rx.proc.communicate()
        for thread in threads:
            thread.join(60)
    assert len(acked) >= 300
    assert len(errors) == 10  # every client saw the receiver go
    store = open_store(load_config(env.vars))
    try:
        with store.session() as session:
            keys = set(session.scalars(select(Email.content_key)))
            delivered = set(session.scalars(select(SmtpDelivery.email_id)))
    finally:
        store.close()
    missing = [n for n in acked if content_key(message(n)) not in keys]
    assert missing == []
    assert len(delivered) == len(keys)  # each email stored with its delivery, or not at all
    verified = run_evidence(env, "verify")
    assert "INTACT" in verified.stdout


@pytest.mark.slow
def test_the_dossier_shows_the_envelope_and_our_receive_time(env: Env, tmp_path: Path) -> None:
    run_evidence(
        env, "customer", "add", "100234", "--name", "Anna Asiakas", "--email", "anna@example.net"
    )
    with receiver(env) as rx:
        with smtplib.SMTP("127.0.0.1", rx.port, local_hostname="relay.aurora.test") as client:
            client.sendmail(
                "anna@example.net", ["asiakaspalvelu@aurora-energia.example"], message(9)
            )
        assert rx.stop()[0] == 0
    timeline = json.loads(run_evidence(env, "timeline", "100234", "--json").stdout)
    (item,) = [i for i in timeline if i["kind"] == "email"]
    (delivery,) = item["smtp_deliveries"]
    assert item["received_source"] == "smtp-receiver"
    assert item["received_at"] == delivery["received_at"]
    assert delivery["rcpt_to"] == ["asiakaspalvelu@aurora-energia.example"]
    assert (delivery["mail_from"], delivery["helo"], delivery["tls"]) == (
        "anna@example.net",
        "relay.aurora.test",
        False,
    )
    for lang, label, words in (
        ("fi", "SMTP-kirjekuori", "Oman SMTP-vastaanottimemme ottaman sähköpostin"),
        ("sv", "SMTP-kuvert", "som vår egen SMTP-mottagare tog emot"),
    ):
        out = tmp_path / f"dossier-{lang}.pdf"
        run_evidence(env, "export", "100234", "-o", str(out), "--lang", lang)
        flat = " ".join(pdf_text(out).split()).replace("- ", "-")  # lines broken at hyphens
        assert label in flat
        assert words in flat
        assert "MAIL FROM <anna@example.net>" in flat
        assert "RCPT TO <asiakaspalvelu@aurora-energia.example>" in flat
        assert f"127.0.0.1:{rx.port}" in flat
    # The dossier proves the delivery beside the email: two leaves for the one exhibit.
    checked = run_evidence(env, "verify", str(out)).stdout
    assert re.search(r"E-001: 1 file matches the manifest; leaves #\d+, #\d+ proved", checked)


def test_a_dot_inside_a_long_line_is_kept(env: Env) -> None:
    """Dot-unstuffing applies at the start of a line only, however long the line."""
    raw = message(11, body="x" * 65536 + ".keep the dot\r\n.." + "y" * 70000 + ".")
    with receiver(env) as rx:
        with smtplib.SMTP("127.0.0.1", rx.port) as client:
            client.sendmail("anna@example.net", ["journal@evidence.test"], raw)
        assert rx.stop()[0] == 0
    store = open_store(load_config(env.vars))
    try:
        with store.session() as session:
            mail = session.scalars(select(Email)).one()
            assert read_blob(session, mail.raw_sha256) == raw
    finally:
        store.close()


def _one_delivery(env: Env) -> None:
    with receiver(env) as rx:
        with smtplib.SMTP("127.0.0.1", rx.port) as client:
            client.sendmail("anna@example.net", ["tuki@aurora-energia.example"], message(4))
        assert rx.stop()[0] == 0


def test_the_envelope_is_append_only_and_chained(env: Env) -> None:
    _one_delivery(env)
    store = open_store(load_config(env.vars))
    try:
        with pytest.raises(DBAPIError, match="append-only"):
            with store.engine.begin() as conn:
                conn.execute(text("UPDATE smtp_deliveries SET rcpt_to = 'someone@else.example'"))
        with store.engine.begin() as conn:  # an attacker switches the guard off first
            if env.backend == "sqlite":
                for name in trigger_names("sqlite", "smtp_deliveries"):
                    conn.execute(text(f"DROP TRIGGER {name}"))
            else:
                conn.execute(text("ALTER TABLE smtp_deliveries DISABLE TRIGGER ALL"))
            conn.execute(text("UPDATE smtp_deliveries SET rcpt_to = 'someone@else.example'"))
    finally:
        store.close()
    verified = run_evidence(env, "verify", check_code=5)
    assert "smtp_deliveries/1" in verified.stdout


def test_an_erasure_blanks_the_envelope_addresses(env: Env) -> None:
    run_evidence(
        env, "customer", "add", "7", "--name", "Anna Asiakas", "--email", "anna@example.net"
    )
    _one_delivery(env)
    run_evidence(env, "customer", "erase", "7", "--reason", "request of 6.12.2026", "--yes")
    store = open_store(load_config(env.vars))
    try:
        with store.session() as session:
            delivery = session.scalars(select(SmtpDelivery)).one()
            assert (delivery.mail_from, delivery.rcpt_to) == ("", "")
            assert (delivery.peer, delivery.size) == ("127.0.0.1", len(message(4)))
            payloads = " ".join(session.scalars(select(LedgerEntry.payload)))
            assert "anna@example.net" not in payloads
    finally:
        store.close()
    assert "INTACT" in run_evidence(env, "verify").stdout


def test_what_is_not_mail_is_quarantined_with_its_envelope(env: Env) -> None:
    with receiver(env) as rx:
        with smtplib.SMTP("127.0.0.1", rx.port) as client:
            client.ehlo()
            assert client.mail("")[0] == 250  # a bounce: the null reverse-path
            client.rcpt("journal@evidence.test")
            assert client.data(b"") == (250, b"2.0.0 stored as quarantine #1")
        code, out, err = rx.stop()
    assert code == 0
    assert out == "stopped: imported 0, duplicates 0, quarantined 1\n"
    assert f"quarantined: smtp://127.0.0.1:{rx.port}: empty message (quarantine #1)" in err
    store = open_store(load_config(env.vars))
    try:
        with store.session() as session:
            delivery = session.scalars(select(SmtpDelivery)).one()
            assert (delivery.email_id, delivery.quarantine_id, delivery.mail_from) == (None, 1, "")
    finally:
        store.close()


def test_allow_reads_addresses_and_networks_of_both_families() -> None:
    default = receiver_settings("127.0.0.1:2525")
    assert [default.allows(a) for a in ("127.0.0.1", "::1", "127.0.0.2", "10.0.0.5")] == [
        True,
        True,
        False,
        False,
    ]
    dual = receiver_settings("[::]:2525", ["10.20.0.0/24", "2001:db8::/32"])
    assert (dual.host, dual.port, dual.listener) == ("::", 2525, "[::]:2525")
    # An IPv4 peer of a dual-stack socket is seen as ::ffff:a.b.c.d.
    assert dual.allows("::ffff:10.20.0.7") and dual.allows("2001:db8::25")
    assert not dual.allows("::1") and not dual.allows("10.20.1.7")
    assert peer_address("::ffff:10.20.0.7") == "10.20.0.7"
    with pytest.raises(InvalidInput, match="--tls-cert and --tls-key go together"):
        receiver_settings("127.0.0.1:2525", tls_cert=Path("cert.pem"))


def test_ipv6(env: Env) -> None:
    with receiver(env, listen="[::1]:0") as rx:
        ready = f"receiving SMTP on [::1]:{rx.port} from 127.0.0.1/32, ::1/128"
        assert ready in rx.stderr_lines[-1]
        with smtplib.SMTP("::1", rx.port) as client:
            client.sendmail("anna@example.net", ["journal@evidence.test"], message(6))
        assert rx.stop()[0] == 0
    store = open_store(load_config(env.vars))
    try:
        with store.session() as session:
            delivery = session.scalars(select(SmtpDelivery)).one()
            assert (delivery.peer, delivery.listener) == ("::1", f"[::1]:{rx.port}")
            assert session.scalars(select(Email.source)).one() == f"smtp://[::1]:{rx.port}"
    finally:
        store.close()


def test_a_control_character_in_a_command_is_refused(env: Env) -> None:
    with receiver(env) as rx:
        with smtplib.SMTP("127.0.0.1", rx.port) as client:
            client.ehlo()
            assert client.docmd("MAIL FROM:<anna\x00@example.net>")[0] == 501
            client.mail("anna@example.net")
            assert client.docmd("RCPT TO:<journal\x01@evidence.test>")[0] == 501
            client.rcpt("journal@evidence.test")
            assert client.data(message(12))[0] == 250
        assert rx.stop()[0] == 0
    assert count(env, SmtpDelivery) == 1


def _refuse_one_recipient(env: Env) -> None:
    """The database refuses (as a constraint would) the delivery to poison@evidence.test."""
    store = open_store(load_config(env.vars))
    try:
        with store.engine.begin() as conn:
            if env.backend == "sqlite":
                conn.execute(
                    text(
                        "CREATE TRIGGER test_poison BEFORE INSERT ON smtp_deliveries "
                        "WHEN NEW.rcpt_to = 'poison@evidence.test' BEGIN "
                        "SELECT RAISE(ABORT, 'refused by the test'); END"
                    )
                )
            else:
                conn.execute(
                    text(
                        "CREATE FUNCTION test_poison() RETURNS trigger AS $$ BEGIN "
                        "IF NEW.rcpt_to = 'poison@evidence.test' THEN RAISE EXCEPTION "
                        "'refused by the test' USING ERRCODE = 'check_violation'; END IF; "
                        "RETURN NEW; END; $$ LANGUAGE plpgsql"
                    )
                )
                conn.execute(
                    text(
                        "CREATE TRIGGER test_poison BEFORE INSERT ON smtp_deliveries "
                        "FOR EACH ROW EXECUTE FUNCTION test_poison()"
                    )
                )
    finally:
        store.close()


def test_a_message_the_database_refuses_does_not_hold_back_the_others(env: Env) -> None:
    _refuse_one_recipient(env)
    store = open_store(load_config(env.vars))
    try:
        settings = receiver_settings("127.0.0.1:2525")
        writer = Writer(store, settings, mail_limits(store.config))
        deliveries = [
            Delivery(
                Envelope("anna@example.net", [rcpt], "relay.test", "127.0.0.1", 4000, False),
                message(n),
                utcnow(),
            )
            for n, rcpt in enumerate(
                ["a@evidence.test", "poison@evidence.test", "b@evidence.test"], start=20
            )
        ]
        for delivery in deliveries:  # queued before the writer starts: one batch
            writer.inbox.put(delivery)
        writer.importer.start()
        writer.start()
        for delivery in deliveries:
            assert delivery.done.wait(60)
        writer.inbox.put(None)
        writer.join(60)
        writer.importer.finish("receive smtp")
        replies = [re.sub(r"#\d+", "#N", d.reply) for d in deliveries]
        assert replies == ["250 2.0.0 stored as email #N", STORE_FAILED] + [
            "250 2.0.0 stored as email #N"
        ]
        with store.session() as session:
            assert list(session.scalars(select(Email.message_id).order_by(Email.id))) == [
                "<msg-20@example.net>",
                "<msg-22@example.net>",
            ]
    finally:
        store.close()
