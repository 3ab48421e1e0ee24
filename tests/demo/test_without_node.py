"""Without Node.js the demo still serves the API, and its printout's last line says how to
get the console."""

from __future__ import annotations

import shutil
from pathlib import Path

import httpx

from app.console import EXAMPLES
from tests import servers


def test_without_node_the_demo_serves_the_api_and_says_how_to_get_the_console(
    tmp_path: Path,
) -> None:
    # A console whose build is missing beside its sources, and a PATH with no npm or node.
    sources = tmp_path / "react-dashboard"
    sources.mkdir()
    shutil.copy(EXAMPLES / "react-dashboard" / "package.json", sources)
    no_node = tmp_path / "bin"
    no_node.mkdir()
    env = servers.environment(
        f"sqlite+aiosqlite:///{tmp_path / 'demo.db'}",
        tmp_path / "state",
        CREDITGRAPH_CONSOLE_DIR=str(sources / "dist"),
        PATH=str(no_node),
    )
    instance = servers.start(env, tmp_path / "demo.log", "--demo", "--no-traffic")
    try:
        printed = servers.printout(instance.log)
        assert printed[-1].startswith("Console: not built yet: install Node.js and npm"), printed
        assert f"`npm ci && npm run build` in {sources}" in printed[-1]
        assert not (sources / "node_modules").exists()  # nothing was attempted

        # The API answers: an authorization with a key the demo printed.
        (key,) = [line.split()[3] for line in printed if line.startswith("  API key production")]
        answer = httpx.post(
            f"{instance.url}/api/v1/authorize",
            json={"api_key": key, "model": "claude-sonnet-4-6", "request_id": "r1"},
            trust_env=False,
        )
        assert answer.status_code == 200, answer.text
        page = httpx.get(f"{instance.url}/console/", trust_env=False)
        assert page.status_code == 404
        assert "install Node.js and npm" in page.text
    finally:
        instance.stop()
