"""The ``creditgraph`` console script, run as a real process on a temporary database.

SQLite only: these tests read and corrupt the file directly; ``creditgraph migrate`` on
PostgreSQL is tested in tests/test_postgres.py."""

from __future__ import annotations

import asyncio
import os
import sqlite3
import subprocess
import sys
from pathlib import Path

import jwt
import pytest
from cryptography.fernet import Fernet

from app.ids import to_global_id
from app.keys.service import CreatedKey
from app.operations import create_api_key
from app.runtime import Runtime
from app.settings import Settings

SCRIPT = Path(sys.executable).parent / "creditgraph"


class Cli:
    def __init__(self, tmp_path: Path) -> None:
        self.db = tmp_path / "cli.db"
        self.state = tmp_path / "state"
        self.env = {
            key: value for key, value in os.environ.items() if not key.startswith("CREDITGRAPH_")
        }
        self.env |= {
            "CREDITGRAPH_DATABASE_URL": f"sqlite+aiosqlite:///{self.db}",
            "CREDITGRAPH_STATE_DIR": str(self.state),
        }

    def __call__(
        self, *args: str, env: dict[str, str] | None = None
    ) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [str(SCRIPT), *args],
            env=self.env | (env or {}),
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )

    def ok(self, *args: str) -> str:
        result = self(*args)
        assert result.returncode == 0, result.stdout + result.stderr
        assert "Traceback" not in result.stderr
        return result.stdout

    def fails(self, *args: str, env: dict[str, str] | None = None) -> str:
        result = self(*args, env=env)
        assert result.returncode != 0, result.stdout
        output = result.stdout + result.stderr
        assert "Traceback" not in output, output
        return output

    def sql(self, statement: str) -> None:
        with sqlite3.connect(self.db) as conn:
            assert conn.execute(statement).rowcount == 1
        conn.close()


@pytest.fixture
def cli(tmp_path: Path) -> Cli:
    assert SCRIPT.exists()
    return Cli(tmp_path)


@pytest.fixture
def acme(cli: Cli) -> Cli:
    out = cli.ok("org", "create", "acme", "--grant-usd", "12.50")
    assert "created organization acme" in out
    return cli


def test_token_is_a_signed_jwt_for_the_org_and_role(acme: Cli) -> None:
    token = acme.ok("token", "--org", "acme", "--role", "owner").strip()
    assert token.count(".") == 2
    assert all(token.split("."))
    secret = (acme.state / "jwt-secret").read_text().strip()
    claims = jwt.decode(token, secret, algorithms=["HS256"])
    assert claims["org"] == "acme"
    assert claims["role"] == "owner"
    assert claims["sub"] == "cli-owner"
    assert claims["exp"] - claims["iat"] == 24 * 3600
    with pytest.raises(jwt.InvalidSignatureError):
        jwt.decode(token, "another-secret-long-enough-for-hs256-use", algorithms=["HS256"])
    # The development secret is kept: a second token verifies with the same one.
    again = acme.ok("token", "--org", "acme", "--role", "service", "--subject", "gw").strip()
    assert jwt.decode(again, secret, algorithms=["HS256"])["sub"] == "gw"


def test_token_refuses_unknown_org_and_role(acme: Cli) -> None:
    assert "no organization 'nope'" in acme.fails("token", "--org", "nope", "--role", "owner")
    assert "--role" in acme.fails("token", "--org", "acme", "--role", "api_key")


def test_token_in_production_needs_a_configured_secret(acme: Cli) -> None:
    output = acme.fails(
        "token", "--org", "acme", "--role", "owner", env={"CREDITGRAPH_ENVIRONMENT": "production"}
    )
    assert "CREDITGRAPH_JWT_SECRET" in output
    assert "Traceback" not in output


@pytest.mark.parametrize("slug", ["Acme", "has space", "acme_1", "ümlaut", ""])
def test_org_create_refuses_bad_slugs(cli: Cli, slug: str) -> None:
    output = cli.fails("org", "create", slug)
    assert "slug" in output


def test_org_create_refuses_duplicates_and_bad_grants(acme: Cli) -> None:
    assert "exists" in acme.fails("org", "create", "acme")
    output = acme.fails("org", "create", "beta", "--grant-usd", "1.0000001")
    assert "more than 6 decimal places" in output
    for grant in ("-5", "abc", "1e3"):
        assert "Invalid value" in acme.fails("org", "create", "beta", "--grant-usd", grant)
    # None of the refused commands created anything.
    assert "no organization 'beta'" in acme.fails("token", "--org", "beta", "--role", "owner")
    with sqlite3.connect(acme.db) as conn:
        assert conn.execute("SELECT count(*) FROM organizations").fetchone() == (1,)
        assert conn.execute("SELECT balance FROM wallets").fetchone() == (12_500_000,)
    conn.close()


def test_adjust_then_verify(acme: Cli) -> None:
    out = acme.ok("adjust", "--org", "acme", "--amount-usd", "-2.5", "--reason", "test")
    assert "10000000 credits" in out
    assert acme.ok("verify").startswith("ok")
    assert "no organization 'nope'" in acme.fails(
        "adjust", "--org", "nope", "--amount-usd", "1", "--reason", "x"
    )
    for amount in ("0", "0.0000001", "1e2"):
        acme.fails("adjust", "--org", "acme", "--amount-usd", amount, "--reason", "x")
    with sqlite3.connect(acme.db) as conn:
        assert conn.execute("SELECT balance FROM wallets").fetchone() == (10_000_000,)
    conn.close()


def test_verify_reports_a_corrupted_balance(acme: Cli) -> None:
    acme.ok("adjust", "--org", "acme", "--amount-usd", "-2.5", "--reason", "test")
    acme.sql("UPDATE wallets SET balance = balance + 1")
    result = acme("verify")
    assert result.returncode == 1, result.stdout + result.stderr
    assert "MISMATCH" in result.stdout
    assert "balance 10.000001 USD, the ledger sums to 10.000000 USD" in result.stdout
    assert "Traceback" not in result.stderr


def test_verify_reports_a_corrupted_lot(acme: Cli) -> None:
    acme.sql("UPDATE credit_lots SET remaining = remaining - 7")
    result = acme("verify")
    assert result.returncode == 1, result.stdout + result.stderr
    mismatches = [line for line in result.stdout.splitlines() if line.startswith("MISMATCH")]
    assert any("lot" in line and "12499993 left" in line for line in mismatches), result.stdout
    assert "Traceback" not in result.stderr


def test_serve_refuses_a_partial_sso_configuration_before_starting(cli: Cli) -> None:
    output = cli.fails("serve", env={"CREDITGRAPH_OIDC_ISSUER": "https://sso.example"})
    assert "CREDITGRAPH_OIDC_AUDIENCE" in output


def test_schema_prints_the_exported_schema(cli: Cli) -> None:
    exported = (Path(__file__).resolve().parents[1] / "schema.graphql").read_text()
    assert cli.ok("schema") == exported


def test_plans_are_assigned_and_renewed_from_the_command_line(cli: Cli) -> None:
    cli.ok("org", "create", "agents", "--rate-card", "8bit-ai")
    assert "no rate card" in cli.fails("org", "create", "other", "--rate-card", "gold")
    assert "priced by contract" not in cli.ok("plan", "assign", "--org", "agents", "8bit-pro")
    assert "counts usd credits" in cli.fails("plan", "assign", "--org", "agents", "bytez-free")
    assert "no plan 'gold'" in cli.fails("plan", "assign", "--org", "agents", "gold")
    # The period has not ended: nothing to renew, and the books balance.
    assert "periods started: 0" in cli.ok("jobs", "run")
    # As if the server had been down since the period ended.
    cli.sql(
        "UPDATE plan_subscriptions SET current_period_start = '1999-12-01 00:00:00', "
        "current_period_end = '2000-01-01 00:00:00'"
    )
    assert "periods started: 1" in cli.ok("jobs", "run")
    assert "ok:" in cli.ok("verify")


def test_a_new_organization_on_free_gets_its_trial_allowance(cli: Cli) -> None:
    out = cli.ok("org", "create", "newco", "--plan", "bytespike-free")
    assert "created organization newco" in out
    assert "ok:" in cli.ok("verify")
    # A plan it cannot be on is refused before anything is created.
    assert "no plan 'gold'" in cli.fails("org", "create", "other", "--plan", "gold")
    assert "counts usd credits" in cli.fails(
        "org", "create", "other", "--rate-card", "8bit-ai", "--plan", "bytespike-free"
    )
    # Assigned again, Free grants nothing more: the trial is once per organization.
    cli.ok("plan", "assign", "--org", "newco", "bytespike-pro")
    cli.ok("plan", "assign", "--org", "newco", "bytespike-free")
    assert "ok:" in cli.ok("verify")
    with sqlite3.connect(cli.db) as conn:
        assert conn.execute("SELECT slug FROM organizations").fetchall() == [("newco",)]
        assert conn.execute("SELECT kind, amount, memo FROM ledger_entries").fetchall() == [
            ("trial", 1_000_000, "ByteSpike Free: trial allowance for a new organization")
        ]
        assert conn.execute("SELECT balance FROM wallets").fetchone() == (1_000_000,)
    conn.close()


def test_key_reveal_prints_the_secret_again_only_with_the_encryption_key(acme: Cli) -> None:
    fernet = Fernet.generate_key().decode()
    acme.env["CREDITGRAPH_KEY_ENCRYPTION_KEY"] = fernet

    async def made() -> CreatedKey:
        settings = Settings(database_url=acme.env["CREDITGRAPH_DATABASE_URL"], run_jobs=False)
        rt = await Runtime.start(settings.model_copy(update={"key_encryption_key": fernet}))
        try:
            org = await rt.orgs.by_slug("acme")
            assert org is not None
            return await create_api_key(rt, org.id, "ci")
        finally:
            await rt.stop()

    created = asyncio.run(made())
    key_id = to_global_id("ApiKey", created.id)
    assert acme.ok("key", "reveal", "--org", "acme", key_id).strip() == created.secret
    assert "no API key" in acme.fails("key", "reveal", "--org", "acme", "nonsense")
    assert "no organization" in acme.fails("key", "reveal", "--org", "other", key_id)
    unkept = acme.fails(
        "key", "reveal", "--org", "acme", key_id, env={"CREDITGRAPH_KEY_ENCRYPTION_KEY": ""}
    )
    assert "CREDITGRAPH_KEY_ENCRYPTION_KEY" in unkept
