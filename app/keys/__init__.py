"""API keys: secrets, routing groups, lifetime quotas and rolling-window caps."""
