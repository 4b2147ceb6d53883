"""`make stop`: stop what `make server` started (its pid files under .run/), nothing else."""

from __future__ import annotations

import os
import signal
import sys
import time
from pathlib import Path

RUN = Path(".run")


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def main() -> int:
    # The stack first (it stops its servers and stores), then servers, then stores.
    order = {"stack.pid": 0, "server.pid": 1}
    pidfiles = sorted(RUN.glob("**/*.pid"), key=lambda p: order.get(p.name, 2))
    if not pidfiles:
        print("authscale stop: nothing to stop (no pid files under .run/)")
        return 0
    for pidfile in pidfiles:
        try:
            pid = int(pidfile.read_text().strip())
        except (OSError, ValueError):
            pidfile.unlink(missing_ok=True)
            continue
        if _alive(pid):
            os.kill(pid, signal.SIGTERM)
            deadline = time.monotonic() + 15
            while _alive(pid) and time.monotonic() < deadline:
                time.sleep(0.1)
            print(f"authscale stop: stopped {pidfile.stem} (pid {pid})")
        pidfile.unlink(missing_ok=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
