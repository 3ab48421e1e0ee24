"""Webhooks: organizations' endpoints subscribed to billing events, and one delivery
mechanism for them and for alert rules' webhooks: an outbox written with each change
(``outbox``), signed POSTs retried with backoff and every attempt logged (``delivery``),
encrypted signing secrets (``signing``) and the SSRF rules for URLs (``urls``)."""
