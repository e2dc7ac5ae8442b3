"""FreeSWITCH ``mod_cdr_csv`` with its default template.

The template is the one FreeSWITCH ships as ``default-template`` in
``conf/vanilla/autoload_configs/cdr_csv.conf.xml`` (template ``example``)::

    "${caller_id_name}","${caller_id_number}","${destination_number}","${context}",
    "${start_stamp}","${answer_stamp}","${end_stamp}","${duration}","${billsec}",
    "${hangup_cause}","${uuid}","${bleg_uuid}","${accountcode}","${read_codec}",
    "${write_codec}"

The 13-column form (the same without the two codecs, as in the ``sql`` template)
is read too. Times are FreeSWITCH's ``*_stamp`` variables: the server's local
time, ``YYYY-MM-DD HH:MM:SS`` (``--utc`` when the server runs in UTC). A
different template is a different format: import it with ``--format csv`` and a
mapping.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from evidence.domain import CallLogFormat, CallOutcome
from evidence.ingest.asterisk import WallClockRows, _int, _naive
from evidence.ingest.phonelog import LineError, csv_row
from evidence.store.models import Base, CallRecord

FORMAT_FREESWITCH = CallLogFormat.FREESWITCH
COLUMNS = (
    "caller_id_name",
    "caller_id_number",
    "destination_number",
    "context",
    "start_stamp",
    "answer_stamp",
    "end_stamp",
    "duration",
    "billsec",
    "hangup_cause",
    "uuid",
    "bleg_uuid",
    "accountcode",
    "read_codec",
    "write_codec",
)
LAYOUTS = {15: COLUMNS, 13: COLUMNS[:13]}
UUID = re.compile(r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}")
# hangup_cause of a call that was not answered, by what it means to the caller.
UNANSWERED_CAUSES = frozenset(
    {
        "NO_ANSWER",
        "NO_USER_RESPONSE",
        "ALLOTTED_TIMEOUT",
        "ORIGINATOR_CANCEL",
        "NORMAL_CLEARING",
        "LOSE_RACE",
        "PICKED_OFF",
    }
)
BUSY_CAUSES = frozenset({"USER_BUSY", "NORMAL_CIRCUIT_CONGESTION", "SWITCH_CONGESTION"})
# FreeSWITCH's dialplan context for calls from outside.
INBOUND_CONTEXTS = frozenset({"public"})


def outcome_of(hangup_cause: str, answered: bool) -> str:
    if answered:
        return CallOutcome.ANSWERED
    cause = hangup_cause.strip().upper()
    if cause in BUSY_CAUSES:
        return CallOutcome.BUSY
    if cause in UNANSWERED_CAUSES:
        return CallOutcome.UNANSWERED
    return CallOutcome.FAILED


@dataclass
class FreeswitchParser(WallClockRows):
    format: str = FORMAT_FREESWITCH
    encoding: str = "utf-8"
    multiline: bool = True

    def parse(self, text: str) -> tuple[type[Base], dict[str, Any]]:
        row = csv_row(text)
        layout = LAYOUTS.get(len(row))
        if layout is None:
            raise LineError(
                f"{len(row)} columns; mod_cdr_csv's default template writes 15 "
                "(13 without the codecs): for another template use --format csv --mapping"
            )
        f = dict(zip(layout, row, strict=False))
        start = _naive(f["start_stamp"], "start_stamp")
        if start is None:
            raise LineError("start_stamp is empty")
        duration = _int(f["duration"], "duration")
        billsec = _int(f["billsec"], "billsec")
        answer = _naive(f["answer_stamp"], "answer_stamp")
        times = self.times(
            start,
            answer,
            _naive(f["end_stamp"], "end_stamp"),
            hint_epoch=None,
            duration=duration,
            billsec=billsec,
        )
        context = f["context"] or None
        answered = answer is not None
        return CallRecord, {
            "header_line_id": None,
            "format": self.format,
            "mapping_sha256": None,
            "call_id": f["uuid"] or None,
            "linked_id": f["bleg_uuid"] or None,
            "caller": f["caller_id_number"],
            "caller_e164": self.numbers(f["caller_id_number"]),
            "caller_name": f["caller_id_name"] or None,
            "callee": f["destination_number"],
            "callee_e164": self.numbers(f["destination_number"]),
            "direction": "inbound" if context in INBOUND_CONTEXTS else None,
            "direction_recorded": None,
            "context": context,
            "start_local": f["start_stamp"],
            "started_at": times.started,
            "answered_at": times.answered,
            "ended_at": times.ended,
            "time_flag": times.flag,
            "queue": None,
            "agent": None,
            "queue_wait": None,
            "ring_time": duration - billsec if answered else None,
            "talk_time": billsec if answered else None,
            "duration": duration,
            "outcome": outcome_of(f["hangup_cause"], answered),
            "outcome_recorded": f["hangup_cause"] or None,
        }
