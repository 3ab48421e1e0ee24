"""The ``creditgraph`` command."""

from __future__ import annotations

import asyncio
import contextlib
import socket
import sys
from collections.abc import Awaitable, Callable
from dataclasses import asdict
from datetime import datetime, timedelta
from pathlib import Path
from typing import TypeVar

import click
import uvicorn
from rich.console import Console
from rich.progress import Progress

from app import console as served
from app import console_build
from app.auth import TOKEN_ROLES, ConfigurationError, Role, issue_token, jwt_secret
from app.clock import Clock
from app.db import Database
from app.demo import DAYS, Demo
from app.demo import seed as seed_demo
from app.demo_traffic import Traffic
from app.grants.promos import (
    PromoCodeError,
    PromoTerms,
    create_promo,
    describe,
    end_promo,
    normalize,
    promo_codes,
)
from app.ids import to_global_id
from app.ledger.verify import verify as verify_books
from app.logs import AccessLog, log_config
from app.migrate import upgrade
from app.money import MoneyError, parse_usd
from app.oidc import Oidc
from app.operations import adjust as adjust_wallet
from app.operations import create_organization
from app.orgs.service import OrgError
from app.runtime import Runtime
from app.settings import Settings
from app.signin import CODE_TTL, SignInCodes

T = TypeVar("T")
DEMO_OWNER = "owner@demo.test"
DEMO_TRAFFIC_RATE = 2.0  # calls a second: the console moves, the log stays readable
console = Console(stderr=True, soft_wrap=True)


def _usd(value: str, option: str, *, allow_negative: bool = False) -> int:
    try:
        return parse_usd(value, allow_negative=allow_negative)
    except MoneyError as error:
        raise click.BadParameter(str(error), param_hint=option) from None


async def _with_runtime(settings: Settings, work: Callable[[Runtime], Awaitable[T]]) -> T:
    try:
        runtime = await Runtime.start(settings.model_copy(update={"run_jobs": False}))
    except ConfigurationError as error:
        raise click.ClickException(str(error)) from None
    try:
        return await work(runtime)
    finally:
        await runtime.stop()


@click.group()
def main() -> None:
    """creditgraph: prepaid credits, exact caps and usage billing for AI API platforms."""


@main.command()
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=8000, show_default=True, type=int)
@click.option(
    "--demo",
    is_flag=True,
    help="Seed organization 'demo' (keys, 30 days of usage), serve the console and "
    "simulate a gateway's calls.",
)
@click.option(
    "--traffic-rate",
    type=click.FloatRange(0, 100, min_open=True),
    help=f"With --demo: simulated gateway calls a second (default {DEMO_TRAFFIC_RATE:g}).",
)
@click.option("--no-traffic", is_flag=True, help="With --demo: no simulated gateway calls.")
def serve(host: str, port: int, demo: bool, traffic_rate: float | None, no_traffic: bool) -> None:
    """Serve the API (migrating the embedded database first)."""
    from app.main import create_app

    if not demo and (traffic_rate is not None or no_traffic):
        raise click.UsageError("--traffic-rate and --no-traffic go with --demo")
    if traffic_rate is not None and no_traffic:
        raise click.UsageError("--traffic-rate and --no-traffic exclude each other")
    settings = Settings()
    try:
        secret = jwt_secret(settings)
        Oidc.from_settings(settings)  # a configuration error shows here, not in uvicorn
    except ConfigurationError as error:
        raise click.ClickException(str(error)) from None
    sign_in: SignInCodes | None = None
    seeded: Demo | None = None
    traffic: Traffic | None = None
    if demo:
        settings = settings.model_copy(update={"console": True})
        seeded = _seed_demo(settings)
        _build_console(settings)
        sign_in = SignInCodes(secret, Clock(), org="demo", subject=DEMO_OWNER)
        if not no_traffic:
            traffic = Traffic(
                {name: key.secret for name, key in seeded.keys.items()},
                _service_token(secret),
                traffic_rate or DEMO_TRAFFIC_RATE,
            )
    # On SIGTERM uvicorn stops accepting, lets requests in flight finish, then runs the
    # lifespan's shutdown, which drains the writer (docs/deployment.md); the demo
    # traffic stops before that.
    # The access log is the app's, written in batches (``app.logs.AccessLog``).
    access_log = AccessLog(
        sys.stderr,
        json=settings.log_format == "json",
        unlogged_agent=None if traffic is None else traffic.USER_AGENT,
    )
    config = uvicorn.Config(
        create_app(settings, access_log=access_log, sign_in=sign_in),
        host=host,
        port=port,
        log_level="info",
        log_config=log_config(settings) or uvicorn.config.LOGGING_CONFIG,
        access_log=False,
    )

    def listening(base: str) -> None:
        if sign_in is not None and seeded is not None:
            _print_demo(base, sign_in, seeded, secret, traffic)
        if settings.console:
            _print_console(settings, base, links=sign_in is None)

    server = _Server(config, listening, traffic)
    with contextlib.suppress(KeyboardInterrupt):  # ctrl-C, as uvicorn.run takes it
        server.run()
    if not server.started:
        sys.exit(3)  # uvicorn's exit status when it could not start


class _Server(uvicorn.Server):
    """uvicorn's server, calling ``listening(base URL)`` once it accepts connections (the
    links are printed when they work, below uvicorn's own lines, with the port bound),
    and running the demo's ``traffic`` against that URL while it serves."""

    def __init__(
        self,
        config: uvicorn.Config,
        listening: Callable[[str], None],
        traffic: Traffic | None,
    ) -> None:
        super().__init__(config)
        self._listening = listening
        self._traffic = traffic
        self._base = ""

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        await super().startup(sockets)
        if self.should_exit:
            return
        port = self.servers[0].sockets[0].getsockname()[1]
        host = self.config.host
        host = "127.0.0.1" if host in ("0.0.0.0", "::") else host  # where a browser goes
        self._base = f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"
        self._listening(self._base)

    async def main_loop(self) -> None:
        if self._traffic is None:
            await super().main_loop()
            return
        # Between startup (the socket listens) and shutdown (it stops accepting).
        running = asyncio.create_task(self._traffic.run(self._base))
        try:
            await super().main_loop()
        finally:
            running.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await running


def _seed_demo(settings: Settings) -> Demo:
    with Progress(console=console, transient=True) as progress:
        task = progress.add_task("Seeding 30 days of demo usage", total=DAYS)
        return asyncio.run(
            seed_demo(settings, lambda done, _total: progress.update(task, completed=done))
        )


def _build_console(settings: Settings) -> None:
    """Build the console from its sources for the demo when it is missing or stale and
    npm can; otherwise the printout's last line says how to get it."""
    directory = served.buildable(settings)
    if directory is None or console_build.npm() is None or not console_build.stale(directory):
        return  # an operator's build, no sources or no npm, or built
    with Progress(console=console, transient=True) as progress:
        task = progress.add_task("Building the console", total=2)
        begun: list[str] = []

        def step(what: str) -> None:  # a bar of the two steps, filled as each begins
            progress.update(task, description=what, completed=len(begun))
            begun.append(what)

        try:
            console_build.build(directory, step)
        except console_build.BuildError as error:
            console.print(f"[yellow]The console could not be built:[/yellow] {error}")


def _service_token(secret: str) -> str:
    return issue_token(
        secret, org="demo", role=Role.SERVICE, subject="gateway", ttl=timedelta(days=30)
    )


def _print_demo(
    base: str, sign_in: SignInCodes, seeded: Demo, secret: str, traffic: Traffic | None
) -> None:
    """One screen: the console, GraphiQL, then the gateway's calls with the keys."""
    minutes = int(CODE_TTL.total_seconds() // 60)
    production = seeded.keys["production"]
    key, key_id = production.secret, to_global_id("ApiKey", production.id)
    lines = [
        f"creditgraph demo on {base}: organization 'demo' (Demo AI Labs)",
        f"  Console   {base}/console/#signin={sign_in.new()}",
        f"  GraphiQL  {base}/graphql#signin={sign_in.new()}",
        f"  (each link signs in as the demo owner once, within {minutes} minutes; "
        "a restart prints new ones)",
        "  A gateway's calls: authorize, then report the usage (service token, 30 days):",
        f"  curl {base}/api/v1/authorize -H 'Content-Type: application/json' "
        f'-d \'{{"api_key": "{key}", "model": "claude-sonnet-4-6", "request_id": "r1", '
        '"hold_usd": "0.05"}\'',
        f"  curl {base}/api/v1/usage -H 'Content-Type: application/json' "
        f"-H 'Authorization: Bearer {_service_token(secret)}' "
        f'-d \'{{"events": [{{"request_id": "r1", "api_key_id": "{key_id}", '
        '"model": "claude-sonnet-4-6", "prompt_tokens": 1000, "completion_tokens": 200}]}\'',
        *(f"  API key {name:<14} {made.secret}" for name, made in seeded.keys.items()),
    ]
    if not seeded.seeded:
        lines.insert(1, "  (organization 'demo' already existed: its keys have new secrets)")
    if traffic is not None:
        lines.append(
            f"  Demo traffic: {traffic.rate:g} gateway calls a second, not in the access log "
            "(--traffic-rate N sets it, --no-traffic turns it off)"
        )
    for line in lines:
        click.echo(line, err=True)


def _print_console(settings: Settings, base: str, *, links: bool) -> None:
    """The console's address (the demo has printed its own), or how to build it: the
    printout's last line either way."""
    missing = served.missing_build(settings)
    if missing is not None:
        click.secho(f"Console: {missing}", err=True, fg="yellow")
    elif links:
        click.echo(f"Console: {base}/console/", err=True)


@main.command("schema")
@click.option("--output", "-o", type=click.Path(dir_okay=False), help="Default: standard output.")
def export_schema(output: str | None) -> None:
    """Print the GraphQL schema (SDL); the repository keeps it as schema.graphql."""
    from app.graphql.schema import schema

    sdl = schema.as_str() + "\n"
    if output is None:
        click.echo(sdl, nl=False)
    else:
        Path(output).write_text(sdl, encoding="utf-8")


@main.command()
def migrate() -> None:
    """Bring the database schema to the newest version (production runs this on deploy)."""

    async def run() -> None:
        settings = Settings()
        db = Database(settings)
        try:
            await upgrade(db.writer, settings)
        finally:
            await db.dispose()

    asyncio.run(run())
    console.print("database is up to date")


@main.group()
def org() -> None:
    """Organizations."""


@org.command("create")
@click.argument("slug")
@click.option("--name", help="Display name (default: the slug).")
@click.option("--grant-usd", default="0", help="Opening credit, in USD (e.g. 25.00).")
@click.option(
    "--rate-card",
    default="standard",
    show_default=True,
    help='The price-book card that bills it ("8bit-ai" counts plan credits).',
)
@click.option(
    "--plan",
    "plan_code",
    default=None,
    help='A plan to put it on (a catalog code: "bytespike-free" grants its trial allowance).',
)
def org_create(
    slug: str, name: str | None, grant_usd: str, rate_card: str, plan_code: str | None
) -> None:
    """Create an organization with its wallet."""
    grant = _usd(grant_usd, "--grant-usd")
    try:
        created = asyncio.run(
            _with_runtime(
                Settings(),
                lambda rt: create_organization(
                    rt, slug=slug, name=name, grant=grant, rate_card=rate_card, plan=plan_code
                ),
            )
        )
    except OrgError as error:
        raise click.ClickException(str(error)) from None
    click.echo(f"created organization {created.slug} (id {created.id})")


@main.command()
@click.option("--org", "slug", required=True, help="Organization slug.")
@click.option("--role", type=click.Choice([str(r) for r in TOKEN_ROLES]), required=True)
@click.option("--subject", default=None, help="The token's sub claim (default: cli-<role>).")
@click.option("--ttl-hours", default=24, show_default=True, type=int)
def token(slug: str, role: str, subject: str | None, ttl_hours: int) -> None:
    """Print a signed JWT (HS256) for an organization and role."""
    settings = Settings()

    async def exists(rt: Runtime) -> bool:
        return await rt.orgs.by_slug(slug) is not None

    if not asyncio.run(_with_runtime(settings, exists)):
        raise click.ClickException(f"no organization {slug!r}")
    click.echo(
        issue_token(
            jwt_secret(settings),  # Runtime.start has checked that one is configured
            org=slug,
            role=Role(role),
            subject=subject or f"cli-{role}",
            ttl=timedelta(hours=ttl_hours),
        )
    )


@main.command()
def verify() -> None:
    """Check every wallet, lot and key counter against the ledger; exit 1 on any mismatch."""

    async def run(rt: Runtime) -> list[str]:
        async with rt.db.reader.connect() as conn:
            return await verify_books(conn, rt.clock.now())

    problems = asyncio.run(_with_runtime(Settings(), run))
    if problems:
        for problem in problems:
            click.echo(f"MISMATCH {problem}")
        click.echo(f"{len(problems)} mismatch(es): the stored state does not match the ledger")
        sys.exit(1)
    click.echo(
        "ok: every balance, lot, hold and key counter, receipt and closed month's "
        "statement matches the ledger"
    )


@main.command()
@click.option("--org", "slug", required=True)
@click.option("--amount-usd", required=True, help="Positive credits, negative debits.")
@click.option("--reason", required=True, help="Why; kept on the ledger entry.")
def adjust(slug: str, amount_usd: str, reason: str) -> None:
    """Post a manual adjustment to an organization's wallet."""
    amount = _usd(amount_usd, "--amount-usd", allow_negative=True)
    if amount == 0:
        raise click.BadParameter("must not be zero", param_hint="--amount-usd")

    async def run(rt: Runtime) -> int:
        found = await rt.orgs.by_slug(slug)
        if found is None:
            raise click.ClickException(f"no organization {slug!r}")
        posted = await adjust_wallet(rt, found.id, amount, reason, actor="cli")
        return posted.balance

    balance = asyncio.run(_with_runtime(Settings(), run))
    click.echo(f"posted; balance is now {balance} credits")


@main.group()
def key() -> None:
    """API keys (dashboards manage them over GraphQL)."""


@key.command("reveal")
@click.option("--org", "slug", required=True)
@click.argument("key_id")
def key_reveal(slug: str, key_id: str) -> None:
    """Print a key's secret again (KEY_ID: its global ID); recorded in the audit log.
    Needs CREDITGRAPH_KEY_ENCRYPTION_KEY, as when the key was made."""
    from app.ids import from_global_id
    from app.keys import service

    unknown = click.ClickException(f"no API key {key_id!r} in {slug}")
    number = from_global_id(key_id, "ApiKey")
    if number is None:
        raise unknown

    async def run(rt: Runtime) -> str | None:
        found = await rt.orgs.by_slug(slug)
        if found is None:
            raise click.ClickException(f"no organization {slug!r}")
        try:
            async with rt.db.write(found.id) as conn:
                return await service.reveal_key(
                    conn,
                    rt.vault,
                    organization_id=found.id,
                    key_id=number,
                    actor="cli",
                    now=rt.clock.now(),
                )
        except service.UnknownKey:
            raise unknown from None

    secret = asyncio.run(_with_runtime(Settings(), run))
    if secret is None:
        raise click.ClickException(
            "the secret is not kept: set CREDITGRAPH_KEY_ENCRYPTION_KEY (as when the key "
            "was made), or rotate the key"
        )
    click.echo(secret)


@main.group()
def jobs() -> None:
    """The periodic jobs (a server runs them every CREDITGRAPH_JOBS_INTERVAL_SECONDS)."""


@jobs.command("run")
def jobs_run() -> None:
    """Run every periodic job now: plan renewals, expiry, stale holds, reconciliation,
    overage. Safe to run beside a server, or twice."""
    from app import maintenance

    swept = asyncio.run(_with_runtime(Settings(), maintenance.run_once))
    if swept is None:
        click.echo("another instance is running the periodic jobs; nothing done")
        return
    for name, count in asdict(swept).items():
        click.echo(f"{name.replace('_', ' ')}: {count}")


@main.group()
def plan() -> None:
    """Plans (the catalog is app/plans/catalog.toml, or CREDITGRAPH_PLAN_CATALOG_PATH)."""


@plan.command("assign")
@click.option("--org", "slug", required=True)
@click.argument("code")
def plan_assign(slug: str, code: str) -> None:
    """Put an organization on a plan, including those priced by contract."""
    from app.plans.service import PlanError

    async def run(rt: Runtime) -> str:
        found = await rt.orgs.by_slug(slug)
        if found is None:
            raise click.ClickException(f"no organization {slug!r}")
        try:
            change = await rt.subscriptions.change(found.id, code, actor="cli", by_operator=True)
        except PlanError as error:
            raise click.ClickException(str(error)) from None
        assert change.effective is not None  # an operator's change waits for no payment
        when = "now" if change.immediate else f"from {change.effective.isoformat()}"
        return f"{slug} is on {change.plan.name} {when}"

    click.echo(asyncio.run(_with_runtime(Settings(), run)))


@main.group()
def promo() -> None:
    """Promo codes: operators make them here; organizations redeem them (redeemPromoCode)."""


def _moment(value: str | None, option: str) -> datetime | None:
    if value is None:
        return None
    try:
        return datetime.fromisoformat(value)
    except ValueError:
        raise click.BadParameter(
            "give an ISO 8601 time with a time zone, such as 2027-01-31T23:59:59Z",
            param_hint=option,
        ) from None


@promo.command("create")
@click.argument("code")
@click.option(
    "--amount-usd",
    required=True,
    help="What each redemption grants, in the unit (plan credits with --unit credit).",
)
@click.option(
    "--unit",
    type=click.Choice(["usd", "credit"]),
    default="usd",
    show_default=True,
    help="The wallets it credits: USD ones, or plan-credit ones (8bit-ai).",
)
@click.option("--credits-expire-days", type=int, help="Its credits expire this many days after.")
@click.option(
    "--max-redemptions", type=int, help="By all organizations together (default: no limit)."
)
@click.option("--per-org", type=int, default=1, show_default=True, help="Per organization.")
@click.option("--expires-at", help="No redemption from then on (ISO 8601, with a time zone).")
def promo_create(
    code: str,
    amount_usd: str,
    unit: str,
    credits_expire_days: int | None,
    max_redemptions: int | None,
    per_org: int,
    expires_at: str | None,
) -> None:
    """Make a promo code (stored upper-case: codes match whatever their case)."""
    terms = PromoTerms(
        _usd(amount_usd, "--amount-usd"),
        unit,
        credits_expire_days,
        max_redemptions,
        per_org,
        _moment(expires_at, "--expires-at"),
    )

    async def run(rt: Runtime) -> str:
        async with rt.db.write(None) as conn:
            return await create_promo(conn, code, terms, actor="cli", now=rt.clock.now())

    try:
        made = asyncio.run(_with_runtime(Settings(), run))
    except PromoCodeError as error:
        raise click.ClickException(str(error)) from None
    click.echo(f"created promo code {made}")


@promo.command("list")
def promo_list() -> None:
    """Every promo code, newest first, with its redemptions so far."""

    async def run(rt: Runtime) -> list[str]:
        async with rt.db.reader.connect() as conn:
            rows = await promo_codes(conn)
        return [describe(row, rt.clock.now()) for row in rows]

    for line in asyncio.run(_with_runtime(Settings(), run)):
        click.echo(line)


@promo.command("end")
@click.argument("code")
def promo_end(code: str) -> None:
    """Stop a code's redemptions now (a leaked code); the credits it granted stay."""

    async def run(rt: Runtime) -> bool:
        async with rt.db.write(None) as conn:
            return await end_promo(conn, code, now=rt.clock.now())

    if not asyncio.run(_with_runtime(Settings(), run)):
        raise click.ClickException(f"no promo code {normalize(code)}")
    click.echo(f"promo code {normalize(code)} can no longer be redeemed")
