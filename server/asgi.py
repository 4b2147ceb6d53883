"""The app for an ASGI server (granian, uvicorn) from the environment:
`granian --interface asgi server.asgi:app` with REDIS_URL and DATABASE_URL set."""

from __future__ import annotations

import os

from server.app import create_app
from server.settings import Settings

try:
    app = create_app(Settings.from_env(os.environ["REDIS_URL"], os.environ["DATABASE_URL"]))
except KeyError as exc:
    raise SystemExit(
        f"server.asgi: set {exc.args[0]} (make server starts its own stores)"
    ) from None
