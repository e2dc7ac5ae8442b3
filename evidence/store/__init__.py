"""The append-only store: models, raw bytes, the hash chain, database set-up."""
