"""The ``workbench`` command: migrate, demo, token, schema, and its refusals (SPEC §10)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from resolvers.identity import Role
from resolvers.tokens import TokenCodec
from tests.factories import JWT_SECRET, TIMEOUT

BIN = Path(sys.executable).parent / "workbench"


def run(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    """Run the command with ``env``; returns the finished process."""
    return subprocess.run(
        [str(BIN), *args], env=env, capture_output=True, text=True, timeout=TIMEOUT * 12
    )


@pytest.fixture
def env(tmp_path: Path) -> dict[str, str]:
    """A clean environment: a fresh SQLite file and a known secret."""
    base = {k: v for k, v in os.environ.items() if not k.startswith("WORKBENCH_")}
    return {
        **base,
        "WORKBENCH_DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path / 'cli.db'}",
        "WORKBENCH_JWT_SECRET": JWT_SECRET,
    }


def test_migrate_is_idempotent(env):
    """`migrate` creates the schema and can run again."""
    for _ in range(2):
        done = run("migrate", env=env)
        assert done.returncode == 0, done.stderr
        assert "newest revision" in done.stdout


def test_demo_loads_once(env):
    """`demo` creates six apps, and a second run creates none."""
    run("migrate", env=env)
    first = run("demo", env=env)
    second = run("demo", env=env)
    assert first.returncode == second.returncode == 0
    assert first.stdout.count("(created)") == 6
    assert second.stdout.count("(exists)") == 6
    assert "appkey" in first.stdout


def test_demo_needs_a_migrated_database(env):
    """`demo` on an empty database says to migrate first."""
    done = run("demo", env=env)
    assert done.returncode != 0
    assert "workbench migrate" in done.stderr


def test_token_is_signed_with_the_configured_secret(env):
    """`token` prints a JWT that verifies with WORKBENCH_JWT_SECRET and carries the options."""
    done = run(
        "token",
        "--cid",
        "1001",
        "--uid",
        "187",
        "--role",
        "enterprise_admin",
        "--account",
        "li.si",
        env=env,
    )
    assert done.returncode == 0, done.stderr
    principal = TokenCodec(JWT_SECRET).verify(done.stdout.strip())
    assert (principal.cid, principal.uid, principal.role, principal.account) == (
        1001,
        187,
        Role.ENTERPRISE_ADMIN,
        "li.si",
    )


def test_token_without_secret_uses_the_kept_file(env, tmp_path):
    """Without WORKBENCH_JWT_SECRET, `token` creates the secret file that `serve` will read."""
    del env["WORKBENCH_JWT_SECRET"]
    env["WORKBENCH_JWT_SECRET_FILE"] = str(tmp_path / "kept" / "secret")
    done = run("token", "--cid", "1", "--uid", "2", env=env)
    assert done.returncode == 0, done.stderr
    key = (tmp_path / "kept" / "secret").read_text().strip()
    assert TokenCodec(key).verify(done.stdout.strip()).uid == 2


def test_vendor_token_needs_app_id(env):
    """A vendor token without --app-id is refused; with it, the claim is set."""
    refused = run("token", "--cid", "1", "--uid", "2", "--role", "vendor", env=env)
    assert refused.returncode == 2
    assert "--app-id" in refused.stderr
    done = run("token", "--cid", "1", "--uid", "2", "--role", "vendor", "--app-id", "77", env=env)
    assert TokenCodec(JWT_SECRET).verify(done.stdout.strip()).app_id == 77


@pytest.mark.parametrize(
    "args",
    [
        ("--cid", "abc", "--uid", "1"),
        ("--cid", "1", "--uid", "-1"),
        ("--cid", "1", "--uid", "99999999999999999999"),
        ("--cid", "1", "--uid", "1", "--role", "root"),
        ("--cid", "1", "--uid", "1", "--ttl", "5"),
        ("--cid", "1", "--uid", "1", "--role", "vendor", "--app-id", "x"),
        ("--uid", "1"),
        ("--cid", "²", "--uid", "1"),
        ("--cid", "١٠", "--uid", "1"),
        ("--cid", "1", "--uid", "1", "--app-id", "5"),
        ("--cid", "1", "--uid", "1", "--account", "two\nlines"),
        ("--cid", "1", "--uid", "1", "--account", "x" * 65),
    ],
)
def test_token_bad_arguments(env, args):
    """Bad ids, roles or lifetimes are refused with usage status 2."""
    done = run("token", *args, env=env)
    assert done.returncode == 2
    assert done.stdout == ""


@pytest.mark.parametrize(
    ("variable", "value", "expected"),
    [
        ("WORKBENCH_DATABASE_URL", "mysql://x/y", "WORKBENCH_DATABASE_URL"),
        ("WORKBENCH_JWT_SECRET", "short", "WORKBENCH_JWT_SECRET"),
        ("WORKBENCH_PORT", "0", "WORKBENCH_PORT"),
        ("WORKBENCH_DATABSE_URL", "x", "did you mean WORKBENCH_DATABASE_URL"),
        ("WORKBENCH_PUSH_GATEWAY", "sms", "WORKBENCH_PUSH_GATEWAY"),
        ("WORKBENCH_PUSH_GATEWAY", "webhook", "needs WORKBENCH_PUSH_WEBHOOK_URL"),
        ("WORKBENCH_PUSH_WEBHOOK_URL", "ftp://push.example.com/", "WORKBENCH_PUSH_WEBHOOK_URL"),
        ("WORKBENCH_PUSH_WEBHOOK_SECRET", "short", "WORKBENCH_PUSH_WEBHOOK_SECRET"),
        ("WORKBENCH_PUSH_MAX_ATTEMPTS", "0", "WORKBENCH_PUSH_MAX_ATTEMPTS"),
        ("WORKBENCH_PUSH_COALESCE_SECONDS", "-1", "WORKBENCH_PUSH_COALESCE_SECONDS"),
        ("WORKBENCH_SSO_TICKET_TTL_SECONDS", "5", "WORKBENCH_SSO_TICKET_TTL_SECONDS"),
        ("WORKBENCH_APP_SECRET_GRACE_SECONDS", "x", "WORKBENCH_APP_SECRET_GRACE_SECONDS"),
        ("WORKBENCH_BROKER_URL", "redis://h/0/extra", "WORKBENCH_BROKER_URL"),
        ("WORKBENCH_MULTI_INSTANCE", "true", "WORKBENCH_MULTI_INSTANCE=true needs"),
        ("WORKBENCH_LOG_FORMAT", "xml", "WORKBENCH_LOG_FORMAT"),
        ("WORKBENCH_LOG_LEVEL", "LOUD", "WORKBENCH_LOG_LEVEL"),
        ("WORKBENCH_WS_PING_INTERVAL", "0", "WORKBENCH_WS_PING_INTERVAL"),
        ("WORKBENCH_WS_PING_TIMEOUT", "-1", "WORKBENCH_WS_PING_TIMEOUT"),
    ],
)
def test_bad_environment_is_reported(env, variable, value, expected):
    """A bad or unknown WORKBENCH_ variable stops the command with its name, exit status 2."""
    env[variable] = value
    done = run("migrate", env=env)
    assert done.returncode == 2
    assert expected in done.stderr


def test_schema_prints_the_sdl(env):
    """`schema` prints the SDL committed as schema.graphql."""
    done = run("schema", env=env)
    committed = (Path(__file__).parents[2] / "schema.graphql").read_text()
    assert done.stdout == committed


@pytest.mark.parametrize(
    "url",
    [
        "sqlite+aiosqlite:////nonexistent/folder/x.db",
        "postgresql+asyncpg://nobody@127.0.0.1:1/x",
    ],
    ids=["missing folder", "nothing listening"],
)
@pytest.mark.parametrize("command", ["migrate", "demo", "serve"])
def test_unreachable_database_is_one_line(env, url, command):
    """A database that cannot be opened stops the command with one line naming it, exit 1."""
    env["WORKBENCH_DATABASE_URL"] = url
    done = run(command, env=env)
    assert done.returncode == 1
    assert done.stderr.startswith("cannot use the database ")
    assert "Traceback" not in done.stderr


def test_file_that_is_not_a_database(env, tmp_path):
    """A file that is not SQLite is reported as such, without a traceback."""
    path = tmp_path / "junk.db"
    path.write_text("not a database at all" * 100)
    env["WORKBENCH_DATABASE_URL"] = f"sqlite+aiosqlite:///{path}"
    done = run("migrate", env=env)
    assert done.returncode == 1
    assert "file is not a database" in done.stderr


def test_world_readable_key_file_is_refused(env):
    """A key file others can read (say /etc/passwd) is refused, exit status 2."""
    del env["WORKBENCH_JWT_SECRET"]
    env["WORKBENCH_JWT_SECRET_FILE"] = "/etc/passwd"
    done = run("token", "--cid", "1", "--uid", "2", env=env)
    assert done.returncode == 2
    assert "readable by others" in done.stderr
    assert done.stdout == ""


def test_several_workers_need_a_shared_broker(env):
    """serve --workers 2 on memory:// is refused with the reason, status 2."""
    done = run("serve", "--workers", "2", env=env)
    assert done.returncode == 2
    assert "needs a shared broker" in done.stderr
