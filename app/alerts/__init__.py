"""Alerts: rules per organization, evaluated after every commit that moves money, fired
once per crossing, pushed (``alertFired``) and delivered to signed webhooks."""
