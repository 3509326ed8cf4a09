"""Where the endpoint and the key come from: the precedence, the endpoint's form, the profile file."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest

from rotasign_cli import config
from rotasign_cli.errors import AuthError, UsageError


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        ("https://signing.example.com", "https://signing.example.com"),
        ("https://signing.example.com/", "https://signing.example.com"),
        ("https://signing.example.com/api/v1", "https://signing.example.com"),
        ("https://signing.example.com/api/v1/", "https://signing.example.com"),
        ("  http://127.0.0.1:8000/api/v1  ", "http://127.0.0.1:8000"),
        ("https://gw.example.com/prod/api/v1", "https://gw.example.com/prod"),  # an API Gateway stage
    ],
)
def test_an_endpoint_with_or_without_api_v1(given: str, expected: str) -> None:
    assert config.normalize_endpoint(given) == expected


@pytest.mark.parametrize("given", ["127.0.0.1:8000", "signing.example.com", "ftp://example.com", "https://", "x?y"])
def test_an_endpoint_without_scheme_or_host_is_a_usage_error(given: str) -> None:
    with pytest.raises(UsageError, match="is not an http"):
        config.normalize_endpoint(given)


def test_a_query_is_refused() -> None:
    with pytest.raises(UsageError, match="query or fragment"):
        config.normalize_endpoint("https://example.com/?a=b")


def _file(tmp_path: Path) -> dict[str, str]:
    path = tmp_path / "config"
    config.save_profile(path, "default", {"endpoint": "https://file.example", "api_key": "rsk_file_default"})
    config.save_profile(path, "prod", {"endpoint": "https://prod.example", "api_key": "rsk_file_prod"})
    return {"ROTASIGN_CONFIG": str(path)}


def _resolve(env: dict[str, str], endpoint: str | None = None, api_key: str | None = None,
             profile: str | None = None) -> config.Settings:
    return config.resolve(endpoint=endpoint, api_key=api_key, profile=profile, env=env)


def test_the_default_profile_when_nothing_else_is_set(tmp_path: Path) -> None:
    settings = _resolve(_file(tmp_path))
    assert (settings.endpoint, settings.api_key, settings.profile) == (
        "https://file.example", "rsk_file_default", "default")
    assert settings.sources["endpoint"].startswith("profile 'default' in ")


def test_the_environment_beats_the_default_profile(tmp_path: Path) -> None:
    env = {**_file(tmp_path), "ROTASIGN_ENDPOINT": "https://env.example/api/v1", "ROTASIGN_API_KEY": "rsk_env"}
    settings = _resolve(env)
    assert (settings.endpoint, settings.api_key) == ("https://env.example", "rsk_env")
    assert settings.sources == {"endpoint": "ROTASIGN_ENDPOINT", "api_key": "ROTASIGN_API_KEY"}


def test_rotasign_profile_picks_the_profile_but_not_over_the_environment(tmp_path: Path) -> None:
    env = {**_file(tmp_path), "ROTASIGN_PROFILE": "prod", "ROTASIGN_API_KEY": "rsk_env"}
    settings = _resolve(env)
    assert (settings.endpoint, settings.api_key, settings.profile) == ("https://prod.example", "rsk_env", "prod")


def test_an_explicit_profile_beats_the_environment(tmp_path: Path) -> None:
    env = {**_file(tmp_path), "ROTASIGN_ENDPOINT": "https://env.example", "ROTASIGN_API_KEY": "rsk_env"}
    settings = _resolve(env, profile="prod")
    assert (settings.endpoint, settings.api_key) == ("https://prod.example", "rsk_file_prod")


def test_flags_beat_everything(tmp_path: Path) -> None:
    env = {**_file(tmp_path), "ROTASIGN_ENDPOINT": "https://env.example", "ROTASIGN_API_KEY": "rsk_env"}
    settings = _resolve(env, endpoint="https://flag.example/", api_key="rsk_flag", profile="prod")
    assert (settings.endpoint, settings.api_key) == ("https://flag.example", "rsk_flag")
    assert settings.sources == {"endpoint": "--endpoint", "api_key": "--api-key"}


def test_a_profile_missing_a_value_falls_back_to_the_environment(tmp_path: Path) -> None:
    path = tmp_path / "config"
    config.save_profile(path, "ci", {"endpoint": "https://ci.example"})
    settings = _resolve({"ROTASIGN_CONFIG": str(path), "ROTASIGN_API_KEY": "rsk_env"}, profile="ci")
    assert (settings.endpoint, settings.api_key) == ("https://ci.example", "rsk_env")


def test_missing_settings_and_profiles(tmp_path: Path) -> None:
    settings = _resolve({"ROTASIGN_CONFIG": str(tmp_path / "none")})
    assert settings.endpoint is None and settings.api_key is None
    with pytest.raises(UsageError, match="No endpoint"):
        settings.require_endpoint()
    with pytest.raises(AuthError, match="No API key"):
        settings.require_api_key()
    with pytest.raises(UsageError, match="No profile 'prod'"):
        _resolve({"ROTASIGN_CONFIG": str(tmp_path / "none")}, profile="prod")
    with pytest.raises(UsageError, match="Profile names"):
        _resolve({"ROTASIGN_CONFIG": str(tmp_path / "none")}, profile="no spaces")
    with pytest.raises(UsageError, match=r"\(from ROTASIGN_ENDPOINT\)"):
        _resolve({"ROTASIGN_CONFIG": str(tmp_path / "none"), "ROTASIGN_ENDPOINT": "example.com"})


def test_the_file_is_private_and_keeps_other_profiles(tmp_path: Path) -> None:
    path = tmp_path / "deep" / "config"
    config.save_profile(path, "prod", {"endpoint": "https://prod.example", "api_key": "rsk_a_b"})
    config.save_profile(path, "default", {"endpoint": "https://dev.example", "api_key": "rsk_c_d"})
    config.save_profile(path, "prod", {"endpoint": "https://prod2.example", "api_key": "rsk_e_f"})
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    assert config.read_profiles(path) == {
        "default": {"endpoint": "https://dev.example", "api_key": "rsk_c_d"},
        "prod": {"endpoint": "https://prod2.example", "api_key": "rsk_e_f"},
    }
    assert path.read_text().startswith("[default]\n")
    assert [p.name for p in path.parent.iterdir()] == ["config"]  # no temporary file left behind


def test_a_broken_file_is_one_usage_error(tmp_path: Path) -> None:
    path = tmp_path / "config"
    path.write_text("endpoint = before any section\n")
    with pytest.raises(UsageError, match="is not valid"):
        config.read_profiles(path)


def test_the_config_file_location(tmp_path: Path) -> None:
    assert config.config_path({"ROTASIGN_CONFIG": "/etc/rotasign.ini"}) == Path("/etc/rotasign.ini")
    assert config.config_path({"XDG_CONFIG_HOME": "/x"}) == Path("/x/rotasign/config")
    assert config.config_path({}) == Path.home() / ".config" / "rotasign" / "config"


def test_a_masked_key_keeps_only_its_id() -> None:
    assert config.mask_key("rsk_01ABC_secretsecret") == "rsk_01ABC_****"
    assert config.mask_key("something-else") == "****"
