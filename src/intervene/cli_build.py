"""The ``intervene`` parser, built from a table of subcommands (:class:`Command`).

A flag that is a stage setting is declared by naming its field (:func:`opt`): its default, range
check, choices and help come from :mod:`intervene.settings`, so the CLI cannot drift from the
workflow's defaults. Flags that are no setting (input and output paths) are declared as argparse
would take them (:func:`arg`). The same table renders the README's "three ways" table
(:func:`three_ways_table`). Hand-written rather than a CLI library's: argparse is what the range
checks (:mod:`intervene.cli_types`) and the tests already speak, and the builder is 100 lines.
"""

from __future__ import annotations

import argparse
import dataclasses
import importlib
import json
import logging
from collections.abc import Callable, Mapping
from dataclasses import MISSING, dataclass, field
from typing import Any

from intervene.cli_types import CheckedParser
from intervene.settings import default_of, settings_fields

log = logging.getLogger("intervene")


@dataclass(frozen=True)
class Arg:
    """One argument: argparse's flags and options; ``group``: an argument group's title;
    ``setting``: the (settings class, field) it stands for."""

    flags: tuple[str, ...]
    options: Mapping[str, Any]
    group: str | None = None
    setting: tuple[type, str] | None = None


def arg(*flags: str, group: str | None = None, **options: Any) -> Arg:
    """An argument that is no stage setting (a path, a switch of the command itself)."""
    return Arg(flags, options, group)


def opt(cls: type, name: str, *flags: str, group: str | None = None, **over: Any) -> Arg:
    """The flag of settings field ``cls.name`` (``--name-with-dashes`` unless ``flags``); ``over``
    changes argparse options (help, choices) but never the default."""
    f = settings_fields(cls)[name]
    d = default_of(f)
    options: dict[str, Any] = {"dest": name, "help": f.metadata.get("help")}
    if d is MISSING:
        options["required"] = True
    elif d is False:
        options["action"] = "store_true"
    elif d is not None:
        options["default"] = d
    if f.metadata.get("check"):
        options["type"] = f.metadata["check"]
    if f.metadata.get("choices"):
        options["choices"] = list(f.metadata["choices"])
    if "default" in over:
        raise ValueError(f"--{name}: a setting's default comes from {cls.__name__}.{name}")
    options.update(over)
    if options.get("required"):
        options.pop("default", None)
    return Arg(flags or ("--" + name.replace("_", "-"),), options, group, (cls, name))


Check = tuple[Callable[[argparse.Namespace], bool], str]


@dataclass(frozen=True)
class Command:
    """A subcommand: its arguments, cross-argument checks, what it runs, and ``readme``: the stage
    it is, as ``stage | Snakemake target(s) | function`` for the README's table (empty for tools,
    left out of it)."""

    name: str
    help: str
    run: Callable[[argparse.Namespace], Any]
    readme: str = ""
    args: tuple[Arg, ...] = ()
    checks: tuple[Check, ...] = ()
    defaults: Mapping[str, Any] = field(default_factory=dict)


def command(
    name: str,
    help: str,
    run: Callable[[argparse.Namespace], Any],
    readme: str,
    *args: Arg,
    checks: tuple[Check, ...] = (),
    defaults: Mapping[str, Any] | None = None,
) -> Command:
    """A :class:`Command` with its arguments given in order (one table row per line)."""
    return Command(name, help, run, readme, args, checks, defaults or {})


def call(
    target: str, *positional: str, log_as: str | None = None, settings: type | None = None, **keywords: str
):
    """A command's run: import ``module:function`` and call it with the parsed ``positional`` dests,
    ``keywords`` (parameter=dest) and the fields of ``settings`` (a settings class) as keywords;
    ``log_as``: log the result as ``LABEL: json``."""

    def run(a: argparse.Namespace) -> Any:
        module, _, name = target.partition(":")
        fn = getattr(importlib.import_module(module), name)
        kw = {k: getattr(a, dest) for k, dest in keywords.items()}
        if settings is not None:
            kw.update(dataclasses.asdict(settings.from_namespace(a)))
        result = fn(*(getattr(a, dest) for dest in positional), **kw)
        if log_as:
            log.info("%s: %s", log_as, json.dumps(result, default=str))
        return result

    return run


def parser_of(commands: tuple[Command, ...], **parser_options: Any) -> CheckedParser:
    """The parser of ``commands`` (each dispatches to ``args.func``), with ``-v/--verbose``."""
    p = CheckedParser(**parser_options)
    p.add_argument("-v", "--verbose", action="store_true")
    sub = p.add_subparsers(dest="command", required=True, metavar="STAGE")
    for c in commands:
        s = sub.add_parser(c.name, help=c.help)
        groups: dict[str | None, Any] = {None: s}
        for a in c.args:
            if a.group not in groups:
                groups[a.group] = s.add_argument_group(a.group)
            groups[a.group].add_argument(*a.flags, **a.options)
        for ok, message in c.checks:
            s.require(ok, message)
        s.set_defaults(func=c.run, **c.defaults)
    return p


def three_ways_table(commands: tuple[Command, ...]) -> str:
    """The README's table: per stage its Snakemake target(s), CLI subcommand and function."""
    rows = ["| stage | Snakemake target | CLI | function |", "|---|---|---|---|"]
    for c in commands:
        if c.readme:
            stage, targets, function = (x.strip() for x in c.readme.split(" | "))
            targets = ", ".join(f"`{t}`" for t in targets.split(", ") if t) or "—"
            rows.append(f"| {stage} | {targets} | `intervene {c.name}` | `{function}` |")
    return "\n".join(rows) + "\n"
