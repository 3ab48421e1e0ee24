"""REST endpoints: the gateway's hot path and the seeds' /api/v1/me paths."""
