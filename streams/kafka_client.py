"""Kafka clients' plumbing shared by the source and the sinks: the bootstrap URL, security
options, the asyncio loop every client runs on, the producer, and what a failure to connect
says."""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import Coroutine
from typing import Any, Final, TypeVar

from aiokafka import AIOKafkaProducer
from aiokafka.errors import KafkaConnectionError, KafkaError
from aiokafka.helpers import create_ssl_context

from streams.errors import ConfigError, PlacewatchError
from streams.settings import KafkaSettings

__all__ = ["CLOSE_TIMEOUT_S", "CONNECT_TIMEOUT_S", "KafkaLoop", "bootstrap_of",
           "client_options", "connect_error", "make_producer"]

_T = TypeVar("_T")
CONNECT_TIMEOUT_S: Final = 30.0
"""How long start-up waits for the brokers before it gives up with an error."""
CLOSE_TIMEOUT_S: Final = 5.0
"""How long stopping a client (or one commit attempt) may take: with the brokers gone, a
shutdown must still end (docker stop allows 10 s)."""

def bootstrap_of(url: str) -> tuple[str, ...]:
    """``kafka://HOST:PORT[,HOST:PORT]`` as a list of bootstrap servers.

    >>> bootstrap_of("kafka://broker-1:9092,broker-2:9092")
    ('broker-1:9092', 'broker-2:9092')
    >>> bootstrap_of("kafka://broker")
    Traceback (most recent call last):
    ...
    streams.errors.ConfigError: --source: 'broker' needs a port (kafka://HOST:PORT[,HOST:PORT])
    """
    if not url.startswith("kafka://"):
        raise ConfigError(f"--source: not a kafka:// URL: {url!r}")
    servers = tuple(s.strip() for s in url[len("kafka://"):].split(",") if s.strip())
    if not servers:
        raise ConfigError("--source: kafka:// needs at least one HOST:PORT")
    for server in servers:
        host, _, port = server.rpartition(":")
        if not host or not port.isdigit() or not 0 < int(port) < 65536:
            raise ConfigError(f"--source: {server!r} needs a port "
                              "(kafka://HOST:PORT[,HOST:PORT])")
    return servers


def client_options(settings: KafkaSettings) -> dict[str, Any]:
    """Security options shared by the consumer and the producer: TLS always carries an SSL
    context (aiokafka would otherwise send SASL in clear); SASL_PLAINTEXT is refused when the
    settings are read."""
    options: dict[str, Any] = {"security_protocol": settings.security_protocol}
    if settings.security_protocol in ("SSL", "SASL_SSL"):
        options["ssl_context"] = create_ssl_context(
            cafile=settings.ssl_cafile or None, certfile=settings.ssl_certfile or None,
            keyfile=settings.ssl_keyfile or None)
    if settings.security_protocol == "SASL_SSL":
        options.update(sasl_mechanism=settings.sasl_mechanism,
                       sasl_plain_username=settings.sasl_username,
                       sasl_plain_password=settings.sasl_password)
    return options


class KafkaLoop:
    """An asyncio loop in a daemon thread; :meth:`call` runs a coroutine on it and waits."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, daemon=True,
                                        name="placewatch-kafka")
        self._thread.start()

    def call(self, coro: Coroutine[Any, Any, _T], timeout: float = CONNECT_TIMEOUT_S) -> _T:
        future = asyncio.run_coroutine_threadsafe(coro, self.loop)
        try:
            return future.result(timeout)
        except TimeoutError:
            future.cancel()
            raise

    def close(self) -> None:
        """Cancel what is still pending (clients stopped with the brokers gone leave tasks
        behind), then stop the loop and its thread."""
        if self.loop.is_running():
            async def cancel_pending() -> None:
                tasks = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
                for task in tasks:
                    task.cancel()
                await asyncio.gather(*tasks, return_exceptions=True)
            with contextlib.suppress(Exception):
                self.call(cancel_pending(), CLOSE_TIMEOUT_S)
            self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(timeout=10)
        if not self._thread.is_alive():
            self.loop.close()


def connect_error(servers: tuple[str, ...], exc: BaseException) -> PlacewatchError:
    if isinstance(exc, KafkaConnectionError | OSError | TimeoutError):
        return PlacewatchError(f"cannot reach Kafka at {','.join(servers)}: "
                               f"{type(exc).__name__}: {exc}; check --source, the listeners "
                               "the brokers advertise and the kafka_security_protocol setting")
    return PlacewatchError(f"Kafka at {','.join(servers)} refused placewatch's client: "
                           f"{type(exc).__name__}: {exc}; check the kafka_* settings "
                           "(security protocol, SASL credentials, certificates, group id)")


def make_producer(settings: KafkaSettings, servers: tuple[str, ...], loop: KafkaLoop
                  ) -> AIOKafkaProducer:
    """A started producer that waits for every in-sync replica and never duplicates on a
    retry (idempotent)."""
    async def start() -> AIOKafkaProducer:
        producer = AIOKafkaProducer(bootstrap_servers=list(servers), acks="all",
                                    enable_idempotence=True, linger_ms=5,
                                    client_id="placewatch", **client_options(settings))
        try:
            await producer.start()
        except BaseException:
            await producer.stop()
            raise
        return producer
    try:
        return loop.call(start(), CONNECT_TIMEOUT_S + 5)
    except (KafkaError, OSError, TimeoutError) as exc:
        raise connect_error(servers, exc) from exc
