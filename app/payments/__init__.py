"""Money in: top-ups through a payment provider, the bonus ladder, refunds and auto-reload."""
