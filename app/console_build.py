"""Building an example dashboard from its sources: ``npm ci`` when its packages are not
installed, then ``npm run build`` (GraphQL Code Generator, then Vite; offline from npm's
cache or registry) when its ``dist/`` is missing or older than what it is built from.

The demo builds the console with it (``creditgraph serve --demo``), and the browser tests
both dashboards; one build at a time per dashboard, across processes.
"""

from __future__ import annotations

import fcntl
import hashlib
import shutil
import subprocess
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path

# Only to notice a hang: never a bound on how fast a build should be.
BUILD_WAIT = 900


class BuildError(Exception):
    """The dashboard could not be built: no Node.js, or npm failed (its output's end)."""


def sources(directory: Path) -> Iterator[Path]:
    """What a dashboard's dist/ is built from: its own files and the shared contract."""
    yield from (p for p in (directory / "src").rglob("*") if p.is_file())
    for name in ("index.html", "package.json", "package-lock.json"):
        yield directory / name
    yield from directory.glob("*.config.*")
    yield from directory.glob("tsconfig*.json")
    yield from directory.glob("codegen.*")
    examples = directory.parent  # frontend-examples/, in the repository
    yield examples / "operations" / "dashboard.graphql"
    yield examples.parent / "schema.graphql"


def stale(directory: Path) -> bool:
    """Whether the dashboard's dist/ is missing or older than any of its sources."""
    index = directory / "dist" / "index.html"
    if not index.is_file():
        return True
    built = index.stat().st_mtime
    return any(p.stat().st_mtime > built for p in sources(directory) if p.exists())


def npm() -> str | None:
    """npm's path, when npm and Node.js are both on PATH."""
    found = shutil.which("npm")
    return found if found is not None and shutil.which("node") is not None else None


def build(directory: Path, step: Callable[[str], None] = lambda _: None) -> Path:
    """The dashboard's dist/, installed and built first when needed; ``step(what)`` says
    each step as it begins. BuildError when it cannot be built."""
    if not (directory / "package.json").is_file():
        raise BuildError(f"{directory} has no package.json: the dashboard is missing")
    command = npm()
    if command is None:
        raise BuildError(f"building {directory.name} needs Node.js and npm on PATH")
    digest = hashlib.sha256(str(directory).encode()).hexdigest()[:12]
    lock = Path(tempfile.gettempdir()) / f"creditgraph-build-{digest}.lock"
    with lock.open("w") as held:
        fcntl.flock(held, fcntl.LOCK_EX)
        if not (directory / "node_modules").is_dir():
            step(f"Installing {directory.name}'s packages (npm ci)")
            _npm(command, directory, "ci")
        if stale(directory):
            step(f"Building {directory.name} (npm run build)")
            _npm(command, directory, "run", "build")
    return directory / "dist"


def _npm(command: str, directory: Path, *args: str) -> None:
    try:
        done = subprocess.run(
            [command, *args, "--no-audit", "--no-fund"],
            cwd=directory,
            capture_output=True,
            text=True,
            timeout=BUILD_WAIT,
            check=False,
        )
    except subprocess.TimeoutExpired:
        raise BuildError(
            f"`npm {' '.join(args)}` in {directory} took over {BUILD_WAIT} s"
        ) from None
    if done.returncode != 0:
        output = (done.stdout + done.stderr)[-4000:]
        raise BuildError(f"`npm {' '.join(args)}` failed in {directory}:\n{output}")
