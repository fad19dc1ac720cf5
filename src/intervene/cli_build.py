"""The ``intervene`` parser, built from a table of subcommands (:class:`Command`).

A flag that is a stage setting is declared by naming its field (:func:`opt`): its default, range
check, choices and help come from :mod:`intervene.settings`, so the CLI cannot drift from the
workflow's defaults. Flags that are no setting (input and output paths) are declared as argparse
would take them (:func:`arg`). The same table renders the README's "three ways" table
(:func:`three_ways_table`). Hand-written rather than a CLI library's: argparse is what the range
checks (:mod:`intervene.cli_types`) and the tests already speak, and the builder is 100 lines.

A command with setting flags also takes ``--settings JSON``: a whole config section (its
:attr:`Command.section` class, e.g. the resolved ``experiment.bootstrap`` inside an effect's
settings) in one argument, so that a rule passes its section instead of a list of flags. Each key
becomes its flag's text ahead of the explicit flags, so an explicit flag overrides it and argparse
range-checks it as it would the flag; a key that is no field of the section is an error naming
it; fields this command has no flag for are read by other commands of the same section (the
``eval`` section serves ``eval`` and ``labels``) and are checked, then skipped.
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
from intervene.settings import SettingsError, checked_value, default_of, settings_fields

log = logging.getLogger("intervene")


@dataclass(frozen=True)
class Arg:
    """One argument: argparse's flags and options; ``group``: an argument group's title;
    ``setting``: the (settings class, field) it stands for."""

    flags: tuple[str, ...]
    options: Mapping[str, Any]
    group: str | None = None
    setting: tuple[type, str] | None = None
    #: the flag's text of a ``--settings`` value that is no plain string or number (a list, a dict)
    to_text: Callable[[Any], str | list[str]] | None = None
    #: an argument that is no setting flag but takes a settings field in another form
    key: tuple[type, str] | None = None


def arg(
    *flags: str,
    group: str | None = None,
    key: tuple[type, str] | None = None,
    to_text: Callable[[Any], str | list[str]] | None = None,
    **options: Any,
) -> Arg:
    """An argument that is no stage setting (a path, a switch of the command itself); ``key``: the
    settings field a ``--settings`` key fills it from (``to_text``: the value's flag text), for a
    flag that takes the field in another form (``--tasks a,b`` for the list ``tasks``)."""
    return Arg(flags, options, group, None, to_text, key)


def opt(
    cls: type,
    name: str,
    *flags: str,
    group: str | None = None,
    to_text: Callable[[Any], str | list[str]] | None = None,
    **over: Any,
) -> Arg:
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
    return Arg(flags or ("--" + name.replace("_", "-"),), options, group, (cls, name), to_text)


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
    #: the settings class whose section ``--settings`` takes (default: the first setting flag's)
    section: type | None = None

    @property
    def settings_class(self) -> type | None:
        if self.section is not None:
            return self.section
        return next((a.setting[0] for a in self.args if a.setting is not None), None)


def command(
    name: str,
    help: str,
    run: Callable[[argparse.Namespace], Any],
    readme: str,
    *args: Arg,
    checks: tuple[Check, ...] = (),
    defaults: Mapping[str, Any] | None = None,
    section: type | None = None,
) -> Command:
    """A :class:`Command` with its arguments given in order (one table row per line)."""
    return Command(name, help, run, readme, args, checks, defaults or {}, section)


SETTINGS_FLAG = "--settings"


def settings_argv(c: Command, text: str) -> list[str]:
    """The flags a ``--settings`` JSON section stands for (in the section's key order); a key that
    is no field of the section or a value out of range: :class:`SettingsError` naming the key."""
    try:
        d = json.loads(text)
    except json.JSONDecodeError as e:
        raise SettingsError(f"{SETTINGS_FLAG}: not JSON ({e})") from None
    bound = {a.setting or a.key: a for a in c.args if (a.setting or a.key) is not None}
    out: list[str] = []
    _section_argv(c.settings_class, d, "", bound, out)
    return out


def _section_argv(cls: type, d: Any, where: str, bound: dict, out: list[str]) -> None:
    if not isinstance(d, dict):
        raise SettingsError(f"{SETTINGS_FLAG}: {where or 'the value'} is not a JSON object")
    fields = settings_fields(cls)
    prefix = f"{where}." if where else ""
    for k, v in d.items():
        f = fields.get(k)
        if f is None:
            raise SettingsError(f"{SETTINGS_FLAG}: {prefix}{k}: unknown key (known: {', '.join(fields)})")
        sub = f.metadata.get("section")
        if sub is not None:
            if v is not None:
                _section_argv(sub, v, prefix + k, bound, out)
            continue
        v = checked_value(f, v, f"{SETTINGS_FLAG}: {prefix}{k}")
        a = bound.get((cls, k))
        if a is not None and v is not None:
            out += _flag_text(a, v, f"{prefix}{k}")


def _flag_text(a: Arg, v: Any, key: str) -> list[str]:
    """``v`` as argv words of flag ``a``: a switch when true, else the flag and its text."""
    flag = a.flags[-1] if a.flags[-1].startswith("--") else a.flags[0]
    if a.options.get("action") == "store_true":
        return [flag] if v else []
    if a.to_text is not None:
        text = a.to_text(v)  # a list: whole argv words (a dict of sources -> --pararel P --sciq S)
        return list(text) if isinstance(text, list) else [flag, text]
    if isinstance(v, bool) or not isinstance(v, (str, int, float)):
        raise SettingsError(f"{SETTINGS_FLAG}: {key}: {v!r} has no text form for {flag}")
    return [flag, str(v)]


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


class SettingsParser(CheckedParser):
    """A parser whose ``--settings JSON`` stands for the flags of its keys, put ahead of the
    explicit arguments (so those win, argparse keeping a flag's last value)."""

    expand_settings: Callable[[str], list[str]] | None = None

    def parse_known_args(self, args=None, namespace=None):
        if self.expand_settings is not None and args is not None:
            args, texts = _split_settings(list(args))
            if len(texts) > 1:
                self.error(f"{SETTINGS_FLAG} given {len(texts)} times")
            if texts:
                try:
                    args = self.expand_settings(texts[0]) + args
                except SettingsError as e:
                    self.error(str(e))
        return super().parse_known_args(args, namespace)


def _split_settings(args: list[str]) -> tuple[list[str], list[str]]:
    """``args`` without ``--settings X`` / ``--settings=X``, and the Xs."""
    rest, texts, i = [], [], 0
    while i < len(args):
        a = args[i]
        if a == SETTINGS_FLAG and i + 1 < len(args):
            texts.append(args[i + 1])
            i += 2
            continue
        if a.startswith(SETTINGS_FLAG + "="):
            texts.append(a.split("=", 1)[1])
        else:
            rest.append(a)
        i += 1
    return rest, texts


def parser_of(commands: tuple[Command, ...], **parser_options: Any) -> CheckedParser:
    """The parser of ``commands`` (each dispatches to ``args.func``), with ``-v/--verbose``."""
    p = SettingsParser(**parser_options)
    p.add_argument("-v", "--verbose", action="store_true")
    sub = p.add_subparsers(dest="command", required=True, metavar="STAGE")
    for c in commands:
        s = sub.add_parser(c.name, help=c.help)
        if c.settings_class is not None:
            s.add_argument(
                SETTINGS_FLAG,
                metavar="JSON",
                help=f"the {c.settings_class.__name__} section as one JSON object (explicit flags win)",
            )
            s.expand_settings = lambda text, c=c: settings_argv(c, text)
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
