"""Settings are read from the environment once, at import: read them in a fresh interpreter."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterable
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def python_run(
    *args: str, unset: Iterable[str], timeout: float = 60, **overrides: str
) -> subprocess.CompletedProcess[str]:
    """Run our interpreter with `args` (`-c` and a probe, manage.py and a command) in the
    repository, with the project's settings, in an environment without the `unset` variables
    (nor a developer's .env) and with `overrides`."""
    hidden = set(unset)
    env = {k: v for k, v in os.environ.items() if k not in hidden}
    env.update({"DJANGO_SETTINGS_MODULE": "config.settings", "ENV_FILE": "", **overrides})
    return subprocess.run(  # noqa: S603 - our own interpreter and script
        [sys.executable, *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def probed(result: subprocess.CompletedProcess[str]) -> dict:
    """What a probe that succeeded printed last, as JSON."""
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout.strip().splitlines()[-1])
