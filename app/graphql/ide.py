"""GraphiQL at ``GET /graphql`` from a browser, from files creditgraph serves itself.

GraphiQL, React and ReactDOM are vendored under ``static/`` by ``scripts/vendor-graphiql``
(versions there) and served at ``/graphql/static/``: no CDN, so the page works offline and
in air-gapped deployments. The page names each file with its hash in the query string, so
the files can be cached for a year and a new version is still fetched at once.

Its default query is the dashboards' operations (frontend-examples/operations/
dashboard.graphql, read from the checkout beside the app package; a short Viewer query
where there is none). Opened from a demo sign-in link (``/graphql#signin=<code>``,
app/signin.py) the page exchanges the code and puts the owner's JWT in the headers tab.
"""

from __future__ import annotations

import hashlib
import json
from functools import cache
from pathlib import Path
from string import Template

from starlette.responses import Response
from starlette.staticfiles import StaticFiles
from starlette.types import Scope

from app.console import EXAMPLES
from app.signin import PATH as SIGN_IN_PATH

HERE = Path(__file__).parent
STATIC = HERE / "static"
PREFIX = "/graphql/static"
_ASSETS = {
    "graphiql_css": "graphiql/graphiql.min.css",
    "react": "react/react.production.min.js",
    "react_dom": "react-dom/react-dom.production.min.js",
    "graphiql": "graphiql/graphiql.min.js",
}
_CACHE_CONTROL = "public, max-age=31536000, immutable"
OPERATIONS = EXAMPLES / "operations" / "dashboard.graphql"
_INTRO = """\
# The dashboards' operations: the run button lists them,
# Docs (the book icon) explores the schema. A demo sign-in
# link puts your token under Headers; else put a JWT there
# (creditgraph token --org SLUG --role viewer) or an API
# key's secret.

"""
_FALLBACK = """\
query Viewer {
  viewer {
    id
    role
  }
}
"""


@cache
def graphiql_html() -> str:
    """The page; read and hashed once per process, as the files never change under it."""
    template = Template((HERE / "graphiql.html").read_text(encoding="utf-8"))
    return template.substitute(
        {name: _url(path) for name, path in _ASSETS.items()},
        default_query=_script_string(_INTRO + _operations()),
        sign_in_path=_script_string(SIGN_IN_PATH),
    )


def _operations() -> str:
    try:
        return OPERATIONS.read_text(encoding="utf-8")
    except FileNotFoundError:  # installed without the checkout's frontend-examples/
        return _FALLBACK


def _script_string(text: str) -> str:
    """``text`` as a JavaScript string literal that cannot end the ``<script>`` it is in."""
    return json.dumps(text).replace("</", "<\\/")


def _url(path: str) -> str:
    digest = hashlib.sha256((STATIC / path).read_bytes()).hexdigest()[:16]
    return f"{PREFIX}/{path}?v={digest}"


class Assets(StaticFiles):
    """The vendored files at ``/graphql/static/``, cacheable for a year."""

    def __init__(self) -> None:
        super().__init__(directory=STATIC)

    async def get_response(self, path: str, scope: Scope) -> Response:
        response = await super().get_response(path, scope)
        if response.status_code in (200, 304):
            response.headers["Cache-Control"] = _CACHE_CONTROL
        return response
