"""Paginated lists shown as tables: `keypair ls`, `keypair generations`, `logs ...`."""

from __future__ import annotations

import argparse
from typing import Any

from rotasign_cli.context import Context
from rotasign_cli.output import Column, note, print_json, render_table


def show_list(
    ctx: Context, path: str, filters: dict[str, Any], args: argparse.Namespace, columns: tuple[Column, ...], noun: str
) -> None:
    """Fetch up to --limit (or --all) items and print them as a table or JSON; note when more exist."""
    limit = None if args.all else args.limit
    # One item more than the limit tells whether to say that there are more.
    items = list(ctx.client().pages(path, filters, None if limit is None else limit + 1))
    more = limit is not None and len(items) > limit
    items = items[:limit] if limit is not None else items
    if ctx.json:
        print_json(items)
        return
    if not items:
        note(f"No {noun}.")
        return
    print(render_table(columns, items))
    if more:
        note(f"Showing the first {limit} {noun}; use --limit N or --all for more.")
