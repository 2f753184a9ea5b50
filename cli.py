"""The ``workbench`` command (SPEC §10): serve, migrate, demo, token, and schema.

Settings come from ``WORKBENCH_*`` environment variables (see ``settings.py``); a bad value
stops the command with the variable's name and the rule it broke.
"""

from __future__ import annotations

import asyncio
import logging
import os
import re
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Any

import typer
from pydantic import ValidationError

from resolvers.identity import MAX_ID, Role
from settings import Settings

cli = typer.Typer(help="workbench: third-party apps on the IM workbench.", no_args_is_help=True)


def load_settings(**overrides: Any) -> Settings:
    """Settings from the environment plus ``overrides``; exits with a clear message if invalid
    or if a ``WORKBENCH_*`` variable is unknown (a typo would otherwise be silently ignored)."""
    unknown = Settings.unknown_variables(os.environ)
    if unknown:
        typer.echo(
            "invalid configuration:\n" + "\n".join(f"  {line}" for line in unknown), err=True
        )
        raise typer.Exit(2)
    try:
        return Settings(**{k: v for k, v in overrides.items() if v is not None})
    except ValidationError as error:
        lines = [
            f"  WORKBENCH_{'_'.join(str(p) for p in e['loc']).upper()}: {e['msg']}"
            for e in error.errors()
        ]
        typer.echo("invalid configuration:\n" + "\n".join(lines), err=True)
        raise typer.Exit(2) from error


def signing_key(settings: Settings) -> str:
    """The JWT key of ``settings``; exits with the reason if the kept key file is unusable."""
    try:
        return settings.secret_key()
    except ValueError as error:
        typer.echo(f"invalid configuration:\n  WORKBENCH_JWT_SECRET_FILE: {error}", err=True)
        raise typer.Exit(2) from error


@contextmanager
def database_errors(url: str) -> Iterator[None]:
    """Turn a database that cannot be reached or read into a one-line message and exit 1."""
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import SQLAlchemyError

    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite" and parsed.database not in (None, "", ":memory:"):
        # Checked first: a failed aiosqlite connect leaves a worker thread that can print
        # noise while the interpreter exits.
        folder = Path(parsed.database).parent
        if not folder.is_dir():
            typer.echo(f"cannot use the database {_safe_url(url)}: no folder {folder}", err=True)
            raise typer.Exit(1)
    try:
        yield
    except (SQLAlchemyError, OSError) as error:
        reason = str(getattr(error, "orig", None) or error).splitlines()[0][:300]
        typer.echo(f"cannot use the database {_safe_url(url)}: {reason}", err=True)
        raise typer.Exit(1) from error


@cli.command()
def migrate() -> None:
    """Create or upgrade the database schema (Alembic) to the newest revision."""
    from storage.migrate import upgrade

    settings = load_settings()
    with database_errors(settings.database_url):
        upgrade(settings.database_url)
    typer.echo(f"database at the newest revision: {_safe_url(settings.database_url)}")


@cli.command()
def serve(
    host: Annotated[
        str | None, typer.Option(help="Interface to bind [default: 127.0.0.1].")
    ] = None,
    port: Annotated[
        int | None, typer.Option(help="TCP port [default: 8000].", min=1, max=65535)
    ] = None,
) -> None:
    """Serve HTTP and WebSocket (uvicorn). Run `workbench migrate` first."""
    import uvicorn

    from app import create_app, uvicorn_options
    from storage.migrate import DatabaseNotMigrated

    settings = load_settings(host=host, port=port)
    signing_key(settings)
    try:
        with database_errors(settings.database_url):
            asyncio.run(_check_database(settings.database_url))
    except DatabaseNotMigrated as error:
        typer.echo(str(error), err=True)
        raise typer.Exit(1) from error
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s %(message)s")
    application = create_app(settings)
    typer.echo(f"workbench on http://{settings.host}:{settings.port}  (GraphiQL: /graphql)")
    uvicorn.run(
        application,
        host=settings.host,
        port=settings.port,
        log_level="info",
        **uvicorn_options(settings),
        lifespan="on",
    )


async def _check_database(url: str) -> None:
    from storage.db import Database
    from storage.migrate import require_current

    db = Database(url)
    try:
        await require_current(db)
    finally:
        await db.dispose()


@cli.command()
def demo() -> None:
    """Load a small demo catalogue (idempotent: apps that exist are left as they are)."""
    from resolvers.demo import load_demo
    from storage.db import Database
    from storage.migrate import DatabaseNotMigrated, require_current

    settings = load_settings()

    async def run() -> list[str]:
        db = Database(settings.database_url)
        try:
            await require_current(db)
            return await load_demo(db)
        finally:
            await db.dispose()

    try:
        with database_errors(settings.database_url):
            lines = asyncio.run(run())
    except DatabaseNotMigrated as error:
        typer.echo(str(error), err=True)
        raise typer.Exit(1) from error
    for line in lines:
        typer.echo(line)


def _id_option(value: str) -> str:
    if not re.fullmatch(r"[0-9]{1,19}", value) or int(value) > MAX_ID:
        raise typer.BadParameter("must be a decimal id of 1 to 19 ASCII digits")
    return value


def _account_option(value: str | None) -> str | None:
    if value is not None and (
        not 1 <= len(value) <= 64 or not value.isprintable() or value != value.strip()
    ):
        raise typer.BadParameter("must be 1 to 64 printable characters, no outer spaces")
    return value


@cli.command()
def token(
    cid: Annotated[str, typer.Option(help="Enterprise id.", callback=_id_option)],
    uid: Annotated[str, typer.Option(help="User id.", callback=_id_option)],
    role: Annotated[Role, typer.Option(help="Token role.")] = Role.USER,
    account: Annotated[
        str | None,
        typer.Option(help="Login name [default: user<uid>].", callback=_account_option),
    ] = None,
    app_id: Annotated[str | None, typer.Option(help="App id (vendor tokens).")] = None,
    ttl: Annotated[int, typer.Option(help="Lifetime in seconds.", min=60, max=30 * 86400)] = 12
    * 3600,
) -> None:
    """Print a signed JWT for the given user (for tests, demos and administrators)."""
    from auth import TokenCodec

    if role is Role.VENDOR and app_id is None:
        raise typer.BadParameter("a vendor token needs --app-id", param_hint="--app-id")
    if role is not Role.VENDOR and app_id is not None:
        raise typer.BadParameter("only vendor tokens carry an app id", param_hint="--app-id")
    if app_id is not None:
        try:
            _id_option(app_id)
        except typer.BadParameter as error:
            error.param_hint = "--app-id"
            raise
    settings = load_settings()
    codec = TokenCodec(signing_key(settings), issuer=settings.jwt_issuer)
    typer.echo(
        codec.issue(
            cid=int(cid),
            uid=int(uid),
            role=role,
            account=account,
            app_id=None if app_id is None else int(app_id),
            ttl_seconds=ttl,
        )
    )


@cli.command("schema")
def print_schema() -> None:
    """Print the GraphQL schema (SDL); `schema.graphql` in the repository is this output."""
    from schema import build_schema

    typer.echo(build_schema().as_str())


def _safe_url(url: str) -> str:
    from sqlalchemy.engine import make_url

    return make_url(url).render_as_string(hide_password=True)


def main() -> None:
    """Console entry point."""
    cli()


if __name__ == "__main__":  # pragma: no cover
    main()
