"""`make server`: the provider on 127.0.0.1:$PORT (8000), with its own Redis and PostgreSQL
when REDIS_URL / DATABASE_URL are not set. `make stop` stops it (see `server.stop`)."""

from __future__ import annotations

import os
import signal
import sys
from pathlib import Path

import uvicorn

from server.app import create_app
from server.infra import InfraError, PostgresServer, RedisServer
from server.settings import Settings

RUN_DIR = Path(os.environ.get("AUTHSCALE_RUN_DIR", ".run/server"))


def main() -> int:
    started: list[RedisServer | PostgresServer] = []
    try:
        settings = Settings.from_env("", "")
        port = int(os.environ.get("PORT", "8000"))
        RUN_DIR.mkdir(parents=True, exist_ok=True)
        urls = {}
        for name, kind in (("REDIS_URL", RedisServer), ("DATABASE_URL", PostgresServer)):
            urls[name] = os.environ.get(name, "")
            if not urls[name]:
                store = kind(RUN_DIR / kind.__name__.lower()).start()
                started.append(store)
                urls[name] = store.url
                print(f"authscale server: {name} unset, started {store.url}", file=sys.stderr)
        redis_url, database_url = urls["REDIS_URL"], urls["DATABASE_URL"]
        settings = Settings.from_env(redis_url, database_url)
        (RUN_DIR / "server.pid").write_text(str(os.getpid()))
        print(
            f"authscale server: region {settings.region}, issuer {settings.issuer}; "
            "demo client demo-spa, user alice@example.com; Ctrl-C or make stop to stop",
            file=sys.stderr,
        )
        # uvicorn shuts down gracefully on SIGTERM, then re-raises it: turn that into an
        # exit, so the servers started above are stopped by the `finally` below.
        signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
        uvicorn.run(
            create_app(settings),
            host="127.0.0.1",
            port=port,
            log_level="warning",
            timeout_keep_alive=settings.keep_alive_s,
        )
        return 0
    except (InfraError, ValueError) as exc:
        print(f"authscale server: error: {exc}", file=sys.stderr)
        return 2
    finally:
        for server in reversed(started):
            server.stop()
        (RUN_DIR / "server.pid").unlink(missing_ok=True)


if __name__ == "__main__":
    sys.exit(main())
