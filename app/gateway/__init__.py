"""The gateway's hot path: authorize a call with a hold, then bill its usage."""
