"""What a command runs with: its parsed arguments, the resolved settings and an API client."""

from __future__ import annotations

import argparse
from collections.abc import Mapping
from functools import cached_property

from rotasign_cli import config
from rotasign_cli.client import Client


class Context:
    """Settings are resolved on first use, so `--help` and usage errors never read the config file."""

    def __init__(self, args: argparse.Namespace, env: Mapping[str, str]) -> None:
        self.args = args
        self.env = env

    @cached_property
    def settings(self) -> config.Settings:
        """Endpoint and key by the precedence in `config`; raises UsageError for a bad one."""
        return config.resolve(
            endpoint=getattr(self.args, "endpoint", None),
            api_key=getattr(self.args, "api_key", None),
            profile=getattr(self.args, "profile", None),
            env=self.env,
        )

    def client(self, *, authenticated: bool = True) -> Client:
        """A client of the configured endpoint; raises UsageError / AuthError when a setting is missing."""
        endpoint = self.settings.require_endpoint()
        key = self.settings.require_api_key() if authenticated else self.settings.api_key
        return Client(endpoint, key)

    @property
    def json(self) -> bool:
        """Whether the command prints machine output."""
        return bool(getattr(self.args, "json", False))
