"""Where the endpoint and the API key come from: flags, the environment, the config file's profiles.

Precedence for each value: the `--endpoint` / `--api-key` flags; then, when `--profile` is given on
the command line, that profile's value; then `ROTASIGN_ENDPOINT` / `ROTASIGN_API_KEY`; then the
profile named by `ROTASIGN_PROFILE` (or `default`). An explicit `--profile` outranks the environment,
as AWS's CLI does for credentials, so an exported key never pairs itself with another profile's
endpoint.

The file is INI, one section per profile, written with mode 0600 because it holds API keys:

    [default]
    endpoint = https://signing.example.com
    api_key = rsk_...
"""

from __future__ import annotations

import configparser
import io
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

from rotasign_cli.errors import AuthError, UsageError
from rotasign_cli.files import write_atomically

DEFAULT_PROFILE = "default"
API_PREFIX = "/api/v1"
PROFILE_NAME = re.compile(r"[A-Za-z0-9._-]{1,64}")
KEYS = ("endpoint", "api_key")


def config_path(env: Mapping[str, str]) -> Path:
    """The config file: `$ROTASIGN_CONFIG`, else `$XDG_CONFIG_HOME/rotasign/config`, else `~/.config/...`."""
    if env.get("ROTASIGN_CONFIG"):
        return Path(env["ROTASIGN_CONFIG"]).expanduser()
    base = Path(env["XDG_CONFIG_HOME"]) if env.get("XDG_CONFIG_HOME") else Path.home() / ".config"
    return base / "rotasign" / "config"


def normalize_endpoint(value: str) -> str:
    """The service's base URL without a trailing `/` or `/api/v1`; raises UsageError for a URL without scheme."""
    text = value.strip()
    parts = urlsplit(text)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise UsageError(
            f"The endpoint {text!r} is not an http(s) URL: give it with its scheme, "
            "e.g. https://signing.example.com or http://127.0.0.1:8000."
        )
    if parts.query or parts.fragment:
        raise UsageError(f"The endpoint {text!r} must not have a query or fragment.")
    path = parts.path.rstrip("/")
    if path.endswith(API_PREFIX):
        path = path[: -len(API_PREFIX)]
    return urlunsplit((parts.scheme, parts.netloc, path.rstrip("/"), "", ""))


def check_profile_name(name: str) -> str:
    """The name itself; raises UsageError unless it is 1..64 of `[A-Za-z0-9._-]`."""
    if not PROFILE_NAME.fullmatch(name):
        raise UsageError(f"Profile names are 1 to 64 of A-Z a-z 0-9 . _ - (got {name!r}).")
    return name


def read_profiles(path: Path) -> dict[str, dict[str, str]]:
    """Every profile in the file (empty when there is no file); raises UsageError for a broken file."""
    parser = configparser.ConfigParser(interpolation=None, default_section="__none__")
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return {}
    except OSError as exc:
        raise UsageError(f"Cannot read the config file {path}: {exc.strerror}.") from exc
    try:
        parser.read_string(text, source=str(path))
    except configparser.Error as exc:
        first_line = str(exc).splitlines()[0]
        raise UsageError(f"The config file {path} is not valid: {first_line}") from exc
    return {name: {k: v for k, v in parser[name].items() if k in KEYS} for name in parser.sections()}


def save_profile(path: Path, name: str, values: Mapping[str, str]) -> None:
    """Write one profile into the file (others kept), atomically and with mode 0600."""
    profiles = read_profiles(path)
    profiles[check_profile_name(name)] = {k: values[k] for k in KEYS if values.get(k)}
    parser = configparser.ConfigParser(interpolation=None, default_section="__none__")
    for section in sorted(profiles, key=lambda n: (n != DEFAULT_PROFILE, n)):
        parser[section] = profiles[section]
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    text = io.StringIO()
    parser.write(text)
    write_atomically(path, text.getvalue().encode("utf-8"), mode=0o600)


@dataclass(frozen=True)
class Settings:
    """The resolved endpoint and key, and where each came from (for `healthcheck`)."""

    endpoint: str | None
    api_key: str | None
    profile: str
    config_file: Path
    sources: dict[str, str] = field(default_factory=dict)

    def require_endpoint(self) -> str:
        """The endpoint; raises UsageError when none is configured."""
        if not self.endpoint:
            raise UsageError(
                "No endpoint: pass --endpoint, set ROTASIGN_ENDPOINT, or run `rotasign configure`."
            )
        return self.endpoint

    def require_api_key(self) -> str:
        """The API key; raises AuthError when none is configured."""
        if not self.api_key:
            raise AuthError("No API key: pass --api-key, set ROTASIGN_API_KEY, or run `rotasign configure`.")
        return self.api_key


def resolve(
    *,
    endpoint: str | None,
    api_key: str | None,
    profile: str | None,
    env: Mapping[str, str],
) -> Settings:
    """Resolve the settings by the precedence above; raises UsageError for a bad endpoint or profile."""
    path = config_path(env)
    explicit = profile is not None
    name = check_profile_name(profile or env.get("ROTASIGN_PROFILE") or DEFAULT_PROFILE)
    profiles = read_profiles(path)
    if explicit and name not in profiles:
        raise UsageError(f"No profile {name!r} in {path}: create it with `rotasign configure --profile {name}`.")
    stored = profiles.get(name, {})
    flags = {"endpoint": endpoint, "api_key": api_key}
    env_values = {"endpoint": env.get("ROTASIGN_ENDPOINT"), "api_key": env.get("ROTASIGN_API_KEY")}
    env_names = {"endpoint": "ROTASIGN_ENDPOINT", "api_key": "ROTASIGN_API_KEY"}
    chosen: dict[str, str | None] = {}
    sources: dict[str, str] = {}
    for key in KEYS:
        candidates = [(flags[key], f"--{key.replace('_', '-')}")]
        profile_source = f"profile {name!r} in {path}"
        if explicit:
            candidates += [(stored.get(key), profile_source), (env_values[key], env_names[key])]
        else:
            candidates += [(env_values[key], env_names[key]), (stored.get(key), profile_source)]
        value, source = next(((v, s) for v, s in candidates if v), (None, "not set"))
        chosen[key] = value
        sources[key] = source
    endpoint_value = chosen["endpoint"]
    if endpoint_value:
        try:
            endpoint_value = normalize_endpoint(endpoint_value)
        except UsageError as exc:
            raise UsageError(f"{exc.message} (from {sources['endpoint']})") from exc
    key_value = chosen["api_key"].strip() if chosen["api_key"] else None
    return Settings(endpoint_value, key_value, name, path, sources)


def mask_key(key: str) -> str:
    """An API key with its secret hidden: `rsk_<key id>_****` (the key id is not secret)."""
    parts = key.split("_")
    if len(parts) >= 3 and parts[0] == "rsk":
        return f"rsk_{parts[1]}_****"
    return "****"
