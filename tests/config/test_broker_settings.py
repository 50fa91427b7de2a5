"""The broker's options follow CELERY_BROKER_URL's scheme: Redis gets its visibility timeout,
RabbitMQ quorum queues, publisher confirms and topic exchanges (native delayed delivery), and a
scheme the platform was not built for stops start-up. On a real RabbitMQ, a countdown under a
second waits a whole second on the broker instead of failing the publish."""

from __future__ import annotations

import pytest

from tests import rabbitmq
from tests.config.probe import probed, python_run

PROBE = """
import json
import django
django.setup()
from config.celery import app
conf = app.conf
print(json.dumps({
    "transport": conf.broker_transport_options,
    "queue_type": conf.task_default_queue_type,
    "missing_queue_type": conf.task_create_missing_queue_type,
    "exchange_type": conf.task_default_exchange_type,
    "missing_exchange_type": conf.task_create_missing_queue_exchange_type,
    "detect_quorum": conf.worker_detect_quorum_queues,
    "declared": {
        name: [q.exchange.type, q.queue_arguments] for name, q in app.amqp.queues.items()
    },
}))
"""


def broker_settings(url: str) -> dict:
    return probed(
        python_run(
            "-c",
            PROBE,
            unset=["CACHE_URL", "DEBUG"],
            SECRET_KEY="x" * 50,
            CELERY_BROKER_URL=url,
            **({"CACHE_URL": "redis://cache.internal:6379/1"} if url.startswith("amqp") else {}),
        )
    )


def test_rabbitmq_gets_quorum_queues_publisher_confirms_and_topic_exchanges():
    read = broker_settings("amqps://leads:secret@mq.internal:5671/leads")

    assert read["transport"] == {"confirm_publish": True}  # and no visibility timeout
    assert (read["queue_type"], read["missing_queue_type"]) == ("quorum", "quorum")
    assert (read["exchange_type"], read["missing_exchange_type"]) == ("topic", "topic")
    assert read["detect_quorum"] is True
    assert read["declared"] == {"celery": ["topic", {"x-queue-type": "quorum"}]}


def test_redis_gets_its_visibility_timeout_and_plain_queues():
    read = broker_settings("rediss://cache.internal:6380/0")

    assert read["transport"] == {"visibility_timeout": 600}
    assert read["queue_type"] == "classic"
    assert read["declared"] == {"celery": ["direct", None]}


def test_rabbitmq_without_a_shared_cache_stops_start_up_unless_in_development():
    def start(**overrides: str):
        return python_run(
            "-c",
            "import django; django.setup()",
            unset=["CACHE_URL", "DEBUG"],
            SECRET_KEY="x" * 50,
            CELERY_BROKER_URL="amqp://guest:guest@127.0.0.1:5672/leads",
            **overrides,
        )

    refused = start()
    assert refused.returncode != 0
    assert "With RabbitMQ as the broker, set CACHE_URL to a Redis" in refused.stderr
    assert start(DEBUG="1").returncode == 0


def test_without_a_broker_there_are_no_broker_options():
    assert broker_settings("")["transport"] == {}


@pytest.mark.parametrize("url", ["sqs://key:secret@", "guest:secret@127.0.0.1:5672"])
def test_a_broker_the_platform_was_not_built_for_stops_start_up(url):
    result = python_run(
        "-c", "import django; django.setup()", unset=[], SECRET_KEY="x" * 50, CELERY_BROKER_URL=url
    )

    assert result.returncode != 0
    assert "CELERY_BROKER_URL must start with redis://, rediss://, amqp:// or amqps://" in (
        result.stderr
    )
    assert "secret" not in result.stderr


COUNTDOWN_PROBE = """
import json
import time
import django
django.setup()
from kombu.transport.native_delayed_delivery import (
    bind_queue_to_native_delayed_delivery_exchange,
    declare_native_delayed_delivery_exchanges_and_queues,
)
from config.celery import app
with app.connection_for_write() as connection:
    # What a worker declares when it starts on quorum queues.
    declare_native_delayed_delivery_exchanges_and_queues(connection, "quorum")
    queue = app.amqp.queues["celery"].bind(connection.default_channel)
    queue.declare()
    bind_queue_to_native_delayed_delivery_exchange(connection, queue)

    def waiting():
        return queue.queue_declare(passive=True).message_count

    app.send_task("celery.accumulate", args=["in a moment"], countdown=0.3)
    app.send_task("celery.accumulate", args=["in two seconds"], countdown=1.2)
    counts = [waiting()]
    time.sleep(3.5)
    counts.append(waiting())
print(json.dumps(counts))
"""


def test_a_countdown_under_a_second_waits_on_rabbitmq_then_arrives():
    rabbitmq.require()
    vhost = rabbitmq.Vhost()
    try:
        counts = probed(
            python_run(
                "-c",
                COUNTDOWN_PROBE,
                unset=["CACHE_URL"],
                DEBUG="1",  # no shared cache needed to publish
                SECRET_KEY="x" * 50,
                CELERY_BROKER_URL=vhost.url,
            )
        )
    finally:
        vhost.delete()

    # Native delayed delivery refuses a countdown under a second (ValueError); rounded up, both
    # tasks wait on the broker (1 and 2 s), not in the queue, and then arrive in it.
    assert counts == [0, 2]
