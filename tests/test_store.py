"""The store refuses edits, keeps bytes exact, and chains every record."""

from __future__ import annotations

import datetime as dt
import hashlib
import json

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import Engine, select, text
from sqlalchemy.exc import DatabaseError

from evidence.config import load_config
from evidence.errors import IntegrityFailure, StoreNotInitialised
from evidence.records.incidents import add_incident
from evidence.store import ledger
from evidence.store.blobs import put_blob, read_blob
from evidence.store.db import Store, open_store, upgrade
from evidence.store.models import APPEND_ONLY_TABLES, Base, Incident, LedgerEntry
from evidence.verify.store import verify_store
from tests.conftest import Env

UTC = dt.UTC


def _incident(store: Store, title: str = "Sähkökatko") -> Incident:
    return add_incident(
        store,
        title=title,
        start=dt.datetime(2026, 9, 28, 7, 2, tzinfo=UTC),
        end=dt.datetime(2026, 9, 28, 11, 11, tzinfo=UTC),
        channels=["phone"],
        note=None,
        logged_by="Kaisa",
    )


def test_models_and_migrations_agree(store: Store) -> None:
    def ours(name: str | None, type_: str, _parent: object) -> bool:
        # procrastinate's own tables (the desk's job engine on PostgreSQL) are its own.
        return not (type_ == "table" and (name or "").startswith("procrastinate_"))

    with store.engine.connect() as conn:
        context = MigrationContext.configure(
            conn, opts={"compare_type": True, "include_name": ours}
        )
        diff = compare_metadata(context, Base.metadata)
    assert diff == []


def test_append_only_tables_match_migrations(store: Store) -> None:
    """Every table the models call append-only is guarded by exactly one migration."""
    from importlib import import_module
    from pathlib import Path

    versions = Path(__file__).resolve().parents[1] / "migrations" / "versions"
    guarded: list[str] = []
    for path in sorted(versions.glob("*.py")):
        migration = import_module(f"migrations.versions.{path.stem}")
        guarded += getattr(migration, "APPEND_ONLY_TABLES", ())
    assert sorted(guarded) == sorted(APPEND_ONLY_TABLES)


@pytest.mark.parametrize("statement", ["UPDATE incidents SET title = 'x'", "DELETE FROM incidents"])
def test_database_refuses_edits(store: Store, statement: str) -> None:
    _incident(store)
    with pytest.raises(DatabaseError, match="append-only"):
        with store.engine.begin() as conn:
            conn.execute(text(statement))
    with store.session() as session:
        assert session.get(Incident, 1) is not None


def test_every_evidence_table_is_guarded(env: Env, store: Store) -> None:
    with store.engine.connect() as conn:
        if env.backend == "sqlite":
            names = set(
                conn.execute(
                    text("SELECT name FROM sqlite_master WHERE type = 'trigger'")
                ).scalars()
            )
            expected = {
                f"evidence_append_only_{t}_{a}"
                for t in APPEND_ONLY_TABLES
                for a in ("update", "delete")
            }
        else:
            names = set(
                conn.execute(
                    text("SELECT tgname FROM pg_trigger WHERE NOT tgisinternal AND tgenabled = 'O'")
                ).scalars()
            )
            expected = {
                f"evidence_append_only_{t}_{k}"
                for t in APPEND_ONLY_TABLES
                for k in ("row", "truncate")
            }
    assert expected <= names


@pytest.mark.parametrize("env", ["postgresql"], indirect=True)
def test_truncate_refused_on_postgresql(store: Store) -> None:
    _incident(store)
    with pytest.raises(DatabaseError, match="append-only: TRUNCATE"):
        with store.engine.begin() as conn:
            conn.execute(text("TRUNCATE ledger CASCADE"))


def test_hash_chain_links_every_record(store: Store) -> None:
    first = _incident(store, "eka")
    second = _incident(store, "toka")
    with store.session() as session:
        entries = list(session.query(LedgerEntry).order_by(LedgerEntry.seq))
        assert [e.seq for e in entries] == [1, 2]
        assert entries[0].prev_hash == ledger.GENESIS
        assert entries[1].prev_hash == entries[0].entry_hash
        for entry in entries:
            expected = hashlib.sha256(
                bytes.fromhex(entry.prev_hash) + entry.payload.encode()
            ).hexdigest()
            assert entry.entry_hash == expected
        payload = json.loads(entries[1].payload)
        assert payload["_table"] == "incidents" and payload["title"] == "toka"
        assert payload["start"] == "2026-09-28T07:02:00Z"
        # The payload is the record's canonical encoding, recomputable from the row.
        assert entries[0].payload == ledger.canonical_payload(session.get(Incident, first.id))
        assert ledger.chain_head(session).hash == entries[1].entry_hash
        assert second.id == 2


def test_blob_read_back_is_checked(env: Env, store: Store) -> None:
    with store.writing() as session:
        digest = put_blob(session, b"alkuperainen")
    with store.session() as session:
        assert read_blob(session, digest) == b"alkuperainen"
    # An attacker with database access disables the guard and flips a byte.
    with store.engine.begin() as conn:
        if env.backend == "sqlite":
            conn.execute(text("DROP TRIGGER evidence_append_only_blobs_update"))
        else:
            conn.execute(text("ALTER TABLE blobs DISABLE TRIGGER ALL"))
        conn.execute(
            text("UPDATE blobs SET data = :d WHERE sha256 = :s"),
            {"d": b"alkuperainan", "s": digest},
        )
    with store.session() as session, pytest.raises(IntegrityFailure, match="no longer match"):
        read_blob(session, digest)


def test_naive_datetimes_are_refused(store: Store) -> None:
    with pytest.raises(Exception, match="naive"):
        add_incident(
            store,
            title="x",
            start=dt.datetime(2026, 9, 28, 7, 2),  # noqa: DTZ001 - the point of the test
            end=None,
            channels=[],
            note=None,
            logged_by="k",
        )


def test_init_is_idempotent(env: Env) -> None:
    """Upgrading a store that is at head again changes nothing: the same schema version,
    the same rows in every table, and a hash chain that still verifies."""
    from evidence.store.db import head_revision

    config = load_config()

    def state() -> tuple[str | None, dict[str, int]]:
        opened = open_store(config)
        try:
            with opened.engine.connect() as conn:
                version = conn.scalar(text("SELECT version_num FROM alembic_version"))
                counts = {
                    name: conn.scalar(text(f"SELECT count(*) FROM {name}"))
                    for name in Base.metadata.tables
                }
            assert verify_store(opened).intact
        finally:
            opened.close()
        return version, counts

    store = open_store(config)
    try:
        _incident(store)
    finally:
        store.close()
    before = state()
    assert before[0] == head_revision() and before[1]["incidents"] == 1
    upgrade(config)
    upgrade(config)
    assert state() == before


def test_missing_store_says_run_init(tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("EVIDENCE_HOME", str(tmp_path / "nothing"))
    monkeypatch.delenv("EVIDENCE_DATABASE_URL", raising=False)
    with pytest.raises(StoreNotInitialised, match="evidence init"):
        open_store(load_config())


@pytest.mark.parametrize("env", ["sqlite"], indirect=True)
def test_sqlite_file_is_private(env: Env) -> None:
    home = env.home / "fresh"
    config = load_config({"EVIDENCE_HOME": str(home)})
    upgrade(config)
    assert (home / "evidence.db").stat().st_mode & 0o077 == 0
    assert home.stat().st_mode & 0o077 == 0


def _downgrade(engine: Engine, url: str, target: str) -> None:
    from alembic import command

    from evidence.store.db import alembic_config

    with engine.begin() as conn:
        cfg = alembic_config(url)
        cfg.attributes["connection"] = conn
        command.downgrade(cfg, target)


def test_migrations_downgrade_and_upgrade_again(env: Env) -> None:
    from sqlalchemy import inspect

    from evidence.store.db import make_engine

    config = load_config()
    engine = make_engine(config.database_url)
    try:
        _downgrade(engine, config.database_url, "base")
        assert "emails" not in inspect(engine).get_table_names()
    finally:
        engine.dispose()
    upgrade(config)
    opened = open_store(config)
    opened.close()


def test_bulk_payload_equals_orm_payload(store: Store) -> None:
    """Bulk importers chain rows without the ORM; the encoding must be the same."""
    incident = _incident(store)
    with store.session() as session:
        row = session.get(Incident, incident.id)
        assert row is not None
        values = {c.key: getattr(row, c.key) for c in Incident.__table__.columns}
        assert ledger.payload_for_rows(Incident, values) == ledger.canonical_payload(row)
    with store.writing() as session:
        ledger.append_payloads(session, [("x", "1", '{"a":1}'), ("x", "2", '{"a":2}')])
    with store.session() as session:
        entries = list(session.query(LedgerEntry).order_by(LedgerEntry.seq))
        assert [e.seq for e in entries] == [1, 2, 3]
        assert entries[2].prev_hash == entries[1].entry_hash
        assert entries[2].entry_hash == ledger.entry_hash(entries[1].entry_hash, '{"a":2}')


def test_bulk_insert_stores_what_the_core_insert_stores(store: Store) -> None:
    """bulk.insert_rows binds each value as SQLAlchemy's insert() does: same bytes in the table."""
    from sqlalchemy import insert

    from evidence.store import bulk
    from evidence.store.blobs import put_blobs
    from evidence.store.models import Direction, Email, ReceivedSource

    helsinki = dt.timezone(dt.timedelta(hours=3))
    values = {
        "raw_sha256": hashlib.sha256(b"x").hexdigest(),
        "message_id": "<a@example.net>",
        "references": "<r@example.net>",  # a reserved word in SQL: quoted
        "subject": "Hyvä",
        "date_header": dt.datetime(2026, 9, 28, 10, 0, 0, 123, tzinfo=helsinki),
        "date_header_offset": 180,
        "received_at": dt.datetime(2026, 9, 28, 7, 0, 1, tzinfo=UTC),
        "received_source": ReceivedSource.RECEIVED_HEADER,
        "direction": Direction.INBOUND,
        "imported_at": dt.datetime(2026, 9, 28, 7, 1, tzinfo=UTC),
        "source": "x.eml",
        # message_id_reused left out: its default (False) is taken, as by insert()
    }
    with store.writing() as session:
        put_blobs(session, {values["raw_sha256"]: b"x"})
        session.execute(insert(Email), [{**values, "id": 1, "content_key": "a" * 64}])
        bulk.insert_rows(session, Email, [{**values, "id": 2, "content_key": "b" * 64}])
    with store.session() as session:
        stored = [
            dict(row._mapping) for row in session.execute(text("SELECT * FROM emails ORDER BY id"))
        ]
        orm = list(session.scalars(select(Email).order_by(Email.id)))
    assert [row.pop("id") for row in stored] == [1, 2]
    assert [row.pop("content_key") for row in stored] == ["a" * 64, "b" * 64]
    assert stored[0] == stored[1]
    assert orm[1].date_header == dt.datetime(2026, 9, 28, 7, 0, 0, 123, tzinfo=UTC)
    assert orm[1].message_id_reused is False and orm[1].references == "<r@example.net>"
    with store.writing() as session, pytest.raises(ValueError, match="naive"):
        naive = {**values, "id": 3, "content_key": "c" * 64}
        naive["received_at"] = dt.datetime(2026, 9, 28, 7, 0, tzinfo=UTC).replace(tzinfo=None)
        bulk.insert_rows(session, Email, [naive])


# --- the one verifier (evidence.verify.store), as `verify` and `status` run it ------------


def _tamper(env: Env, store: Store, statement: str, **params: object) -> None:
    """Change a row behind the application's back, as someone with database access could."""
    with store.engine.begin() as conn:
        if env.backend == "sqlite":
            for name in conn.execute(
                text("SELECT name FROM sqlite_master WHERE type = 'trigger'")
            ).scalars():
                conn.execute(text(f"DROP TRIGGER {name}"))
        else:
            for table in APPEND_ONLY_TABLES:
                conn.execute(text(f"ALTER TABLE {table} DISABLE TRIGGER USER"))
        conn.execute(text(statement), params)


def _found(store: Store) -> dict[str, str]:
    """The verifier's failures, but for what the tampering itself switched off or
    re-signed (the triggers, and the checkpoints' roots when the log was touched)."""
    from evidence.verify.store import verify_store

    return {
        f.subject: f.problem
        for f in verify_store(store).failures
        if not f.subject.startswith(("trigger ", "checkpoint #"))
    }


def test_the_verifier_passes_on_an_intact_store(store: Store, tmp_path) -> None:
    from evidence.ingest.mail import import_mail
    from evidence.records.incidents import correct_incident
    from evidence.verify.store import verify_store
    from tests.contacts import at_local, eml

    _incident(store)
    correct_incident(store, 1, title="Sähkökatko koko talossa", reason="tarkennus", by="k")
    maildir = tmp_path / "mail"
    maildir.mkdir()
    eml(maildir, at_local("2026-09-28 10:00"))
    import_mail(store, [maildir])
    for read_blobs in (True, False):
        report = verify_store(store, read_blobs=read_blobs)
        assert report.intact, report.lines()
        # Two incident versions, the email, and the audit entry of the correction.
        assert report.facts["tree_size"] == 4
        assert bool(report.not_checked) is not read_blobs


@pytest.mark.parametrize(
    ("statement", "subject", "problem"),
    [
        (
            "UPDATE incidents SET title = 'Ei mitään' WHERE id = 2",
            "incidents/2",
            "differs from what ledger entry #2 recorded (title: ",
        ),
        (
            "UPDATE email_addresses SET address = 'x@example.org' WHERE role = 'from'",
            "email_addresses/",
            "differs from what ledger entry #3 recorded (address: ",
        ),
        (
            "DELETE FROM incidents WHERE id = 2",
            "incidents/2",
            "was recorded by ledger entry #2 but the row is gone",
        ),
        (
            "UPDATE ledger SET payload = replace(payload, 'eka', 'EKA') WHERE seq = 1",
            "ledger entry #1",
            "its hash does not match its content",
        ),
        ("DELETE FROM ledger WHERE seq = 2", "ledger entry #2", "missing: deleted from the log"),
    ],
)
def test_the_verifier_locates_tampering(
    env: Env, store: Store, tmp_path, statement: str, subject: str, problem: str
) -> None:
    from evidence.ingest.mail import import_mail
    from tests.contacts import at_local, eml

    _incident(store, "eka")
    _incident(store, "toka")
    maildir = tmp_path / "mail"
    maildir.mkdir()
    eml(maildir, at_local("2026-09-28 10:00"))
    import_mail(store, [maildir])
    _tamper(env, store, statement)
    found = _found(store)
    assert any(s.startswith(subject) and problem in p for s, p in found.items()), found


def test_columns_added_later_must_stay_empty(env: Env, store: Store) -> None:
    """A record chained before a column existed has no key for it; the column must be NULL."""
    _incident(store)
    with store.writing() as session:
        entry = session.scalar(select(LedgerEntry).where(LedgerEntry.seq == 1))
        assert entry is not None
        payload = json.loads(entry.payload)
        del payload["corrected_by"]  # as if chained before migration 0006
    stripped = json.dumps(payload, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    _tamper(
        env,
        store,
        "UPDATE ledger SET payload = :p, entry_hash = :h WHERE seq = 1",
        p=stripped,
        h=ledger.entry_hash(ledger.GENESIS, stripped),
    )
    assert _found(store) == {}
    _tamper(env, store, "UPDATE incidents SET corrected_by = 'joku' WHERE id = 1")
    assert _found(store) == {
        "incidents/1": "differs from what ledger entry #1 recorded (corrected_by: null → "
        '"joku"): the row was changed'
    }


def test_downgrade_to_0001_keeps_the_incident_guards(env: Env) -> None:
    """On SQLite the downgrade rebuilds `incidents`: its triggers must come back."""
    from evidence.store.db import make_engine

    config = load_config()
    engine = make_engine(config.database_url)
    try:
        _downgrade(engine, config.database_url, "0001")
        with pytest.raises(DatabaseError, match="append-only"):
            with engine.begin() as conn:
                conn.execute(
                    text(
                        "INSERT INTO incidents (id, title, start, channels, logged_by, "
                        "logged_at, recorded_at) VALUES (1, 't', :t, '', 'k', :t, :t)"
                    ),
                    {"t": dt.datetime(2026, 1, 1, tzinfo=UTC)},
                )
                conn.execute(text("UPDATE incidents SET title = 'x'"))
    finally:
        engine.dispose()
    upgrade(config)
