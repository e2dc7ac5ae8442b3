"""Errors a user can hit. Each says what to do; the CLI prints it on one line."""

from __future__ import annotations


class EvidenceError(Exception):
    """Base class: the CLI prints the message and exits with ``exit_code``."""

    exit_code = 1


class StoreNotInitialised(EvidenceError):
    def __init__(self, where: str) -> None:
        super().__init__(f"no evidence store at {where}: run `evidence init` first")


class StoreOutdated(EvidenceError):
    def __init__(self) -> None:
        super().__init__("the store's schema is older than this program: run `evidence init`")


class NotFound(EvidenceError):
    pass


class InvalidInput(EvidenceError):
    pass


class InvalidArguments(InvalidInput):
    """Arguments that make no sense together (no subject, a period that ends before it
    starts), refused before anything is done: on the command line a usage error (exit 2)."""

    exit_code = 2


class Conflict(InvalidInput):
    """The request clashes with what is stored (e.g. a case reference already open)."""


class IntegrityFailure(EvidenceError):
    """Stored bytes no longer match their recorded hash."""

    exit_code = 5


class NotIntact(IntegrityFailure):
    """The report, printed, names every check that failed: nothing more to say, exit 5."""

    def __init__(self) -> None:
        super().__init__("")


class InputQuarantined(EvidenceError):
    """The run is done and its report printed, but some input was quarantined
    (`evidence quarantine list`): nothing more to say, exit 3."""

    exit_code = 3

    def __init__(self) -> None:
        super().__init__("")


class SourcesFailed(EvidenceError):
    """`evidence sync` ran every source and reported each; at least one failed (exit 1)."""

    def __init__(self) -> None:
        super().__init__("")


class SyncAlreadyRunning(EvidenceError):
    """Another ``evidence sync`` holds the lock; this run did nothing."""

    exit_code = 4


class ErasureRefused(EvidenceError):
    """An erasure the law does not allow yet: an open case or an active legal hold."""

    exit_code = 6


class ContentErased(EvidenceError):
    """The content asked for was erased (GDPR Art. 17); the tombstone says when and why."""


class StoreWriteFailed(EvidenceError):
    """The database failed in the middle of a run (disk full, server restarted, connection lost).

    Each chunk is one transaction, so what was committed before the failure is
    whole and the chunk in progress left nothing; running the command again
    when the cause is fixed adds exactly what is missing.
    """

    exit_code = 7


class StoreDamaged(EvidenceError):
    """The database file (or the server's pages) cannot be read back as written: damage.

    Unlike ``StoreWriteFailed``, running the command again does not help, and what
    is stored cannot be trusted to be whole: the remedy is the last backup.
    """

    exit_code = 8

    def __init__(self, what: str, where: str) -> None:
        self.what = what
        super().__init__(
            f"the store's database is damaged ({what}): {where}. Do not write to it; "
            "keep the damaged file for inspection, restore the last backup (made with "
            '`evidence backup`; README, "Backups and restore") and run `evidence verify` on it'
        )
