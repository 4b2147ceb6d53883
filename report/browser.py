"""Render a report in headless Chromium (Debian's `chromium`), with the network off."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path


def ensure_chromium() -> str:
    """The chromium binary, installed with apt-get when it is missing."""
    found = shutil.which("chromium")
    if found:
        return found
    sudo = [] if os.geteuid() == 0 else ["sudo"]
    install = [*sudo, "apt-get", "install", "-y", "chromium"]
    if subprocess.run(install, capture_output=True).returncode != 0:
        subprocess.run([*sudo, "apt-get", "update"], capture_output=True)
        subprocess.run(install, capture_output=True, check=True)
    found = shutil.which("chromium")
    if not found:
        raise RuntimeError("chromium could not be installed (apt-get install chromium)")
    return found


def rendered_dom(page: Path, timeout: float = 120) -> str:
    """The DOM after the page's scripts ran, every network request refused."""
    done = subprocess.run(
        [
            ensure_chromium(), "--headless", "--no-sandbox", "--disable-gpu",
            "--proxy-server=127.0.0.1:9", "--host-resolver-rules=MAP * ~NOTFOUND",
            "--virtual-time-budget=15000", "--dump-dom", page.resolve().as_uri(),
        ],
        capture_output=True, text=True, timeout=timeout, check=True,
    )  # fmt: skip
    return done.stdout
