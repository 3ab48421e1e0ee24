"""The Stripe stand-in's fixtures, for receipts paid through it."""

from tests.payments.conftest import paying as paying
from tests.payments.conftest import stripe_standin as stripe_standin
