"""Everything one creditgraph process holds: engines, price book, bus, writer, directories."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
from dataclasses import dataclass, field
from datetime import timedelta

from app import maintenance
from app.alerts.service import Alerts
from app.auth import Authenticator, ConfigurationError, jwt_secret
from app.clock import Clock
from app.db import Database
from app.events import EventBus, InMemoryEventBus
from app.events_redis import RedisEventBus
from app.keys.service import KeyDirectory, KeyVault
from app.ledger.writer import Writer
from app.metrics import Metrics
from app.migrate import pending, upgrade
from app.oidc import Oidc
from app.orgs.service import OrgDirectory
from app.payments.config import PaymentConfigError, payment_provider
from app.payments.ladder import BonusLadder
from app.payments.service import Payments
from app.plans.catalog import Catalog
from app.plans.service import Plans
from app.pricing.book import PriceBook
from app.settings import Settings
from app.webhooks.delivery import Webhooks
from app.webhooks.signing import signing_vault

log = logging.getLogger(__name__)


@dataclass
class Runtime:
    settings: Settings
    clock: Clock
    db: Database
    prices: PriceBook
    bus: EventBus
    writer: Writer
    orgs: OrgDirectory
    keys: KeyDirectory
    vault: KeyVault
    auth: Authenticator
    payments: Payments
    plans: Catalog
    subscriptions: Plans
    alerts: Alerts
    webhooks: Webhooks
    metrics: Metrics
    _jobs: asyncio.Task[None] | None = field(default=None, repr=False)

    @property
    def hold_ttl(self) -> timedelta:
        return timedelta(seconds=self.settings.hold_ttl_seconds)

    @classmethod
    async def start(cls, settings: Settings, clock: Clock | None = None) -> Runtime:
        clock = clock or Clock()
        secret = jwt_secret(settings)  # refuses to start in production without one
        oidc = Oidc.from_settings(settings)
        prices = PriceBook.load(settings.price_book_path)
        ladder = BonusLadder.load(settings.bonus_ladder_path)
        plans = Catalog.load(settings.plan_catalog_path)
        vault = signing_vault(settings)  # refuses production without a key encryption key
        db = Database(settings)
        try:
            provider = payment_provider(settings, db)  # refuses unsafe payment setups
        except PaymentConfigError:
            await db.dispose()
            raise
        if not settings.is_production:
            # The embedded default migrates itself; production runs `creditgraph migrate`.
            await upgrade(db.writer, settings)
        elif await pending(db.writer):
            await db.dispose()
            raise ConfigurationError(
                "the database schema is not up to date: run `creditgraph migrate` first"
            )
        bus = await _event_bus(settings)
        metrics = Metrics(bus.subscriber_count)
        if isinstance(bus, RedisEventBus):
            bus.on_publish_failed = lambda: metrics.bus_error("publish")
            bus.on_resubscribed = lambda: metrics.bus_error("resubscribe")
            # Writes here and on the other instances, counted on both sides.
            db.changes.announce = bus.announce
            bus.on_changed = db.changes.count
        webhooks = Webhooks(db, clock, settings, vault)
        webhooks.watch()  # before anything writes: every queued delivery is seen
        webhooks.on_attempted = metrics.webhook_attempted
        writer = Writer(db, bus, clock, settings.writer_batch_max)
        writer.on_committed = metrics.committed
        writer.start()
        subscriptions = Plans(db, writer, clock, plans, prices, provider)
        payments = Payments(
            db,
            writer,
            clock,
            provider,
            ladder,
            subscriptions,
            reconcile_after=timedelta(seconds=settings.reconcile_after_seconds),
        )
        writer.on_low_balance = payments.low_balance
        alerts = Alerts(db, bus, clock, vault)
        writer.on_balance_changed = alerts.changed
        payments.on_reload_failed = alerts.reload_failed_hook
        orgs, keys = OrgDirectory(db.reader), KeyDirectory(db.reader)
        runtime = cls(
            settings,
            clock,
            db,
            prices,
            bus,
            writer,
            orgs,
            keys,
            KeyVault(settings.key_encryption_key, secret_prefix=settings.api_key_prefix),
            Authenticator(secret, orgs, keys, oidc),
            payments,
            plans,
            subscriptions,
            alerts,
            webhooks,
            metrics,
        )
        if settings.run_jobs:
            runtime._jobs = asyncio.create_task(runtime._run_jobs(), name="creditgraph-jobs")
        # What is alive now (modules, tables, the price book) stays alive: keep it out
        # of the collector's full passes, which the writer's batches trigger often and
        # which cost a quarter of ingestion time otherwise (docs/performance.md).
        gc.freeze()
        return runtime

    async def readiness(self) -> dict[str, bool]:
        """What a load balancer checks before sending traffic here (``/readyz``)."""
        return {
            "database": await self.db.reachable(),
            "event_bus": await self.bus.ready(),
            "writer": self.writer.running,
        }

    async def _run_jobs(self) -> None:
        while True:
            await asyncio.sleep(self.settings.jobs_interval_seconds)
            try:
                await maintenance.run_once(self)
            except Exception:
                log.exception("periodic jobs failed; retrying next interval")

    async def stop(self) -> None:
        if self._jobs is not None:
            self._jobs.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._jobs
        await self.payments.stop()  # charges in flight finish and are recorded
        await self.writer.stop()  # finishes every write already submitted
        await self.alerts.stop()
        await self.webhooks.stop()  # deliveries cut short are taken up again by the jobs
        await self.bus.close()  # after the writer, which publishes its last commits
        await self.db.dispose()


async def _event_bus(settings: Settings) -> EventBus:
    if settings.redis_url is None:
        return InMemoryEventBus()
    bus = RedisEventBus(settings.redis_url, settings.redis_channel_prefix)
    await bus.start()  # refuses to start without Redis rather than serve a deaf bus
    return bus
