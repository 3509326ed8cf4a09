"""What the administration nouns share: a noun's and a verb's parser, a list, one object shown, a confirmed delete."""

from __future__ import annotations

import argparse
from collections.abc import Callable, Sequence
from typing import Any

from rotasign_cli.arguments import add_connection_options, add_json_option, confirm, example, subcommands
from rotasign_cli.client import segment
from rotasign_cli.commands.listing import show_list
from rotasign_cli.context import Context
from rotasign_cli.errors import UsageError
from rotasign_cli.output import Column, print_json, render_fields


def noun(sub: Any, name: str, help_text: str, description: str, sample: str) -> Any:
    """A noun's parser with the connection options and one example; returns its verbs."""
    parser = sub.add_parser(name, help=help_text, description=description, epilog=example(sample))
    add_connection_options(parser)
    return subcommands(parser, f"{name} commands")


def leaf(verbs: Any, name: str, help_text: str, description: str, sample: str,
         func: Callable[[argparse.Namespace, Context], int], aliases: Sequence[str] = ()) -> Any:
    """A verb's parser with the connection options, `--json`, one example and its function."""
    parser = verbs.add_parser(name, help=help_text, description=description, epilog=example(sample),
                              aliases=list(aliases))
    add_connection_options(parser)
    add_json_option(parser)
    parser.set_defaults(func=func)
    return parser


def body_of(values: dict[str, Any]) -> dict[str, Any]:
    """The fields given on the command line (None: not given)."""
    return {name: value for name, value in values.items() if value is not None}


def require_change(body: dict[str, Any], command: str, flags: str) -> dict[str, Any]:
    """The body itself; raises UsageError when it changes nothing."""
    if not body:
        raise UsageError(f"{command}: nothing to change: give {flags}.")
    return body


def ls(args: argparse.Namespace, ctx: Context, path: str, columns: tuple[Column, ...], plural: str) -> int:
    """GET the list at `path` as a table of `plural` (`--limit`, `--all`, `--json`)."""
    show_list(ctx, path, {}, args, columns, plural)
    return 0


def desc(ctx: Context, path: str, ident: str, pairs: Callable[[dict[str, Any]], Sequence[tuple[str, Any]]]) -> int:
    """GET `path`/`ident` and show its fields."""
    item = ctx.client().call("GET", f"{path}/{segment(ident)}")
    show(ctx, item, pairs(item))
    return 0


def show(ctx: Context, item: dict[str, Any], pairs: Sequence[tuple[str, Any]], line: str | None = None) -> None:
    """`--json`: the object; otherwise `line` when given (after a change), else the fields as a table."""
    if ctx.json:
        print_json(item)
    elif line is not None:
        print(line)
    else:
        print(render_fields(pairs))


def delete(args: argparse.Namespace, ctx: Context, noun: str, path: str, ident: str, consequence: str, *,
           name_field: str = "name", also: str = "") -> int:
    """GET the object (so that the question names it by `name_field`), ask unless --yes, DELETE, say so in
    one line; `also` ends the question (what else the deletion does)."""
    client = ctx.client()
    item = client.call("GET", f"{path}/{segment(ident)}")
    label = f"{item.get(name_field)} ({item.get('id')})"
    if not confirm(f"Delete {noun} {label}{also}?", assume_yes=args.yes):
        raise UsageError("Not deleted.")
    client.call("DELETE", f"{path}/{segment(str(item['id']))}")
    if ctx.json:
        print_json({"deleted": item["id"], name_field: item.get(name_field)})
    else:
        print(f"Deleted {noun} {label}{consequence}.")
    return 0


def add_yes(parser: argparse.ArgumentParser) -> None:
    """`--yes`: do not ask for confirmation."""
    parser.add_argument("--yes", "-y", action="store_true", help="do not ask for confirmation")
