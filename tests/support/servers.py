"""The real servers the integration tests talk to.

Where a Docker engine answers, testcontainers starts them; otherwise the local stack of `infra/`
(started here if it is not running). In CI (`CI=true`) a server that cannot be had is a failure,
never a skip.
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
IN_CI = os.environ.get("CI", "").lower() == "true"
STRIPE_MOCK_IMAGE = "stripe/stripe-mock:v0.203.0"  # the version infra/stack.sh builds
STRIPE_MOCK_PORT = 12111
STRIPE_MOCK_TEST_KEY = "sk_test_123"  # stripe-mock accepts any well-formed test key


@dataclass(frozen=True)
class Servers:
    kafka_bootstrap: str
    postgres_admin_url: str  # a superuser connection; tests create their own databases
    elasticsearch_url: str
    stripe_mock_url: str  # the Stripe API base for the `stripe` client, plain HTTP
    stop_kafka: Callable[[], None]
    kill_kafka: Callable[[], None]  # a crash (SIGKILL); start_kafka brings it back
    start_kafka: Callable[[], None]
    stop_elasticsearch: Callable[[], None]
    start_elasticsearch: Callable[[], None]
    stop_postgres: Callable[[], None]
    start_postgres: Callable[[], None]


def unavailable(reason: str) -> None:
    if IN_CI:
        pytest.fail(f"a server the tests need is missing in CI: {reason}", pytrace=False)
    pytest.skip(f"servers not available: {reason}")


def docker_answers() -> bool:
    try:
        import docker

        docker.from_env(timeout=3).ping()
        return True
    except Exception:
        return False


def stack(*arguments: str) -> None:
    subprocess.run([str(REPO / "infra" / "stack.sh"), *arguments], check=True, cwd=REPO)


@contextmanager
def local_stack() -> Iterator[Servers]:
    try:
        stack("up", "postgres", "kafka", "elasticsearch", "stripe-mock")
    except (subprocess.CalledProcessError, OSError) as error:
        unavailable(f"infra/stack.sh up failed: {error}")
    yield Servers(
        kafka_bootstrap=f"127.0.0.1:{os.environ.get('KAFKA_PORT', '9092')}",
        postgres_admin_url=f"postgresql://postgres@127.0.0.1:{os.environ.get('PG_PORT', '5432')}/postgres",
        elasticsearch_url=f"http://127.0.0.1:{os.environ.get('ES_PORT', '9200')}",
        stripe_mock_url=f"http://127.0.0.1:{os.environ.get('STRIPE_MOCK_PORT', str(STRIPE_MOCK_PORT))}",
        stop_kafka=lambda: stack("down", "kafka"),
        kill_kafka=lambda: stack("kill", "kafka"),
        start_kafka=lambda: stack("up", "kafka"),
        stop_elasticsearch=lambda: stack("down", "elasticsearch"),
        start_elasticsearch=lambda: stack("up", "elasticsearch"),
        stop_postgres=lambda: stack("down", "postgres"),
        start_postgres=lambda: stack("up", "postgres"),
    )


@contextmanager
def containers() -> Iterator[Servers]:
    from testcontainers.core.container import DockerContainer
    from testcontainers.core.wait_strategies import HttpWaitStrategy
    from testcontainers.elasticsearch import ElasticSearchContainer
    from testcontainers.kafka import KafkaContainer
    from testcontainers.postgres import PostgresContainer

    kafka = KafkaContainer("confluentinc/cp-kafka:8.0.0").with_kraft()
    postgres = PostgresContainer("postgres:15", username="postgres", password="postgres", dbname="postgres")
    elasticsearch = ElasticSearchContainer(
        "docker.elastic.co/elasticsearch/elasticsearch:8.19.4", mem_limit="1g"
    )
    stripe_mock = (
        DockerContainer(STRIPE_MOCK_IMAGE)
        .with_exposed_ports(STRIPE_MOCK_PORT)
        .waiting_for(
            HttpWaitStrategy(STRIPE_MOCK_PORT, "/v1/payment_intents").with_header(
                "Authorization", f"Bearer {STRIPE_MOCK_TEST_KEY}"
            )
        )
    )
    with kafka, postgres, elasticsearch, stripe_mock:
        broker, search, database = (
            kafka.get_wrapped_container(),
            elasticsearch.get_wrapped_container(),
            postgres.get_wrapped_container(),
        )
        yield Servers(
            kafka_bootstrap=kafka.get_bootstrap_server(),
            postgres_admin_url=postgres.get_connection_url(driver=None),
            elasticsearch_url=f"http://{elasticsearch.get_container_host_ip()}:{elasticsearch.get_exposed_port(elasticsearch.port)}",
            stripe_mock_url=f"http://{stripe_mock.get_container_host_ip()}:{stripe_mock.get_exposed_port(STRIPE_MOCK_PORT)}",
            # A paused broker is an unreachable one; unpausing keeps the mapped ports.
            stop_kafka=broker.pause,
            kill_kafka=broker.pause,  # unpause is the only start that keeps the mapped ports
            start_kafka=broker.unpause,
            stop_elasticsearch=search.pause,
            start_elasticsearch=search.unpause,
            stop_postgres=database.pause,
            start_postgres=database.unpause,
        )


@contextmanager
def real_servers() -> Iterator[Servers]:
    with containers() if docker_answers() else local_stack() as servers:
        yield servers
