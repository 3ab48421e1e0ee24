"""Wallets, the append-only ledger, credit lots and holds."""
