"""Load tests keep their stack's files (Redis folders, logs, pid files) out of the checkout."""

from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture(autouse=True)
def run_dir_outside_the_checkout(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AUTHSCALE_RUN_DIR", str(tmp_path / "run"))
