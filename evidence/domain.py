"""The domain's fixed vocabularies, as enums stored by their values (the database holds the
same strings as before), and the one place each is put in words for the dossier and the CLI."""

from __future__ import annotations

from collections.abc import Callable
from enum import StrEnum


def _english(text: str) -> str:
    return text


class CallOutcome(StrEnum):
    """How a call ended, as the call-log importers derive it."""

    ANSWERED = "answered"
    TRANSFERRED = "transferred"
    ABANDONED = "abandoned"
    TIMEOUT = "timeout"
    EXIT_EMPTY = "exit-empty"
    EXIT_KEY = "exit-key"
    IVR = "ivr"
    UNANSWERED = "unanswered"
    VOICEMAIL = "voicemail"
    UNKNOWN = "unknown"
    BUSY = "busy"
    FAILED = "failed"


class ItemKind(StrEnum):
    """What a timeline item is (``kind`` in ``timeline --json``)."""

    EMAIL = "email"
    CALL = "call"
    INCIDENT = "incident"
    AGENT_PAUSE = "agent_pause"
    AGENT_AVAILABILITY = "agent_availability"


class CallLogFormat(StrEnum):
    """The call logs ``import calls --format`` and ``[[sync.calls]] format`` read."""

    CDR = "asterisk-cdr"
    QUEUE_LOG = "asterisk-queue-log"
    FREESWITCH = "freeswitch-cdr"
    CSV = "csv"


class ServiceState(StrEnum):
    """A contact's service state: inside an incident that applies to its channel, else
    outside the channel's opening hours, else normal service."""

    INCIDENT = "incident"
    OUTSIDE_HOURS = "outside-hours"
    NORMAL = "normal"


def outcome_label(outcome: str, _: Callable[[str], str] = _english) -> str:
    """A call's outcome in words (``_``: the dossier's gettext; English by default); an
    outcome not known here is shown as stored."""
    labels: dict[str, str] = {
        CallOutcome.ANSWERED: _("answered"),
        CallOutcome.ABANDONED: _("caller hung up in the queue"),
        CallOutcome.TIMEOUT: _("queue time limit reached"),
        CallOutcome.EXIT_EMPTY: _("left the queue: no agents"),
        CallOutcome.EXIT_KEY: _("left the queue by key press"),
        CallOutcome.IVR: _("ended in the phone menu or an announcement (no agent)"),
        CallOutcome.UNANSWERED: _("not answered"),
        CallOutcome.TRANSFERRED: _("answered and transferred"),
        CallOutcome.VOICEMAIL: _("voicemail"),
        CallOutcome.UNKNOWN: _("outcome not known (see the source)"),
        CallOutcome.BUSY: _("busy"),
        CallOutcome.FAILED: _("failed"),
    }
    return labels.get(outcome, outcome)


def service_state_label(state: str | None, _: Callable[[str], str] = _english) -> str:
    """A contact's service state in words; "" for an item that is not a contact."""
    labels: dict[str, str] = {
        ServiceState.INCIDENT: _("during an incident"),
        ServiceState.OUTSIDE_HOURS: _("outside opening hours"),
        ServiceState.NORMAL: _("normal service"),
    }
    return labels.get(state or "", "")
