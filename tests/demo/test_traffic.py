"""``creditgraph serve --demo``'s simulated gateway, in a real server process: the test
itself only reads (GraphQL as the demo owner) and never bills anything."""

from __future__ import annotations

import random
import re
import signal
import time
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import Any, TypeVar

import httpx
import pytest
from click.testing import CliRunner

from app.auth import Role, issue_token
from app.cli import main
from app.demo import AGENTS, KEY_NAMES, TRAFFIC, draw
from app.demo_traffic import MOST_BEHIND, next_due
from tests import servers

T = TypeVar("T")
# Only to notice a hang; never a bound on how fast anything is.
WAIT = 60
# What the console must show within (the issue's browser test waits as long).
MOVES_WITHIN = 10

STATE = """
query {
  viewer { organization {
    wallet { balance { credits } }
    usage(first: 100) { totalCount edges { node { status cost { credits } } } }
    billingTransactions(first: 20) { edges { node { kind status } } }
    alertEvents(first: 20) { edges { node { message } } }
  } }
}
"""


@pytest.fixture
def env(database_url: str, tmp_path: Path) -> dict[str, str]:
    return servers.environment(database_url, tmp_path / "state")


def state(url: str) -> dict[str, Any]:
    """The demo organization as its owner's dashboard reads it."""
    token = issue_token(
        servers.JWT_SECRET, org="demo", role=Role.OWNER, subject="t@test", ttl=timedelta(hours=1)
    )
    answer = httpx.post(
        f"{url}/graphql",
        json={"query": STATE},
        headers={"Authorization": f"Bearer {token}"},
        trust_env=False,
    ).json()
    assert "errors" not in answer, answer
    org: dict[str, Any] = answer["data"]["viewer"]["organization"]
    return org


def balance(org: dict[str, Any]) -> int:
    return int(org["wallet"]["balance"]["credits"])


def until(check: Callable[[], T | None], what: str, within: float = WAIT) -> T:
    deadline = time.monotonic() + within
    while True:
        found = check()
        if found:
            return found
        assert time.monotonic() < deadline, f"not within {within} s: {what}"
        time.sleep(0.2)


def printed_keys(log: str) -> dict[str, str]:
    return dict(re.findall(r"API key (\S+)\s+(sk-\S+)", log))


def assert_quiet(log: str, own_gateway_calls: int = 0) -> None:
    """Shut down without an error, and no access line per simulated call."""
    for bad in ("Traceback", "ERROR", "WARNING"):
        assert bad not in log, log
    assert len(re.findall(r'"POST /api/v1/(authorize|usage) HTTP', log)) == own_gateway_calls


def test_the_demo_traffic_moves_balance_usage_alerts_and_auto_reload(
    env: dict[str, str], tmp_path: Path
) -> None:
    instance = servers.start(env, tmp_path / "demo.log", "--demo", "--traffic-rate", "30")
    try:
        before = state(instance.url)
        assert before["usage"]["totalCount"] >= 3600  # the 30 seeded days
        until(
            lambda: (
                (now := state(instance.url))["usage"]["totalCount"] > before["usage"]["totalCount"]
                and balance(now) < balance(before)
            ),
            "the balance and the usage log move",
            MOVES_WITHIN,
        )

        def failed_calls() -> list[dict[str, Any]]:
            nodes = [edge["node"] for edge in state(instance.url)["usage"]["edges"]]
            return [node for node in nodes if node["status"] == "FAILED"]

        # Recorded, and not billed.
        assert all(node["cost"]["credits"] == "0" for node in until(failed_calls, "a failure"))

        # The balance falls under the alert (25 USD), then under auto-reload's 20 USD.
        def reloaded() -> dict[str, Any] | None:
            org = state(instance.url)
            kinds = {
                (e["node"]["kind"], e["node"]["status"])
                for e in org["billingTransactions"]["edges"]
            }
            return org if ("AUTO_RELOAD", "SUCCEEDED") in kinds else None

        org = until(reloaded, "an auto-reload")
        assert "below 25.000000 USD" in org["alertEvents"]["edges"][0]["node"]["message"]
    finally:
        instance.stop()
    log = instance.log.read_text()
    assert log.count("Demo traffic: 30 gateway calls a second") == 1
    assert "Application shutdown complete" in log
    assert '"POST /graphql HTTP/1.1" 200' in log  # only the simulated calls are left out
    assert_quiet(log)
    result = servers.verify(env)
    assert result.returncode == 0, result.stdout
    assert result.stdout.startswith("ok")


def test_no_traffic_leaves_the_demo_still_and_a_rerun_rotates_the_keys(
    env: dict[str, str], tmp_path: Path
) -> None:
    first = servers.start(env, tmp_path / "first.log", "--demo", "--no-traffic")
    try:
        before = state(first.url)
        time.sleep(3)  # six calls at the default rate
        after = state(first.url)
        assert balance(after) == balance(before)
        assert after["usage"]["totalCount"] == before["usage"]["totalCount"]
    finally:
        first.stop()
    first_log = first.log.read_text()
    assert "demo traffic" not in first_log
    assert_quiet(first_log)
    old = printed_keys(first_log)
    assert set(old) == set(KEY_NAMES)

    # Again on the seeded database: the secrets are stored hashed, so the demo rotates
    # the keys to call with them, and prints the new ones.
    second = servers.start(env, tmp_path / "second.log", "--demo")
    try:
        before = state(second.url)
        until(
            lambda: balance(state(second.url)) < balance(before),
            "the default rate moves the balance",
            MOVES_WITHIN,
        )
        refused = httpx.post(
            f"{second.url}/api/v1/authorize",
            json={
                "api_key": old["production"],
                "model": "gpt-5-5",
                "request_id": "old-key",
                "dry_run": True,
            },
            trust_env=False,
        )
        assert refused.status_code == 401
    finally:
        assert second.stop(signal.SIGINT) == 0  # ctrl-C
    second_log = second.log.read_text()
    assert "already existed" in second_log
    assert "Demo traffic: 2 gateway calls a second" in second_log
    new = printed_keys(second_log)
    assert set(new) == set(KEY_NAMES)
    assert not set(new.values()) & set(old.values())
    assert_quiet(second_log, own_gateway_calls=1)  # the refused one
    assert servers.verify(env).returncode == 0


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--no-traffic"], "go with --demo"),
        (["--traffic-rate", "3"], "go with --demo"),
        (["--demo", "--traffic-rate", "0"], "--traffic-rate"),
        (["--demo", "--traffic-rate", "3", "--no-traffic"], "exclude each other"),
    ],
)
def test_traffic_options_are_checked(args: list[str], message: str) -> None:
    # Refused before anything is read or seeded.
    result = CliRunner().invoke(main, ["serve", *args])
    assert result.exit_code == 2
    assert message in result.output


def test_a_stall_resumes_with_at_most_a_second_of_calls_behind() -> None:
    assert next_due(10.0, 0.5, now=10.2) == 10.5  # on schedule
    assert next_due(10.0, 0.5, now=70.0) == 70.0 - MOST_BEHIND + 0.5  # after a minute's stall


def test_the_calls_span_the_demo_keys_models_agents_and_fail_sometimes() -> None:
    rng = random.Random(3)
    calls = [draw(rng) for _ in range(5_000)]
    assert {call.key for call in calls} == set(KEY_NAMES)
    assert {call.model for call in calls} == {model for model, *_ in TRAFFIC}
    assert {call.tags["agent"] for call in calls} == set(AGENTS)
    assert len({call.tags["conversation"] for call in calls}) > len(AGENTS)
    assert all(call.model.startswith("claude") for call in calls if call.key == "claude-agents")
    assert 0.02 < sum(call.failed for call in calls) / len(calls) < 0.04
    for call in calls:  # the gateway holds for at least what the call uses
        prompt, completion = call.most_tokens
        assert call.prompt_tokens <= prompt
        assert call.completion_tokens <= completion
