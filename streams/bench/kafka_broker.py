"""A real Kafka-protocol broker for tests and benchmarks: librdkafka's mock cluster, from the
``confluent-kafka`` wheel (a test dependency, ``pip install '.[test]'``; pinned exactly: its C
API is marked experimental).

It is a TCP server speaking the Kafka protocol, with a group coordinator and offsets, in this
process's librdkafka threads. It has no CreateTopics and no persistence: topics are created
here up front (``placewatch kafka topics`` lists placewatch's own), and clients must stop
before it does. It keeps at most 5 MB of message sets per partition (older ones are dropped):
compress, or spread larger inputs over more partitions.

Run ``python -m streams.bench.kafka_broker TOPIC:PARTITIONS ...`` to keep one up by hand; it
prints its bootstrap address.
"""

from __future__ import annotations

import ctypes
import glob
import os
import sys
import time
from collections.abc import Iterable

from streams.errors import PlacewatchError

try:
    import confluent_kafka
except ImportError as exc:  # a test dependency
    raise PlacewatchError("the test broker needs confluent-kafka: pip install '.[test]'"
                          ) from exc

__all__ = ["PRODUCE_API", "MockCluster", "produce"]


def _library() -> ctypes.CDLL:
    libs = os.path.join(os.path.dirname(confluent_kafka.__file__), os.pardir,
                        "confluent_kafka.libs")
    found = glob.glob(os.path.join(libs, "librdkafka-*.so*"))
    if not found:
        raise RuntimeError(f"no librdkafka in {libs}")
    lib = ctypes.CDLL(found[0])
    lib.rd_kafka_conf_new.restype = ctypes.c_void_p
    lib.rd_kafka_conf_set.argtypes = [ctypes.c_void_p, ctypes.c_char_p, ctypes.c_char_p,
                                      ctypes.c_char_p, ctypes.c_size_t]
    lib.rd_kafka_new.restype = ctypes.c_void_p
    lib.rd_kafka_new.argtypes = [ctypes.c_int, ctypes.c_void_p, ctypes.c_char_p,
                                 ctypes.c_size_t]
    lib.rd_kafka_destroy.argtypes = [ctypes.c_void_p]
    lib.rd_kafka_mock_cluster_new.restype = ctypes.c_void_p
    lib.rd_kafka_mock_cluster_new.argtypes = [ctypes.c_void_p, ctypes.c_int]
    lib.rd_kafka_mock_cluster_destroy.argtypes = [ctypes.c_void_p]
    lib.rd_kafka_mock_topic_create.argtypes = [ctypes.c_void_p, ctypes.c_char_p, ctypes.c_int,
                                               ctypes.c_int]
    lib.rd_kafka_mock_cluster_bootstraps.restype = ctypes.c_char_p
    lib.rd_kafka_mock_cluster_bootstraps.argtypes = [ctypes.c_void_p]
    lib.rd_kafka_mock_group_initial_rebalance_delay_ms.argtypes = [ctypes.c_void_p,
                                                                   ctypes.c_int]
    lib.rd_kafka_mock_push_request_errors_array.argtypes = [
        ctypes.c_void_p, ctypes.c_int16, ctypes.c_size_t, ctypes.POINTER(ctypes.c_int)]
    return lib


PRODUCE_API = 0
"""Kafka protocol ApiKey of a Produce request."""


class MockCluster:
    """One mock broker; :attr:`bootstrap` is its ``HOST:PORT``."""

    def __init__(self) -> None:
        self._lib = lib = _library()
        errstr = ctypes.create_string_buffer(512)
        conf = lib.rd_kafka_conf_new()
        # the handle only hosts the cluster; silence its "no bootstrap.servers" warning
        lib.rd_kafka_conf_set(conf, b"log_level", b"3", errstr, 512)
        self._handle = lib.rd_kafka_new(0, conf, errstr, 512)
        if not self._handle:
            raise RuntimeError(errstr.value.decode())
        self._mock = lib.rd_kafka_mock_cluster_new(self._handle, 1)
        if not self._mock:
            raise RuntimeError("rd_kafka_mock_cluster_new failed")
        lib.rd_kafka_mock_group_initial_rebalance_delay_ms(self._mock, 0)
        self.bootstrap = lib.rd_kafka_mock_cluster_bootstraps(self._mock).decode()

    @property
    def url(self) -> str:
        return f"kafka://{self.bootstrap}"

    def create_topic(self, name: str, partitions: int) -> None:
        err = self._lib.rd_kafka_mock_topic_create(self._mock, name.encode(), partitions, 1)
        if err:
            raise RuntimeError(f"rd_kafka_mock_topic_create({name}) failed: {err}")

    def fail_requests(self, api_key: int, error: int, count: int) -> None:
        """Answer the next ``count`` requests of ``api_key`` with the Kafka error code
        ``error`` (librdkafka's ``rd_kafka_mock_push_request_errors_array``)."""
        errors = (ctypes.c_int * count)(*([error] * count))
        self._lib.rd_kafka_mock_push_request_errors_array(self._mock, api_key, count, errors)

    def close(self) -> None:
        if self._mock:
            self._lib.rd_kafka_mock_cluster_destroy(self._mock)
            self._mock = None
        if self._handle:
            self._lib.rd_kafka_destroy(self._handle)
            self._handle = None


def produce(bootstrap: str, topic: str, messages: Iterable[tuple[bytes | None, bytes]]) -> int:
    """Write ``(key, value)`` messages with confluent-kafka's producer; returns how many."""
    producer = confluent_kafka.Producer({"bootstrap.servers": bootstrap, "acks": "all",
                                         "linger.ms": 5, "log_level": 3,
                                         # the mock keeps 5 MB per partition: compress
                                         "compression.type": "gzip"})
    n = 0
    for key, value in messages:
        while True:
            try:
                producer.produce(topic, value=value, key=key)
                break
            except BufferError:
                producer.poll(0.1)
        n += 1
        if n % 10_000 == 0:
            producer.poll(0)
    left = producer.flush(60)
    if left:
        raise RuntimeError(f"{left} messages not delivered to {topic}")
    return n


if __name__ == "__main__":
    cluster = MockCluster()
    for spec in sys.argv[1:]:
        name, _, count = spec.partition(":")
        cluster.create_topic(name, int(count or 1))
    print(cluster.bootstrap, flush=True)
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        cluster.close()
