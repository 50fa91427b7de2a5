"""The deployment files name real programs, modules and options, and their stop timeouts cover
the processes' graceful ones (README "Production layout")."""

from __future__ import annotations

import importlib
import os
import shlex
import shutil
import subprocess
import sys
from functools import partial

import pytest
from celery.bin.celery import celery as celery_main
from django.conf import settings
from django.core.management import ManagementUtility
from gunicorn.app.wsgiapp import WSGIApplication

import config.gunicorn
from tests.deploy import INSTALLED, UNITS, exec_start, procfile, unit, unit_names
from tests.workers import BASE_DIR

VENV_BIN = str(BASE_DIR / ".venv" / "bin")
# The settings' environment as a node has it (EnvironmentFile), minimal and without a .env.
NODE_ENV = {
    "PATH": f"{VENV_BIN}:{os.environ['PATH']}",
    "ENV_FILE": "",
    "SECRET_KEY": "deploy-files-test-" + "x" * 40,
    "PYTHONPATH": str(BASE_DIR),
}
SYSTEMD_ANALYZE = shutil.which("systemd-analyze")
SERVICES = {
    "web": "leadswitch-web.service",
    "worker": "leadswitch-worker@.service",
    "beat": "leadswitch-beat.service",
}


def shell_words(command: str) -> list[str]:
    """The arguments a shell makes of a command line (variables expanded), as a runner runs it."""
    expanded = subprocess.run(  # noqa: S603 - our own command line
        ["/bin/sh", "-c", f"set -- {command}; printf '%s\\0' \"$@\""],
        env=NODE_ENV,
        capture_output=True,
        check=True,
    )
    return expanded.stdout.decode().split("\0")[:-1]


def check_options(words: list[str], monkeypatch) -> None:
    """Have the program parse its command line, stopping before it runs: gunicorn loads its
    config file and settings, Celery and Django parse every option before printing help."""
    program, *args = words
    if program == "gunicorn":
        monkeypatch.setattr(sys, "argv", words)
        loaded = WSGIApplication("%(prog)s [OPTIONS] [APP_MODULE]")
        assert loaded.cfg.post_worker_init.__module__ == "config.gunicorn"
        importlib.import_module(loaded.app_uri)
        return
    if program == "celery":
        run = partial(celery_main.main, args=[*args, "--help"], prog_name="celery")
    else:
        assert args[0] == "manage.py"
        run = ManagementUtility(["manage.py", *args[1:], "--help"]).execute
    with pytest.raises(SystemExit) as stopped:
        run()
    assert stopped.value.code in (0, None), words


def test_the_procfile_runs_one_beat_beside_web_workers_and_a_release_step():
    entries = procfile()
    assert set(entries) == {"release", "web", "worker", "beat"}
    assert shlex.split(entries["web"])[:4] == [
        "gunicorn",
        "-c",
        "python:config.gunicorn",
        "config.wsgi",
    ]
    # One beat: no worker embeds one (-B), or every scaled worker would send the periodic tasks.
    assert not {"-B", "--beat"} & set(shlex.split(entries["worker"]))
    assert shlex.split(entries["beat"])[3] == "beat"


def test_each_procfile_command_is_a_real_program_taking_its_options(monkeypatch, capsys):
    for name, command in procfile().items():
        words = shell_words(command)
        assert shutil.which(words[0], path=NODE_ENV["PATH"]), f"{name}: no program {words[0]}"
        check_options(words, monkeypatch)
    assert "--schedule" in capsys.readouterr().out  # the last one printed beat's help


def test_the_units_run_the_procfile_commands_from_the_installed_virtualenv():
    entries = procfile()
    for name, unit_name in SERVICES.items():
        words = shlex.split(unit(unit_name)["Service"]["ExecStart"])
        assert words[0] == f"{INSTALLED}/.venv/bin/{shlex.split(entries[name])[0]}"
        assert unit(unit_name)["Service"]["WorkingDirectory"] == INSTALLED
    web, worker = (shlex.split(entries[name])[1:] for name in ("web", "worker"))
    assert shlex.split(unit(SERVICES["web"])["Service"]["ExecStart"])[1:] == web
    # The unit names each worker of a node apart (-n worker1@host, worker2@host).
    assert shlex.split(unit(SERVICES["worker"])["Service"]["ExecStart"])[1:] == [
        *worker,
        "-n",
        "worker%i@%H",
    ]


def test_each_unit_stops_its_process_gracefully_within_a_bound_that_covers_it(monkeypatch):
    for unit_name in SERVICES.values():
        service = unit(unit_name)["Service"]
        assert service["KillSignal"] == "SIGTERM", unit_name
        assert service["Restart"] == "always", unit_name
        assert service["EnvironmentFile"] == "/etc/leadswitch/leadswitch.env", unit_name
    web, worker = unit(SERVICES["web"])["Service"], unit(SERVICES["worker"])["Service"]
    # SIGTERM to the main process only: gunicorn and Celery stop their children themselves; a
    # timeout's SIGKILL reaches them all.
    assert web["KillMode"] == worker["KillMode"] == "mixed"
    # gunicorn's graceful timeout (drain + 30 s for requests in flight) with the longest drain
    # the unit's comment allows; a worker's warm shutdown, bounded by the task's hard limit.
    monkeypatch.setenv("WEB_DRAIN_SECONDS", "25")
    try:
        assert int(web["TimeoutStopSec"]) > importlib.reload(config.gunicorn).graceful_timeout
    finally:
        monkeypatch.delenv("WEB_DRAIN_SECONDS")
        importlib.reload(config.gunicorn)
    assert int(worker["TimeoutStopSec"]) > settings.CELERY_TASK_TIME_LIMIT


def test_a_worker_drains_for_the_seconds_it_is_given_and_refuses_a_bad_value(monkeypatch):
    try:
        monkeypatch.setenv("WEB_DRAIN_SECONDS", "2.5")
        module = importlib.reload(config.gunicorn)
        assert (module.DRAIN_S, module.graceful_timeout) == (2.5, 32)
        monkeypatch.setenv("WEB_DRAIN_SECONDS", "soon")
        with pytest.raises(SystemExit, match="WEB_DRAIN_SECONDS must be a number"):
            importlib.reload(config.gunicorn)
    finally:
        monkeypatch.delenv("WEB_DRAIN_SECONDS")
        importlib.reload(config.gunicorn)
    assert config.gunicorn.graceful_timeout == 30


@pytest.mark.skipif(SYSTEMD_ANALYZE is None, reason="needs systemd-analyze")
def test_the_units_pass_systemd_analyze_verify_with_this_checkout_installed(tmp_path):
    for name in unit_names():
        text = (UNITS / name).read_text().replace(INSTALLED, str(BASE_DIR))
        # A template is verified as one of its instances.
        (tmp_path / name.replace("@.", "@1.")).write_text(text)
    checked = subprocess.run(  # noqa: S603 - our own command line
        [SYSTEMD_ANALYZE, "verify", *sorted(str(path) for path in tmp_path.iterdir())],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    # Unknown keys are only warned about: any output is a failure here.
    assert (checked.returncode, checked.stdout + checked.stderr) == (0, "")


def test_the_units_programs_exist_in_this_checkouts_virtualenv():
    for name in unit_names():
        if name.endswith(".service"):
            program = exec_start(name)[0]
            assert os.access(program, os.X_OK), f"{name}: {program} is not executable"
    assert exec_start("leadswitch-migrate.service")[1:] == ["manage.py", "migrate", "--noinput"]
