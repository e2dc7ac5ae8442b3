"""The operations of evidence, typed, for every face of it (the CLI today, the web desk next).

Each operation takes the store's ``Config`` and typed arguments, opens the store and its own
transaction, applies every rule (erasure, holds, deadlines, the audit log with the actor), and
returns a frozen dataclass whose ``as_dict()`` is what ``--json`` prints. One module per domain:
``cases``, ``customers``, ``holds``, ``incidents``, ``exports``, ``imports`` (and the SMTP
receiver), ``quarantine``, ``reading`` (timeline, agents, service report), ``integrity``
(verify, backup, audit log), ``status`` (sync and the store's state), ``users`` (the desk's
users and tokens). Nothing here imports click.
"""
