"""The billing console at ``/console/``: the React example dashboard's build, served from
the API's own origin (so no CORS setting is needed), with ``/`` pointing there.

Any path under ``/console/`` that is not a file of the build and does not look like one
answers the app's page (a client-side route). The page is given a ``<base>`` so its
relative asset paths resolve from any such path, and a ``creditgraph-graphql`` meta tag
naming this origin's ``/graphql``, which the dashboard takes as its default API URL.
Until the build exists a short page says how to make it; the directory is looked at on
each request, so a build made while the server runs is served at the next reload.
"""

from __future__ import annotations

import html
import re
from pathlib import Path, PurePosixPath

from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response
from starlette.staticfiles import StaticFiles
from starlette.types import Scope

from app import console_build
from app.settings import Settings

EXAMPLES = Path(__file__).resolve().parents[1] / "frontend-examples"
PREFIX = "/console"
_HEAD = re.compile(rb"<head[^>]*>", re.IGNORECASE)
_INJECTED = (
    f'<base href="{PREFIX}/" /><meta name="creditgraph-graphql" content="/graphql" />'.encode()
)
# Vite names its assets by their content's hash: a changed file has a new name.
_IMMUTABLE = "public, max-age=31536000, immutable"


def directory(settings: Settings) -> Path:
    return settings.console_dir or EXAMPLES / "react-dashboard" / "dist"


def buildable(settings: Settings) -> Path | None:
    """The dashboard's source folder, when the console's directory is its dist/ (the
    repository's, by default): what ``app.console_build`` can build."""
    sources = directory(settings).parent
    return sources if (sources / "package.json").is_file() else None


def missing_build(settings: Settings) -> str | None:
    """How to build the console, when its directory holds no build; else None."""
    dist = directory(settings)
    if (dist / "index.html").is_file():
        return None
    if buildable(settings) is not None:
        how = f"run `npm ci && npm run build` in {dist.parent}"
        if console_build.npm() is None:
            how = (
                "install Node.js and npm, then run ./scripts/demo again (it builds the "
                f"console), or {how}"
            )
    else:
        how = (
            f"CREDITGRAPH_CONSOLE_DIR ({dist}) holds no index.html: put a build of "
            "frontend-examples/react-dashboard there (`npm ci && npm run build`)"
        )
    return f"not built yet: {how}, then reload the console"


async def to_console(_request: Request) -> Response:
    return RedirectResponse(f"{PREFIX}/", status_code=302)


class Console(StaticFiles):
    """The build's files at ``/console/``, its page for anything else."""

    def __init__(self, settings: Settings) -> None:
        self._settings = settings
        super().__init__(directory=directory(settings), check_dir=False)

    async def check_config(self) -> None:
        if missing_build(self._settings) is None:  # else the page saying how to build it
            await super().check_config()

    async def get_response(self, path: str, scope: Scope) -> Response:
        missing = missing_build(self._settings)
        if missing is not None:
            return HTMLResponse(_not_built_page(missing), status_code=404)
        if path in (".", "index.html"):
            return self._page()
        try:
            response = await super().get_response(path, scope)
        except HTTPException as error:
            if error.status_code != 404 or "." in PurePosixPath(path).name:
                raise  # a missing asset is a 404, not the page in its place
            return self._page()
        if path.startswith("assets/") and response.status_code in (200, 304):
            response.headers["Cache-Control"] = _IMMUTABLE
        return response

    def _page(self) -> Response:
        page = (directory(self._settings) / "index.html").read_bytes()
        head = _HEAD.search(page)
        at = head.end() if head else 0
        page = page[:at] + _INJECTED + page[at:]
        return HTMLResponse(page, headers={"Cache-Control": "no-cache"})


def _not_built_page(missing: str) -> str:
    # The message's `commands` as <code>.
    text = re.sub(r"`([^`]*)`", r"<code>\1</code>", html.escape(missing, quote=False))
    return (
        '<!doctype html><html lang="en"><head><meta charset="utf-8" />'
        "<title>creditgraph console: not built</title></head><body>"
        f"<h1>creditgraph billing console</h1><p>The console is {text}.</p>"
        '<p>The API is up meanwhile: GraphiQL is at <a href="/graphql">/graphql</a>.</p>'
        "</body></html>"
    )
