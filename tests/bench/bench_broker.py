"""Benchmark of the local broker alone (not a test): one hop's latency as it holds more record batches.

    python -m tests.bench.bench_broker [--steps 1000,10000,20000] [--rate 500] [--seconds 6]

Starts a fresh tansu (as `harmrank broker` does), then for each step fills partition 0
of topic ``held`` with single-record batches up to that many, and sends ``--rate``
messages a second for ``--seconds`` (kafka-python, linger 0, one record a batch: what
an upstream system publishing one report at a time sends) to three places in turn,
each read at its tail by a consumer with a 10 ms fetch wait (the worker's setting for
this broker):

- partition 0 of ``held``, the partition that holds the batches;
- partition 1 of ``held``, an empty partition of the same topic;
- partition 0 of ``other``, another topic.

It prints each hop's p50 / p99 (send to receive) and the broker's CPU share while it
runs. The worker's stages write a few record batches per stage batch (envelopes and
changelogs), so a worker that has run a while has the broker holding tens of thousands
of them; this shows what that alone costs each hop on this broker. A Kafka broker finds
an offset through a sparse index, so its fetch cost does not grow this way.
"""
from __future__ import annotations

import argparse
import sys
import threading
import time
import warnings

from tests.bench.bench_stream import pct, proc_status

warnings.filterwarnings("ignore", category=DeprecationWarning, module=r"kafka(\..*)?")


class HopProbe(threading.Thread):
    """Sends `rate` small messages a second to one partition and times each one back (send to receive).

    `samples` holds (send time, latency in ms) in arrival order. Its own producer
    (kafka-python, linger 0: a record a batch) and a consumer at the partition's
    tail with a 10 ms fetch wait, the worker's setting for this broker.
    """

    def __init__(self, bootstrap: str, topic: str, partition: int = 0, rate: float = 10.0, producer=None):
        super().__init__(name=f"hop-probe-{topic}-{partition}", daemon=True)
        from kafka import KafkaConsumer, KafkaProducer, TopicPartition

        self.topic, self.partition, self.rate = topic, partition, rate
        self._own_producer = producer is None
        self.producer = producer or KafkaProducer(bootstrap_servers=bootstrap, linger_ms=0)
        self.consumer = KafkaConsumer(bootstrap_servers=bootstrap, group_id=None, fetch_max_wait_ms=10,
                                      enable_auto_commit=False)
        tp = TopicPartition(topic, partition)
        self.producer.send(topic, value=b"x", partition=partition)  # the topic exists before we read it
        self.producer.flush()
        self.consumer.assign([tp])
        self.consumer.seek_to_end(tp)
        while self.consumer.poll(timeout_ms=300):  # tansu's end offsets are not the log end: read to the tail
            pass
        self.samples: list = []
        self.sent = 0
        self.stopping = threading.Event()  # stop sending
        self._done = threading.Event()  # stop reading
        self._reader = threading.Thread(target=self._read, daemon=True)

    def _read(self) -> None:
        while not self._done.is_set():
            for records in self.consumer.poll(timeout_ms=50).values():
                now = time.time()
                for r in records:
                    if r.value.startswith(b"L"):
                        sent = float(r.value[1:])
                        self.samples.append((sent, (now - sent) * 1000.0))

    def run(self) -> None:
        self._reader.start()
        t0 = time.time()
        while not self.stopping.is_set():
            ahead = t0 + self.sent / self.rate - time.time()
            if ahead > 0:
                time.sleep(min(ahead, 0.2))
                continue
            self.producer.send(self.topic, value=b"L%.6f" % time.time(), partition=self.partition)
            self.sent += 1

    def stop(self, drain: float = 1.0) -> None:
        """Stop sending, wait `drain` s for the last ones to come back, close."""
        self.stopping.set()
        self.join(5)
        self.producer.flush()
        time.sleep(drain)
        self._done.set()
        self._reader.join(5)
        self.consumer.close()
        if self._own_producer:
            self.producer.close()

    def latencies(self, since: float = 0.0, until: float = float("inf")) -> list:
        """The latencies (ms, sorted) of the messages sent in [since, until)."""
        return sorted(lat for sent, lat in self.samples if since <= sent < until)


def one_hop(bootstrap: str, broker_pid: int, topic: str, partition: int, rate: float, seconds: float,
            producer) -> tuple[list, float]:
    """Latencies (ms, sorted) of `rate` messages/s for `seconds` to one partition, and the broker's CPU share."""
    probe = HopProbe(bootstrap, topic, partition, rate, producer)
    cpu0, t0 = proc_status(broker_pid)["cpu"], time.time()
    probe.start()
    time.sleep(seconds)
    probe.stop()
    share = (proc_status(broker_pid)["cpu"] - cpu0) / (time.time() - t0)
    latencies = probe.latencies()
    if len(latencies) < probe.sent:
        print(f"    ({probe.sent - len(latencies)} of {probe.sent} messages not read back within a second)", flush=True)
    return latencies, share


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", default="1000,10000,20000",
                    help="batches held in partition 0 of 'held' at each step (default 1000,10000,20000)")
    ap.add_argument("--rate", type=float, default=500.0, help="messages/s of each hop's test (default 500)")
    ap.add_argument("--seconds", type=float, default=6.0, help="length of each hop's test (default 6)")
    args = ap.parse_args(argv)
    steps = sorted(int(s) for s in args.steps.split(","))

    from kafka import KafkaProducer

    from agents.local_broker import LocalBroker, free_port

    broker = LocalBroker(port=free_port()).start(timeout=15)
    try:
        fill = KafkaProducer(bootstrap_servers=broker.bootstrap, linger_ms=0, batch_size=1)  # a batch a record
        live = KafkaProducer(bootstrap_servers=broker.bootstrap, linger_ms=0)
        held = 0
        print(f"tansu on {broker.bootstrap} (pid {broker.pid}); {args.rate:g} messages/s for {args.seconds:g} s a hop",
              flush=True)
        for target in steps:
            while held < target:
                fill.send("held", value=b"f" * 200, partition=0)
                held += 1
                if held % 1000 == 0:
                    fill.flush()
            fill.flush()
            before = held
            for topic, partition, label in (("held", 0, "the partition holding them"),
                                            ("held", 1, "another partition, same topic"),
                                            ("other", 0, "another topic")):
                lat, share = one_hop(broker.bootstrap, broker.pid, topic, partition, args.rate, args.seconds, live)
                if topic == "held" and partition == 0:
                    held += len(lat)  # the test's own messages are single-record batches there too
                print(f"{before:>7,} batches held: hop to {label:<31} p50 {pct(lat, 50):6.1f} ms  "
                      f"p99 {pct(lat, 99):6.1f} ms  (n={len(lat)}); broker {share * 100:3.0f} % of a core", flush=True)
        fill.close()
        live.close()
    finally:
        broker.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
