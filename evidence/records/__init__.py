"""The domain records kept beside the evidence: customers and their identifiers, cases and
claims, holds, incidents and plans, erasure, quarantine, exports and the desk's users. Each is
append-only and chained; a change is a new record."""
