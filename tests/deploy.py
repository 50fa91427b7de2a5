"""The deployment files (deploy/) as tests read them: the Procfile's processes and the systemd
units' settings."""

from __future__ import annotations

import configparser
import shlex
from pathlib import Path

from tests.workers import BASE_DIR

DEPLOY = BASE_DIR / "deploy"
PROCFILE = DEPLOY / "Procfile"
UNITS = DEPLOY / "systemd"
# Where the units expect the checkout and its virtualenv on a node.
INSTALLED = "/opt/leadswitch"


def procfile() -> dict[str, str]:
    """Process type -> its command line (a shell line, as Procfile runners run it)."""
    entries: dict[str, str] = {}
    for line in PROCFILE.read_text().splitlines():
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        name, _, command = line.partition(":")
        assert name not in entries, f"{name} is in the Procfile twice"
        entries[name.strip()] = command.strip()
    return entries


def unit(name: str) -> configparser.ConfigParser:
    parser = configparser.ConfigParser(interpolation=None, strict=True)
    parser.optionxform = str  # systemd's keys are case-sensitive
    parser.read(UNITS / name)
    return parser


def exec_start(name: str) -> list[str]:
    """A unit's ExecStart as arguments, its program mapped from /opt/leadswitch to this checkout."""
    words = shlex.split(unit(name)["Service"]["ExecStart"])
    return [str(BASE_DIR / words[0].removeprefix(f"{INSTALLED}/")), *words[1:]]


def unit_names() -> list[str]:
    return sorted(path.name for path in UNITS.iterdir())


def checkout_path(program: str) -> Path:
    return BASE_DIR / ".venv" / "bin" / program
