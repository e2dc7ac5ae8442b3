"""The ``evidence`` command: parses arguments and calls the library. Nothing else lives here.

One module per part of the work (imports, incidents, cases, reading, integrity...), all
under the group class of ``evidence.cli.base``, which handles errors and exit codes once.

Exit codes: 0 done; 1 error, or a bug in evidence (one line; the traceback with
EVIDENCE_DEBUG=1); 2 usage; 3 done, but some input was quarantined;
4 `evidence sync` is already running (this run did nothing).
5 verification found the store or a dossier altered; 6 `customer erase` refused (open case or
legal hold); 7 the database or its disk failed during the run (disk full, connection lost):
nothing half-written, run it again; 8 the store's database is damaged: restore a backup.
"""

from evidence.cli import (  # noqa: F401 - importing a module registers its commands
    cases,
    customers,
    desk,
    exports,
    holds,
    imports,
    incidents,
    integrity,
    quarantine,
    reading,
    receive,
    setup,
    status,
)
from evidence.cli.base import main

__all__ = ["main"]
