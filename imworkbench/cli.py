"""The ``workbench`` command (SPEC §10): serve, migrate, demo, token, schema, and catalogue
export/import (issue 3 item 9).

Settings come from ``WORKBENCH_*`` environment variables (see ``settings.py``); a bad value
stops the command with the variable's name and the rule it broke.
"""

from __future__ import annotations

import asyncio
import logging
import os
import re
import sys
import tempfile
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, TypeVar

import typer
from pydantic import ValidationError

from imworkbench.settings import Settings
from resolvers.identity import MAX_ID, Principal, Role

if TYPE_CHECKING:
    from storage.db import Database

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
            if e["loc"]
            else f"  {e['msg'].removeprefix('Value error, ')}"
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
    workers: Annotated[
        int,
        typer.Option(
            help="Server processes sharing the port; more than 1 needs a redis:// broker.",
            min=1,
            max=64,
        ),
    ] = 1,
) -> None:
    """Serve HTTP and WebSocket (uvicorn). Run `workbench migrate` first."""
    import uvicorn

    from imworkbench.app import create_app
    from imworkbench.logs import configure_logging
    from imworkbench.serving import uvicorn_options
    from storage.migrate import DatabaseNotMigrated

    settings = load_settings(host=host, port=port)
    if workers > 1 and settings.broker_url == "memory://":
        typer.echo(
            f"--workers {workers} needs a shared broker: set WORKBENCH_BROKER_URL=redis://... "
            "(with memory:// each process would see only its own clients' events)",
            err=True,
        )
        raise typer.Exit(2)
    signing_key(settings)
    try:
        with database_errors(settings.database_url):
            asyncio.run(_check_database(settings.database_url))
    except DatabaseNotMigrated as error:
        typer.echo(str(error), err=True)
        raise typer.Exit(1) from error
    configure_logging(settings.log_format, settings.log_level)
    logging.getLogger("workbench").info(
        "workbench on http://%s:%d  (GraphiQL: /graphql)%s",
        settings.host,
        settings.port,
        f", {workers} workers" if workers > 1 else "",
    )
    if workers > 1:
        # Each worker builds the app from the environment; the command line's host and port
        # only choose the socket uvicorn shares between them.
        uvicorn.run(
            "imworkbench.app:app_from_environment",
            factory=True,
            workers=workers,
            host=settings.host,
            port=settings.port,
            log_level=settings.log_level.lower(),  # WARNING and up also silence access logs
            log_config=None,  # keep configure_logging's handlers (JSON, request ids)
            **uvicorn_options(settings),
            lifespan="on",
        )
        return
    uvicorn.run(
        create_app(settings, handle_signals=True),
        host=settings.host,
        port=settings.port,
        log_level=settings.log_level.lower(),  # WARNING and up also silence access logs
        log_config=None,  # keep configure_logging's handlers (JSON, request ids)
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
    from resolvers.tokens import TokenCodec

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


catalogue_cli = typer.Typer(
    help="Move the apps catalogue to another site: export it as JSON, import it there.",
    no_args_is_help=True,
)
cli.add_typer(catalogue_cli, name="catalogue")

# The CLI acts for the operator, who holds the database itself (issue 3 item 9).
OPERATOR = Principal(cid=0, uid=0, account="operator", role=Role.PLATFORM_ADMIN)
_T = TypeVar("_T")


def _on_database(url: str, work: Callable[[Database], Awaitable[_T]]) -> _T:
    """Run ``work`` on the migrated database at ``url``; exits 1 with one line when the
    database cannot be used or is not migrated."""
    from storage.db import Database
    from storage.migrate import DatabaseNotMigrated, require_current

    async def run() -> _T:
        db = Database(url)
        try:
            await require_current(db)
            return await work(db)
        finally:
            await db.dispose()

    try:
        with database_errors(url):
            return asyncio.run(run())
    except DatabaseNotMigrated as error:
        typer.echo(str(error), err=True)
        raise typer.Exit(1) from error


def _require_database(url: str) -> None:
    """Exit 1 with one line when ``url`` names a SQLite file that does not exist: connecting
    would create an empty one and leave it behind, a database that is no site's catalogue."""
    import shlex

    from sqlalchemy.engine import make_url

    parsed = make_url(url)
    if (
        parsed.get_backend_name() != "sqlite"
        or parsed.database in (None, "", ":memory:")
        or "uri" in parsed.query  # a file: URI, not a path
    ):
        return
    if not Path(parsed.database).exists():
        typer.echo(
            f"no database at {parsed.database}: run "
            f"WORKBENCH_DATABASE_URL={shlex.quote(_safe_url(url))} workbench migrate first",
            err=True,
        )
        raise typer.Exit(1)


def _write_private(path: Path, data: bytes) -> None:
    """Replace ``path`` with ``data`` atomically, mode 0600 (never a half-written export)."""
    descriptor, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(descriptor, "wb") as file:
            file.write(data)
            file.flush()
            os.fsync(file.fileno())
        os.chmod(temporary, 0o600)
        os.replace(temporary, path)
    except BaseException:
        with suppress(FileNotFoundError):
            os.unlink(temporary)
        raise


@catalogue_cli.command(
    "export",
    help="Print the catalogue as JSON: groups, categories, apps, uploaded icons.\n\n"
    "The file holds every app key and app-secret hash, so that vendors' credentials keep "
    "working on the new site: keep it secret. Badges, removals and the audit log are not in it.",
)
def catalogue_export(
    output: Annotated[
        Path | None,
        typer.Option(
            "--output", "-o", help="Write to FILE (mode 0600) instead of stdout.", dir_okay=False
        ),
    ] = None,
) -> None:
    """Print the catalogue as JSON: groups, categories, apps, uploaded icons.

    The file holds every app key and app-secret hash, so that vendors' credentials keep
    working on the new site: keep it secret. Badges, removals and the audit log are not in it.
    """
    from resolvers.transfer import MAX_DOCUMENT_BYTES, export_catalogue

    settings = load_settings()
    _require_database(settings.database_url)
    exported = _on_database(settings.database_url, lambda db: export_catalogue(db=db))
    if output is None:
        try:
            sys.stdout.buffer.write(exported.data)
            sys.stdout.buffer.flush()
        except BrokenPipeError as error:  # `| head`: the reader left, not our failure to report
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
            raise typer.Exit(1) from error
        target = "stdout"
    else:
        try:
            _write_private(output, exported.data)
        except OSError as error:
            typer.echo(f"cannot write {output}: {error.strerror or error}", err=True)
            raise typer.Exit(1) from error
        target = f"{output} (mode 0600)"
    typer.echo(
        f"exported {exported.apps} apps, {exported.groups} groups, {exported.categories} "
        f"categories and {exported.icons} icons to {target}; the file holds app keys and "
        "secret hashes: keep it secret",
        err=True,
    )
    if len(exported.data) > MAX_DOCUMENT_BYTES:
        typer.echo(
            f"warning: the file is {len(exported.data):,} bytes, more than the "
            f"{MAX_DOCUMENT_BYTES // 2**20} MiB `workbench catalogue import` accepts",
            err=True,
        )


def _read_import(file: str, limit: int) -> bytes:
    """The bytes of ``file`` (``-``: stdin), at most ``limit``; exits 1 with one line when it
    cannot be read or is larger."""
    try:
        if file == "-":
            data = sys.stdin.buffer.read(limit + 1)
        else:
            with open(file, "rb") as handle:
                if os.fstat(handle.fileno()).st_size > limit:
                    data = b"x" * (limit + 1)
                else:
                    data = handle.read(limit + 1)
    except OSError as error:
        typer.echo(f"cannot read {file}: {error.strerror or error}", err=True)
        raise typer.Exit(1) from error
    if len(data) > limit:
        typer.echo(
            f"cannot import {file}: larger than {limit // 2**20} MiB, the most an import takes",
            err=True,
        )
        raise typer.Exit(1)
    return data


@catalogue_cli.command(
    "import",
    help="Import a catalogue export: all of it in one transaction, or nothing.\n\n"
    "Every problem is reported first, with its place in the file. Apps are matched by "
    "identifier (updated in place), others created with the file's ids, app keys and secret "
    "hashes; importing the same file again changes nothing.\n\n"
    "Signed-mode apps whose sealed secrets do not open with this site's WORKBENCH_JWT_SECRET "
    "are imported and warned about on stderr: they need rotateAppSecret.",
)
def catalogue_import(
    file: Annotated[
        str, typer.Argument(help="A catalogue export, or - for stdin.", metavar="FILE")
    ],
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Check everything and report; change nothing.")
    ] = False,
) -> None:
    """Import a catalogue export: all of it in one transaction, or nothing.

    Every problem is reported first, with its place in the file. Apps are matched by
    identifier (updated in place), others created with the file's ids, app keys and secret
    hashes; importing the same file again changes nothing.

    Signed-mode apps whose sealed secrets do not open with this site's WORKBENCH_JWT_SECRET
    are imported and warned about on stderr: they need rotateAppSecret.
    """
    from resolvers.errors import InvalidInput
    from resolvers.sealing import SecretSealer
    from resolvers.transfer import MAX_DOCUMENT_BYTES, import_catalogue

    settings = load_settings()
    _require_database(settings.database_url)
    data = _read_import(file, MAX_DOCUMENT_BYTES)
    name = "stdin" if file == "-" else file
    sealer = SecretSealer(signing_key(settings))  # this site's: do the file's seals open here?
    try:
        report = _on_database(
            settings.database_url,
            lambda db: import_catalogue(
                db=db, principal=OPERATOR, data=data, dry_run=dry_run, sealer=sealer
            ),
        )
    except InvalidInput as error:
        problems = error.errors
        if len(problems) == 1:
            where = f"{problems[0].field}: " if problems[0].field else ""
            typer.echo(f"cannot import {name}: {where}{problems[0].message}", err=True)
        else:
            typer.echo(f"cannot import {name}: {len(problems)} problems, nothing changed", err=True)
            for problem in problems:
                typer.echo(f"  {problem.field or 'file'}: {problem.message}", err=True)
        raise typer.Exit(1) from error
    if dry_run:
        typer.echo(f"dry run of {name}: nothing was changed; an import would do this:")
    else:
        typer.echo(f"imported {name} (sha256 {report.digest}):")
    for line in report.lines():
        typer.echo(f"  {line}")
    for warning in report.warnings:
        typer.echo(f"warning: {warning}", err=True)


def _safe_url(url: str) -> str:
    from sqlalchemy.engine import make_url

    return make_url(url).render_as_string(hide_password=True)


def main() -> None:
    """Console entry point."""
    cli()


if __name__ == "__main__":  # pragma: no cover
    main()
