"""The domain's vocabularies are enums stored by value, and a call's outcome is put in words by
one function, for the dossier (in its language) and for the CLI (in English)."""

from __future__ import annotations

import json
from pathlib import Path

from sqlalchemy import text

from evidence.domain import (
    CallLogFormat,
    CallOutcome,
    ItemKind,
    ServiceState,
    outcome_label,
    service_state_label,
)
from evidence.render.i18n import translations
from evidence.store.db import Store
from tests.conftest import Env, run_evidence

QUEUE_LOG = [
    "1790579705|1790579705.312|asiakaspalvelu|NONE|ENTERQUEUE||0401234567|1",
    "1790579800|1790579705.312|asiakaspalvelu|NONE|ABANDON|1|1|95",
]


def test_the_cli_timeline_words_an_outcome_as_the_dossier_does(
    env: Env, store: Store, tmp_path: Path
) -> None:
    """In a fresh process: the text line says what the English dossier says; --json and the
    database keep the stored value."""
    log = tmp_path / "queue_log"
    log.write_text("\n".join(QUEUE_LOG) + "\n", encoding="utf-8")
    run_evidence(env, "customer", "add", "7", "--name", "Matti", "--phone", "040 123 4567")
    run_evidence(env, "import", "calls", str(log), "--format", "asterisk-queue-log")
    lines = run_evidence(env, "timeline", "7").stdout.splitlines()
    [call] = [line for line in lines if "  call inbound " in line]
    assert ": caller hung up in the queue, queue 1 min 35 s, talk " in call
    [item] = json.loads(run_evidence(env, "timeline", "7", "--json").stdout)
    assert (item["kind"], item["outcome"]) == ("call", "abandoned")
    with store.session() as session:
        kinds = session.execute(text("SELECT DISTINCT kind FROM import_runs")).scalars().all()
    assert kinds == ["asterisk-queue-log"]


def test_every_outcome_and_state_has_words_in_each_language() -> None:
    for language in ("fi", "sv"):
        _ = translations(language).gettext
        for outcome in CallOutcome:
            words = outcome_label(outcome, _)
            assert words and words != outcome_label(outcome), (language, outcome, words)
        for state in ServiceState:  # Swedish says "normal service" too
            words = service_state_label(state, _)
            assert words != service_state_label(state) or language == "sv", (language, state)
    assert outcome_label("something-new") == "something-new"  # shown as stored
    assert service_state_label(None) == ""


def test_values_are_the_strings_stored_before() -> None:
    assert [o.value for o in CallOutcome] == [
        "answered", "transferred", "abandoned", "timeout", "exit-empty", "exit-key", "ivr",
        "unanswered", "voicemail", "unknown", "busy", "failed",
    ]  # fmt: skip
    assert list(ItemKind) == ["email", "call", "incident", "agent_pause", "agent_availability"]
    assert list(CallLogFormat) == ["asterisk-cdr", "asterisk-queue-log", "freeswitch-cdr", "csv"]
    assert list(ServiceState) == ["incident", "outside-hours", "normal"]
    assert json.dumps([CallOutcome.EXIT_KEY, f"{ItemKind.AGENT_PAUSE}"]) == (
        '["exit-key", "agent_pause"]'
    )
