"""The one way tests switch Celery's in-process (eager) tasks leaves the setting as it found it."""

from __future__ import annotations

import pytest

from config.celery import app
from tests.conftest import celery_eager


def test_a_test_with_the_eager_fixture_runs_tasks_in_process(eager_celery, settings):
    assert app.conf.task_always_eager is True
    assert settings.CELERY_TASK_ALWAYS_EAGER is True


def test_the_next_test_finds_celery_reading_djangos_setting_again(settings):
    # Runs after the test above (pytest keeps a module's order): its fixture left nothing behind,
    # so Celery follows Django's setting as it did before.
    assert "task_always_eager" not in app.conf.changes
    settings.CELERY_TASK_ALWAYS_EAGER = False
    assert app.conf.task_always_eager is False
    settings.CELERY_TASK_ALWAYS_EAGER = True
    assert app.conf.task_always_eager is True


@pytest.mark.parametrize("found", [False, True])
def test_it_restores_the_setting_it_found_even_when_the_test_fails(settings, found):
    settings.CELERY_TASK_ALWAYS_EAGER = found

    def failing_test() -> None:
        with celery_eager(settings, eager=not found):
            assert app.conf.task_always_eager is (not found)
            raise RuntimeError("the test failed")

    with pytest.raises(RuntimeError, match="the test failed"):
        failing_test()

    assert settings.CELERY_TASK_ALWAYS_EAGER is found
    assert app.conf.task_always_eager is found
    assert "task_always_eager" not in app.conf.changes


def test_nested_it_hands_back_the_outer_value(settings):
    settings.CELERY_TASK_ALWAYS_EAGER = False

    with celery_eager(settings, eager=True):
        with celery_eager(settings, eager=False):
            assert app.conf.task_always_eager is False
        assert app.conf.task_always_eager is True
        assert settings.CELERY_TASK_ALWAYS_EAGER is True

    assert app.conf.task_always_eager is False
    assert "task_always_eager" not in app.conf.changes
