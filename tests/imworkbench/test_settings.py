"""WORKBENCH_* environment variables: defaults, parsing and every bad value (SPEC §10)."""

from __future__ import annotations

import os
import stat

import pytest
from pydantic import ValidationError

from imworkbench.settings import Settings


def test_defaults():
    """With nothing set: embedded SQLite, in-process broker, any CORS origin, port 8000."""
    settings = Settings(_env_file=None)
    assert settings.database_url == "sqlite+aiosqlite:///./workbench.db"
    assert settings.broker_url == "memory://"
    assert settings.cors_origins == ["*"]
    assert (settings.host, settings.port) == ("127.0.0.1", 8000)
    assert (settings.keep_alive_timeout, settings.db_busy_timeout_ms) == (75.0, 30_000)


def test_environment_is_read(monkeypatch):
    """Variables with the WORKBENCH_ prefix configure the service."""
    monkeypatch.setenv("WORKBENCH_DATABASE_URL", "postgresql+asyncpg://u@db/wb")
    monkeypatch.setenv("WORKBENCH_CORS_ORIGINS", "https://a.example, https://b.example")
    monkeypatch.setenv("WORKBENCH_PORT", "9000")
    settings = Settings()
    assert settings.database_url == "postgresql+asyncpg://u@db/wb"
    assert settings.cors_origins == ["https://a.example", "https://b.example"]
    assert settings.port == 9000


def test_cors_origins_as_json_list(monkeypatch):
    """WORKBENCH_CORS_ORIGINS also takes a JSON list."""
    monkeypatch.setenv("WORKBENCH_CORS_ORIGINS", '["https://a.example"]')
    assert Settings().cors_origins == ["https://a.example"]


@pytest.mark.parametrize(
    ("variable", "value", "message"),
    [
        ("WORKBENCH_DATABASE_URL", "mysql://x/y", "sqlite+aiosqlite"),
        ("WORKBENCH_DATABASE_URL", "sqlite:///plain.db", "sqlite+aiosqlite"),
        ("WORKBENCH_BROKER_URL", "kafka://x", "memory://"),
        ("WORKBENCH_JWT_SECRET", "short", "at least 32"),
        ("WORKBENCH_PORT", "0", "greater than or equal to 1"),
        ("WORKBENCH_PORT", "70000", "less than or equal to 65535"),
        ("WORKBENCH_PORT", "eighty", "valid integer"),
        ("WORKBENCH_DEBUG", "maybe", "valid boolean"),
        ("WORKBENCH_CORS_ORIGINS", "[not json", "Expecting value"),
        ("WORKBENCH_LEGACY_MAX_BODY_BYTES", "10", "greater than or equal to 1024"),
        ("WORKBENCH_WS_CONNECTION_INIT_TIMEOUT", "0", "greater than 0"),
        ("WORKBENCH_WS_MESSAGES_PER_SECOND", "0", "greater than 0"),
        ("WORKBENCH_WS_MESSAGES_PER_SECOND", "-1", "greater than 0"),
        ("WORKBENCH_WS_MESSAGES_PER_SECOND", "fast", "valid number"),
        ("WORKBENCH_WS_MESSAGE_BURST", "0", "greater than or equal to 1"),
        ("WORKBENCH_WS_MESSAGE_BURST", "1.5", "valid integer"),
    ],
)
def test_bad_values_are_refused(monkeypatch, variable, value, message):
    """Each invalid variable is refused with a message naming the rule."""
    monkeypatch.setenv(variable, value)
    with pytest.raises((ValidationError, ValueError)) as raised:
        Settings()
    assert message in str(raised.value)


def test_generated_secret_is_kept_private(tmp_path):
    """Without a configured secret, one is generated once, mode 0600, and reused."""
    settings = Settings(jwt_secret_file=tmp_path / "dir" / "secret")
    first = settings.secret_key()
    assert len(first) >= 32
    assert settings.secret_key() == first
    mode = stat.S_IMODE(os.stat(tmp_path / "dir" / "secret").st_mode)
    assert mode == 0o600


def test_short_kept_secret_is_refused(tmp_path):
    """A secret file holding fewer than 32 characters is refused."""
    path = tmp_path / "secret"
    path.write_text("tiny")
    path.chmod(0o600)
    with pytest.raises(ValueError, match="at least 32"):
        Settings(jwt_secret_file=path).secret_key()


def test_configured_secret_wins(tmp_path):
    """WORKBENCH_JWT_SECRET is used as is and no file is written."""
    key = "0123456789abcdefghijklmnopqrstuvwxyz"
    settings = Settings(jwt_secret=key, jwt_secret_file=tmp_path / "secret")
    assert settings.secret_key() == key
    assert not (tmp_path / "secret").exists()


def test_unknown_variables_are_reported_with_a_suggestion():
    """A misspelt WORKBENCH_ variable is reported, with the closest real name."""
    environ = {
        "WORKBENCH_DATABSE_URL": "x",
        "WORKBENCH_PORT": "1",
        "WORKBENCH_TEST_DATABASE": "sqlite",
        "PATH": "/bin",
    }
    assert Settings.unknown_variables(environ) == [
        "WORKBENCH_DATABSE_URL: unknown setting (did you mean WORKBENCH_DATABASE_URL?)"
    ]


@pytest.mark.parametrize(
    ("variable", "value", "message"),
    [
        ("WORKBENCH_HOST", "", "must name an interface"),
        ("WORKBENCH_HOST", "   ", "must name an interface"),
        ("WORKBENCH_JWT_SECRET", " " * 40, "distinct characters"),
        ("WORKBENCH_JWT_SECRET", "ab" * 20, "distinct characters"),
        ("WORKBENCH_JWT_SECRET", " " + "0123456789abcdefghijklmnopqrstuvwxyz", "padded"),
        ("WORKBENCH_WS_CONNECTION_INIT_TIMEOUT", "inf", "less than or equal to 300"),
        ("WORKBENCH_WS_CONNECTION_INIT_TIMEOUT", "1e308", "less than or equal to 300"),
        ("WORKBENCH_CORS_ORIGINS", '{"a": 1}', "is not an origin"),
        ("WORKBENCH_CORS_ORIGINS", '["https://a.example", 5]', "list of strings"),
        ("WORKBENCH_CORS_ORIGINS", "https://a.example/path", "is not an origin"),
        ("WORKBENCH_PUBLIC_URL", "im.example.com", "absolute http"),
        ("WORKBENCH_MAX_SUBSCRIPTIONS_PER_CONNECTION", "0", "greater than or equal to 1"),
        (
            "WORKBENCH_INTROSPECTION",
            "admins",
            "'everyone', 'authenticated', 'administrators' or 'nobody'",
        ),
        ("WORKBENCH_INTROSPECTION", "Nobody", "'everyone', 'authenticated', 'administrators'"),
        ("WORKBENCH_INTROSPECTION", "", "'everyone', 'authenticated', 'administrators'"),
        ("WORKBENCH_KEEP_ALIVE_TIMEOUT", "0.5", "greater than or equal to 1"),
        ("WORKBENCH_KEEP_ALIVE_TIMEOUT", "inf", "less than or equal to 3600"),
        ("WORKBENCH_KEEP_ALIVE_TIMEOUT", "soon", "valid number"),
        ("WORKBENCH_DB_BUSY_TIMEOUT_MS", "0", "greater than or equal to 1"),
        ("WORKBENCH_DB_BUSY_TIMEOUT_MS", "3600001", "less than or equal to 3600000"),
    ],
)
def test_more_bad_values_are_refused(monkeypatch, variable, value, message):
    """Empty hosts, weak secrets, unbounded timeouts and non-origins are refused."""
    monkeypatch.setenv(variable, value)
    with pytest.raises(ValidationError, match=message):
        Settings()


@pytest.mark.parametrize(
    ("setup", "message"),
    [
        (
            lambda p: (p.write_text("k" * 10 + "0123456789abcdefghijklmnop"), p.chmod(0o644)),
            "readable by others",
        ),
        (lambda p: p.mkdir(), "not a regular file"),
        (lambda p: (p.write_bytes(b"\xff" * 40), p.chmod(0o600)), "cannot read"),
        (lambda p: (p.write_text(" " * 40), p.chmod(0o600)), "at least 32"),
    ],
    ids=["world-readable", "directory", "not text", "blank"],
)
def test_unusable_key_files_are_refused(tmp_path, setup, message):
    """A key file others can read, a directory, binary or blank content is never a key."""
    path = tmp_path / "secret"
    setup(path)
    with pytest.raises(ValueError, match=message):
        Settings(jwt_secret_file=path).secret_key()


def test_public_url_drops_the_trailing_slash():
    """WORKBENCH_PUBLIC_URL is kept without a trailing slash."""
    assert Settings(public_url="https://im.example.com/").public_url == "https://im.example.com"
