"""Usage records: per-call billing, ingested through the group-commit writer."""
