"""evidence: an append-only store of customer contacts and a regulator-ready PDF dossier."""

__version__ = "0.1.0"
