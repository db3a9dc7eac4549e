"""`harmrank <command>`: one entry point; each command imports only what it needs.

The commands live in agents/commands/ (their shared conventions, exit codes
included, are said there once). The batch commands (rank, simulate) never import
Faust, so they start fast and run where no broker is reachable.
"""
from __future__ import annotations

import importlib
import sys
from typing import Optional

COMMANDS = {
    "broker": ("agents.commands.broker", "run a local Kafka-compatible broker (tansu)"),
    "worker": ("agents.commands.worker", "the stream processor"),
    "publish": ("agents.commands.publish", "publish a JSON-lines file of input events"),
    "follow": ("agents.commands.follow", "print the ranking events as they arrive"),
    "rank": ("agents.commands.rank", "the batch reference ranking of a JSON-lines file"),
    "briefing": ("agents.commands.briefing", "the tasking meeting's briefing from a running worker (json, md, html)"),
    "simulate": ("streams.simulate", "write a realistic synthetic feed"),
    "demo": ("agents.commands.demo", "broker, worker, live feed and the top N on one machine"),
}

USAGE = "usage: harmrank <command> [options]\n\ncommands:\n" + "\n".join(
    f"  {name:<9} {text}" for name, (_, text) in COMMANDS.items()) + "\n\n'harmrank <command> --help' for its options."


def main(argv: Optional[list[str]] = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if not argv or argv[0] in ("-h", "--help", "help"):
        print(USAGE)
        return 0 if argv else 2
    command, rest = argv[0], argv[1:]
    if command not in COMMANDS:
        print(f"harmrank: unknown command {command!r}\n\n{USAGE}", file=sys.stderr)
        return 2
    module = importlib.import_module(COMMANDS[command][0])
    try:
        return module.main(rest) or 0
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
