"""The `faithfusion` command: `faithfusion [--debug] COMMAND [SUBCOMMAND] FLAGS...`.

Each command is a dataclass config parsed by tyro (faithfusion/commands/). A user error (bad input,
`faithfusion.errors.UserError`) prints one line `faithfusion COMMAND: error: MESSAGE` on stderr and exits with
USER_ERROR_EXIT_CODE; `--debug` (before the command) or FAITHFUSION_DEBUG=1 shows its traceback instead.
"""

from __future__ import annotations

import os
import sys
from dataclasses import make_dataclass
from pathlib import Path
from typing import Any

import tyro

from faithfusion.commands import USER_ERROR_EXIT_CODE, Command, Group, UserError, commands

DESCRIPTION = "FaithFusion: faithful novel-view synthesis of driving scenes."
DEBUG_ENV = "FAITHFUSION_DEBUG"


def help_stub(name: str, text: str) -> type:
    """A flagless dataclass that stands for a command in a `--help` listing."""
    return make_dataclass(name.replace("-", "_").replace("+", "_plus").title(), [], namespace={"__doc__": text})


def resolve(table: dict, args: list[str], prog: str) -> tuple[Command, list[str], str]:
    """The command that `args` names in `table` (descending into groups), its flags, and its full name."""
    while True:
        if args and args[0] in table:
            entry = table[args[0]]
            prog, args = f"{prog} {args[0]}", args[1:]
            if isinstance(entry, Group):
                table = entry.table()
                continue
            return entry, args, prog
        # no command named: tyro prints the listing (--help) or the error, and exits
        stubs = {name: help_stub(name, e.help or name) for name, e in table.items()}
        tyro.extras.subcommand_cli_from_dict(stubs, args=args, prog=prog, description=DESCRIPTION)
        raise SystemExit(f"{prog}: name a command")


def config_flag(flags: list[str]) -> str | None:
    """The value of `--config PATH` / `--config=PATH` among `flags` (the last one given), or None."""
    value = None
    for i, flag in enumerate(flags):
        if flag == "--config" and i + 1 < len(flags):
            value = flags[i + 1]
        elif flag.startswith("--config="):
            value = flag.split("=", 1)[1]
    return value


def parse_config(command: Command, flags: list[str], prog: str) -> Any:
    """The command's config: its flags over a `--config` run's flags, over the defaults."""
    path = config_flag(flags) if command.defaults_from is not None else None
    default = command.defaults_from(Path(path)) if path is not None else None
    return tyro.cli(command.config, args=flags, prog=prog, description=command.description, default=default)


def main(argv: list[str] | None = None) -> None:
    args = sys.argv[1:] if argv is None else list(argv)
    debug = os.environ.get(DEBUG_ENV, "") not in ("", "0")
    if args and args[0] == "--debug":
        debug, args = True, args[1:]
    command, flags, prog = resolve(commands(), args, "faithfusion")
    try:
        command.run(parse_config(command, flags, prog))
    except UserError as e:
        if debug:
            raise
        print(f"{prog}: error: {e}", file=sys.stderr)
        raise SystemExit(USER_ERROR_EXIT_CODE) from None


if __name__ == "__main__":
    main()
