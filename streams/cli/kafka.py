"""``placewatch kafka``: what an operator creates before placewatch runs on Kafka, and a producer
of simulated events for trying it out."""

from __future__ import annotations

import logging
import time
from typing import Annotated

import orjson
import typer

from simulator import SCENARIOS
from streams.cli.support import ConfigOpt, settings_for
from streams.errors import PlacewatchError
from streams.logs import log_event
from streams.sources.files import paced

__all__ = ["kafka_app"]

_LOG = logging.getLogger("placewatch")

kafka_app = typer.Typer(help="Kafka deployment helpers.", no_args_is_help=True,
                        rich_markup_mode="markdown")


@kafka_app.command("topics")
def topics(config: ConfigOpt = None) -> None:
    """Print every topic placewatch writes besides the events topic, one per line as
    NAME PARTITIONS CLEANUP_POLICY, for an operator (or a broker without CreateTopics) to
    create first. Names come from the kafka_*_topic settings.

    The events topic (kafka_events_topic, default placewatch.events) belongs to the producers:
    any number of partitions, keyed by decision_id so a placement and its outcome share one.
    """
    settings = settings_for(config)
    for name, partitions, policy in settings.kafka.internal_topics:
        typer.echo(f"{name} {partitions} {policy}")


@kafka_app.command("produce")
def produce(
    to: Annotated[str, typer.Option("--to", help="kafka://HOST:PORT[,HOST:PORT] to write to.")],
    config: ConfigOpt = None,
    scenario: Annotated[str, typer.Option(help=f"Simulator scenario: {', '.join(SCENARIOS)}.")
                        ] = "equity_drift",
    seed: Annotated[int, typer.Option(help="Simulator seed.")] = 1,
    events: Annotated[int | None, typer.Option(min=1, help="Stop after this many events "
                                               "(default: until Ctrl-C).")] = None,
    speedup: Annotated[float, typer.Option(min=0.001, help="Simulated seconds per real "
                                           "second (6000: about 1,200 events/s).")] = 6000.0,
) -> None:
    """Publish the built-in simulator's events to the events topic (kafka_events_topic), keyed
    by decision_id as a scheduler should, paced like `run`. For trying placewatch on Kafka
    and for the docker-compose deployment; not something production needs."""
    settings = settings_for(config)
    if scenario not in SCENARIOS:
        raise PlacewatchError(f"--scenario: unknown {scenario!r}; valid: {', '.join(SCENARIOS)}")
    from aiokafka.errors import KafkaError

    from streams.kafka_client import KafkaLoop, bootstrap_of, make_producer

    servers = bootstrap_of(to)
    topic = settings.kafka.events_topic
    loop = KafkaLoop()
    sent = 0
    try:
        producer = make_producer(settings.kafka, servers, loop)
        log_event(_LOG, logging.INFO, "producing", topic=topic, scenario=scenario, seed=seed,
                  speedup=speedup)
        last = time.monotonic()
        try:
            for _, raw in paced(scenario, seed, events, speedup):
                key = str(orjson.loads(raw)["decision_id"]).encode()
                loop.call(producer.send(topic, raw, key=key))
                sent += 1
                if time.monotonic() - last > 10:
                    log_event(_LOG, logging.INFO, "status", produced=sent)
                    last = time.monotonic()
        except KeyboardInterrupt:
            pass
        except (KafkaError, OSError, TimeoutError) as exc:
            raise PlacewatchError(f"producing to {topic} failed after {sent:,} events: "
                                  f"{type(exc).__name__}: {exc}") from exc
        finally:
            loop.call(producer.flush())
            loop.call(producer.stop())
    finally:
        loop.close()
    log_event(_LOG, logging.INFO, "produced", topic=topic, events=sent)
