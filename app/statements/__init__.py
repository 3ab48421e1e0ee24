"""Receipts and monthly statements: what each payment and refund was, and each calendar
month of a wallet's ledger summed up, both as JSON and as PDF."""

# Where receipts and statements are downloaded (``app.api.rest.documents``):
# ``/api/v1/receipts/<global id>.pdf`` (or ``.json``), ``/api/v1/statements/2026-11.pdf``.
RECEIPTS_PATH = "/api/v1/receipts"
STATEMENTS_PATH = "/api/v1/statements"
FORMATS = ("pdf", "json")
