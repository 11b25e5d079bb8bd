"""What `vecpg <command>` accepts, checked before tyro parses: an unknown flag or command
gets one line with a did-you-mean, a value of the wrong type one line naming its field,
and any error box tyro still prints is condensed to one line (`vecpg.cli.main` calls
`check_args`, then `parse`)."""

from __future__ import annotations

import contextlib
import dataclasses
import difflib
import io
import math
import sys
import typing
from typing import Annotated, Any, Literal

import tyro

from vecpg.errors import ConfigError


@dataclasses.dataclass(frozen=True)
class Arg:
    """One command-line argument as tyro builds it from a command's dataclass field."""

    field: str
    kind: Any  # bool, int, float, str, or a tuple of allowed strings (a Literal)
    optional: bool  # also takes None
    many: bool  # a tuple field: --hidden 64 64
    append: bool  # repeatable, one value per use: --grid a --grid b
    positional: bool
    required: bool  # no default

    def describe(self) -> str:
        if isinstance(self.kind, tuple):
            return f"allowed: {', '.join(self.kind)}"
        what = {int: "an integer", float: "a number"}.get(self.kind, "a value")
        return f"must be {what}" + (" or None" if self.optional else "")

    def accepts(self, value: str) -> bool:
        if self.optional and value == "None":
            return True
        if isinstance(self.kind, tuple):
            return value in self.kind
        if self.kind in (int, float):
            try:
                self.kind(value)
            except ValueError:
                return False
        return True


def args_of(flags: type) -> list[Arg]:
    """The arguments of a command's dataclass, typed as tyro parses them."""
    hints = typing.get_type_hints(flags, include_extras=True)
    out = []
    for f in dataclasses.fields(flags):
        t, marks = hints[f.name], ()
        if typing.get_origin(t) is Annotated:
            t, *rest = typing.get_args(t)
            marks = tuple(rest)
        parts = (
            typing.get_args(t) if typing.get_origin(t) in (typing.Union, type(int | None)) else ()
        )
        optional = type(None) in parts
        if optional:
            t = next(a for a in parts if a is not type(None))
        many = typing.get_origin(t) is tuple
        if many:
            t = typing.get_args(t)[0]
        kind = tuple(typing.get_args(t)) if typing.get_origin(t) is Literal else t
        append = tyro.conf.UseAppendAction in marks
        required = f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING
        positional = tyro.conf.Positional in marks
        out.append(Arg(f.name, kind, optional, many, append, positional, required))
    return out


def is_flag(token: str) -> bool:
    """A token argparse reads as an option (a negative number is a value)."""
    if not token.startswith("-") or token == "-":
        return False
    try:
        float(token)
    except ValueError:
        return True
    return False


def check_args(command: str, flags: type, args: list[str]) -> None:
    """One line for what tyro would answer with a box: an unknown flag (with the closest
    ones), a value of the wrong type, a missing value, a stray or missing argument.
    Values tyro accepts but the config refuses are left to the config's own checks."""
    prog = f"vecpg {command}"
    known: dict[str, tuple[Arg, str]] = {}  # every spelling -> (arg, its canonical flag)
    for a in args_of(flags):
        if a.positional:
            continue
        for name in dict.fromkeys([a.field.replace("_", "-"), a.field]):
            known["--" + name] = (a, "--" + a.field.replace("_", "-"))
            if a.kind is bool:  # tyro also takes --no_name
                off = (a, "--no-" + a.field.replace("_", "-"))
                known["--no-" + name] = known["--no_" + name.replace("-", "_")] = off
    positionals = [a for a in args_of(flags) if a.positional]
    loose: list[str] = []
    after_bool: dict[int, tuple[Arg, str]] = {}  # index in loose -> the bool flag before it
    i = 0
    while i < len(args):
        token = args[i]
        i += 1
        if not is_flag(token):
            loose.append(token)
            continue
        name, eq, inline = token.partition("=")
        if name not in known:
            raise ConfigError(unknown_flag(name, prog, known))
        a, canonical = known[name]
        if a.kind is bool:
            if eq:
                raise ConfigError(
                    f"invalid {a.field}={inline!r}: {name} takes no value; give "
                    f"--{a.field.replace('_', '-')} or --no-{a.field.replace('_', '-')}"
                )
            after_bool[len(loose)] = (a, canonical)
            continue
        if eq:
            values = [inline]
        elif a.many and not a.append:
            values = []
            while i < len(args) and not is_flag(args[i]):
                values.append(args[i])
                i += 1
        elif i < len(args) and not is_flag(args[i]):
            values = [args[i]]
            i += 1
        else:
            what = "" if a.kind is str else f" ({a.describe()})"
            raise ConfigError(f"invalid {a.field}: {canonical} needs a value{what}")
        for value in values:
            if not a.accepts(value):
                raise ConfigError(f"invalid {a.field}={value!r}: {a.describe()}")
    check_loose(prog, positionals, loose, after_bool)


def check_loose(
    prog: str, positionals: list[Arg], loose: list[str], after_bool: dict[int, tuple[Arg, str]]
) -> None:
    """The arguments that are no flag's value: the command's positionals, or one line."""
    takes = math.inf if any(a.many for a in positionals) else len(positionals)
    for k, token in enumerate(loose):
        if k < takes:
            continue
        if k in after_bool:
            a, flag = after_bool[k]
            dashed = a.field.replace("_", "-")
            raise ConfigError(
                f"invalid {a.field}={token!r}: {flag} takes no value; give --{dashed} or "
                f"--no-{dashed}"
            )
        raise ConfigError(
            f"unexpected argument {token!r} for `{prog}`; `{prog} --help` lists its flags"
        )
    for a in positionals[len(loose) :]:
        if a.required:
            raise ConfigError(f"invalid {a.field}: missing; give it: {prog} {a.field.upper()}")


def unknown_flag(name: str, prog: str, known: dict[str, tuple[Arg, str]]) -> str:
    from vecpg.run.launch import GRID_ALIASES

    alias = GRID_ALIASES.get(name.lstrip("-").replace("-", "_"))
    canonical = sorted({flag for _, flag in known.values()})
    close = ["--" + alias.replace("_", "-")] if alias else []
    close = close or difflib.get_close_matches(name, canonical, n=2)
    hint = f" (did you mean {' or '.join(close)}?)" if close else ""
    return f"unknown flag {name} for `{prog}`{hint}; `{prog} --help` lists its flags"


def parse(flags: type, args: list[str], prog: str, default: Any) -> Any:
    """tyro's parse with its error boxes condensed to one line (check_args answers the
    common mistakes first, in vecpg's words); --help prints tyro's full help."""
    err = io.StringIO()
    try:
        with contextlib.redirect_stderr(err):
            cmd = tyro.cli(flags, args=args, prog=prog, default=default)
    except SystemExit as e:
        if e.code not in (0, None):
            raise ConfigError(condense(err.getvalue(), prog)) from None
        sys.stderr.write(err.getvalue())
        raise
    sys.stderr.write(err.getvalue())
    return cmd


def condense(box: str, prog: str) -> str:
    """The first section of a tyro error box as one line."""
    lines = [ln.strip().strip("│╭╮╰╯").strip(" ─") for ln in box.splitlines()]
    body: list[str] = []
    for ln in lines[1:]:
        if not ln:
            if body:
                break
            continue
        body.append(ln)
    text = " ".join(body) or lines[0] if lines else "cannot parse the arguments"
    return f"{text.rstrip('.')}; `{prog} --help` lists its flags"
