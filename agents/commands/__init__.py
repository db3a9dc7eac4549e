"""The `harmrank` commands (agents/cli.py dispatches to them), and the conventions they share.

Each command reads its settings one way: flags, then `HARMRANK_*` variables, then
the defaults (agents/settings.py). Each ends one way, through `@command`:

  0  done;
  1  the operation failed (a send not acknowledged, a broker that would not start or died);
  2  it could not begin: a bad setting, flag or input file, or no broker at the address given;

with the reason as one line on stderr, ``harmrank <command>: <reason>``, never a traceback.
"""
from __future__ import annotations

import functools
import sys
from dataclasses import fields
from typing import Any, Callable, Optional

from ..settings import Settings

EXIT_OK = 0
EXIT_FAILED = 1  # the operation failed
EXIT_USAGE = 2  # bad settings or input: nothing was done
#: Seconds a command waits for the broker to answer before it gives up (EXIT_USAGE).
CONNECT_TIMEOUT = 5.0


class Fail(Exception):
    """Stops a command: the message goes to stderr, the code is the exit code."""

    def __init__(self, message: str, code: int = EXIT_USAGE):
        super().__init__(message)
        self.code = code


def say(prog: str, message: str) -> None:
    """One line on stderr, as every command speaks: ``harmrank <command>: <message>``."""
    print(f"{prog}: {message}", file=sys.stderr, flush=True)


def command(prog: str) -> Callable:
    """Wrap a command's `main(argv)`: a `Fail` becomes its message on stderr and its exit code."""
    def wrap(main: Callable[..., Optional[int]]) -> Callable[..., int]:
        @functools.wraps(main)
        def run(argv: Optional[list] = None, *args: Any, **kwargs: Any) -> int:
            try:
                return main(argv, *args, **kwargs) or EXIT_OK
            except Fail as exc:
                say(prog, str(exc))
                return exc.code
        return run
    return wrap


def settings_of(args: Any = None, **overrides: Any) -> Settings:
    """Settings from the setting flags found on `args` (argparse) and `overrides` (the non-None ones),
    then the environment; Fail for a bad one."""
    names = {f.name for f in fields(Settings)}
    given = {k: v for k, v in vars(args).items() if k in names} if args is not None else {}
    given.update({k: v for k, v in overrides.items() if v is not None})
    try:
        return Settings.from_env(**given)
    except ValueError as exc:
        raise Fail(str(exc)) from None
