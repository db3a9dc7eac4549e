"""`harmrank broker`: run the local Kafka-compatible broker in the foreground (agents/local_broker.py)."""
from __future__ import annotations

import argparse
import contextlib
import signal
import threading
from typing import Optional

from ..local_broker import BrokerError, LocalBroker
from ..settings import DEFAULT_KAFKA_PORT
from . import EXIT_FAILED, Fail, command, say

PROG = "harmrank broker"


@command(PROG)
def main(argv: Optional[list[str]] = None) -> int:
    parser = argparse.ArgumentParser(
        prog=PROG,
        description="Run a local Kafka-compatible broker (tansu, in-memory storage: topics are lost when it stops).",
    )
    parser.add_argument("--port", type=int, default=DEFAULT_KAFKA_PORT, help="TCP port (default %(default)s)")
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on (default %(default)s)")
    parser.add_argument("--advertise", metavar="HOST:PORT", default=None,
                        help="the address clients are told to connect to, e.g. a TLS proxy in front of the broker "
                             "(default: --host and --port)")
    parser.add_argument("--timeout", type=float, default=10.0,
                        help="seconds to wait for the broker to answer (default %(default)g)")
    args = parser.parse_args(argv)
    if not (0 < args.port < 65536):
        raise Fail(f"--port must be 1-65535, got {args.port}")
    if args.advertise is not None and not args.advertise.rpartition(":")[2].isdigit():
        raise Fail(f"--advertise must be HOST:PORT, got {args.advertise!r}")

    stop = threading.Event()
    previous = {}
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(ValueError):  # not in the main thread
            previous[sig] = signal.signal(sig, lambda signum, frame: stop.set())
    broker = LocalBroker(port=args.port, host=args.host, advertised=args.advertise)
    try:
        try:
            broker.start(timeout=args.timeout)
        except BrokerError as exc:
            raise Fail(str(exc), EXIT_FAILED) from None
        print(broker.url, flush=True)
        say(PROG, f"ready (tansu pid {broker.pid}, in-memory storage); Ctrl-C to stop")
        while not stop.is_set():
            if not broker.running():
                tail = broker.log_tail()
                code = broker.returncode
                how = f"killed by signal {-code}" if code is not None and code < 0 else f"exit code {code}"
                raise Fail(f"tansu exited unexpectedly ({how})" + (f":\n{tail}" if tail else ""), EXIT_FAILED)
            stop.wait(0.5)
        return 0
    except KeyboardInterrupt:
        return 0
    finally:
        broker.stop()
        for sig, handler in previous.items():
            with contextlib.suppress(Exception):
                signal.signal(sig, handler)
