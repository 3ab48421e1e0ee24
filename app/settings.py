"""Settings, read from ``CREDITGRAPH_*`` environment variables."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict


class Settings(BaseSettings):
    """Every knob of a creditgraph process; defaults give the embedded SQLite setup."""

    model_config = SettingsConfigDict(env_prefix="CREDITGRAPH_", frozen=True)

    environment: Literal["development", "production"] = "development"
    database_url: str = "sqlite+aiosqlite:///./creditgraph.db"
    # Where a development JWT secret is kept when none is configured.
    state_dir: Path = Path(".creditgraph")
    jwt_secret: str | None = None
    # A Fernet key: webhook signing secrets are sealed with it (required in production; in
    # development one is generated into the state dir for them), and when it is set API
    # key secrets are also kept encrypted so owners can reveal them.
    key_encryption_key: str | None = None
    # How new API key secrets start ("sk-byts" for ByteSpike's "sk-byts-..."); "sk-" first
    # because that is how a key is told from a JWT. Listings show it with the key's id.
    api_key_prefix: str = Field(default="sk", pattern=r"^sk(-[a-z0-9]+)*$", max_length=20)
    price_book_path: Path | None = None
    # The top-up bonus ladder and limits; None = the packaged ByteSpike ladder.
    bonus_ladder_path: Path | None = None
    # The plan catalog; None = the packaged one with the three seeded platforms' plans.
    plan_catalog_path: Path | None = None
    # An OIDC provider whose RS256/ES256 JWTs are accepted besides our HS256 ones
    # (app/oidc.py): its issuer, the audience its tokens must name, and its JWKS from a
    # URL or a file (one of the two). Its claims naming the org slug and the role differ
    # between providers, hence configurable.
    oidc_issuer: str | None = None
    oidc_audience: str | None = None
    oidc_jwks_url: str | None = None
    oidc_jwks_file: Path | None = None
    oidc_org_claim: str = "org"
    oidc_role_claim: str = "role"

    # Payments (app/payments). The provider is Stripe when its secret key is set; "fake"
    # settles at once and exists for development only (refused in production and beside
    # Stripe keys); unset without Stripe keys means payments are off.
    payment_provider: Literal["stripe", "fake"] | None = None
    stripe_secret_key: str | None = None
    stripe_webhook_secret: str | None = None
    # Where the Stripe library sends API calls (a proxy or a stand-in); None = Stripe's.
    stripe_api_base: str | None = None
    # Webhooks signed longer ago than this are refused, against replays.
    stripe_webhook_tolerance_seconds: int = Field(default=300, gt=0)
    # "elements": createTopUp returns a PaymentIntent's clientSecret for Stripe Elements;
    # "checkout": it returns the URL of a hosted Stripe Checkout page, which sends the
    # payer back to these two pages ("{top_up_id}" in them is replaced).
    top_up_flow: Literal["elements", "checkout"] = "elements"
    checkout_success_url: str = "http://localhost:8000/graphql?top_up={top_up_id}"
    checkout_cancel_url: str = "http://localhost:8000/graphql?top_up={top_up_id}"
    # Where Stripe Checkout sends a payer subscribing to a paid plan ("{plan_code}" in
    # them is replaced).
    plan_checkout_success_url: str = "http://localhost:8000/graphql?plan={plan_code}"
    plan_checkout_cancel_url: str = "http://localhost:8000/graphql?plan={plan_code}"
    # A payment still pending this long after it started is checked with the provider,
    # in case its webhook was lost.
    reconcile_after_seconds: int = Field(default=300, gt=0)

    # Unsettled holds are released after this long.
    hold_ttl_seconds: int = Field(default=600, gt=0)
    usage_batch_max: int = Field(default=1000, gt=0)
    # The most operations one group-commit transaction takes.
    writer_batch_max: int = Field(default=2000, gt=0)
    max_body_bytes: int = Field(default=2 * 1024 * 1024, gt=0)
    # Requests per second each caller (token, API key or address) may send to /graphql,
    # and the burst allowed above that rate.
    graphql_rate_per_second: float = Field(default=100.0, gt=0)
    graphql_burst: int = Field(default=500, gt=0)
    # What one GraphQL operation may ask for, refused before it runs (app/graphql/limits.py):
    # its cost, the most field values its answer can hold (every dashboard operation at
    # first: 100 costs at most 64,008);
    graphql_max_cost: int = Field(default=100_000, gt=0)
    # its variables: values in all (list items and object fields) and levels of nesting.
    graphql_max_input_values: int = Field(default=1000, gt=0)
    graphql_max_input_depth: int = Field(default=10, gt=0)
    # How long a query over HTTP may run before it is stopped (mutations run to the end).
    graphql_timeout_seconds: float = Field(default=15.0, gt=0)
    # WebSockets at /graphql open at once per caller (per process), and operations each.
    graphql_ws_connections_per_caller: int = Field(default=20, gt=0)
    graphql_ws_subscriptions_per_connection: int = Field(default=20, gt=0)
    # Answers to repeated dashboard queries are kept until a write to the organization
    # commits, and this long at most (app/graphql/response_cache.py); 0 keeps none.
    graphql_cache_seconds: float = Field(default=5.0, ge=0)
    graphql_cache_bytes: int = Field(default=64 * 1024 * 1024, gt=0)  # the answers' bodies
    # How often an API key holding a subscription open is re-checked against its row.
    subscription_recheck_seconds: float = Field(default=30.0, ge=0)
    # How often the embedded process runs its periodic jobs (expiry, stale holds).
    jobs_interval_seconds: float = Field(default=30.0, gt=0)
    run_jobs: bool = True
    # Raw usage records billed more than this many days ago (counted from the start of
    # that UTC day) are deleted by the periodic jobs; the hourly and daily rollups and the
    # ledger stay, so summaries and `verify` still cover them. None: keep every record.
    usage_retention_days: int | None = Field(default=None, gt=0)

    # Every webhook, alert rules' and event endpoints' (app/webhooks; the names are from
    # when only alerts had them): loopback and private addresses are refused unless
    # allowed (link-local and metadata addresses always are); failed deliveries are
    # retried after backoff * 2^(attempt - 1) seconds, up to max attempts in all.
    alert_webhook_allow_private: bool = False
    alert_webhook_max_attempts: int = Field(default=6, gt=0)
    alert_webhook_backoff_seconds: float = Field(default=30.0, ge=0)
    alert_webhook_timeout_seconds: float = Field(default=10.0, gt=0)

    # Browser origins allowed to call the API (app/cors.py), comma-separated:
    # "https://console.example.com,http://localhost:5173"; "*" allows any; empty: none
    # but the server's own.
    cors_origins: Annotated[tuple[str, ...], NoDecode] = ()

    @field_validator("cors_origins", mode="before")
    @classmethod
    def _comma_separated(cls, value: object) -> object:
        if isinstance(value, str):
            return tuple(origin.strip() for origin in value.split(",") if origin.strip())
        return value

    # The billing console (the React example dashboard's build) at /console/, with /
    # pointing there, on the API's own origin: on in `serve --demo`, off otherwise, since
    # production operators host their own. Its directory: None is the repository's
    # frontend-examples/react-dashboard/dist, beside the app package.
    console: bool = False
    console_dir: Path | None = None

    # Several instances (docs/deployment.md): with a Redis URL the event bus is Redis
    # pub/sub, so a subscriber on one instance sees commits made through another; the
    # prefix starts every channel name (one channel per organization).
    redis_url: str | None = None
    redis_channel_prefix: str = "creditgraph:"
    # "json": one JSON object per log line (for log collectors); "text": uvicorn's format.
    log_format: Literal["text", "json"] = "text"

    # Plain properties: a cached value would survive ``model_copy(update=...)``.
    @property
    def is_sqlite(self) -> bool:
        return self.database_url.startswith("sqlite")

    @property
    def is_production(self) -> bool:
        return self.environment == "production"
