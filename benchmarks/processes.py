"""Servers and load generators as processes of their own, pinned to cores, and what we read
off them (RSS).

The server under test (the service, or a baseline) runs on ``SERVER_CORE``; load generators run
on the other cores, so a generator never steals the server's core. On a machine with one core
both share it (the ratios still compare like with like). Linux only: affinity and RSS come from
``os.sched_setaffinity`` and ``/proc``.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy.ext.asyncio import create_async_engine

ROOT = Path(__file__).resolve().parent.parent
PYTHON = sys.executable
WORKBENCH = str(Path(PYTHON).with_name("workbench"))
# The JWT secret of the benchmark servers; clients sign their own tokens with it.
JWT_SECRET = "benchmark-secret-" + "x" * 32
POSTGRES_URL = os.environ.get(
    "WORKBENCH_BENCH_POSTGRES_URL", "postgresql+asyncpg://postgres@127.0.0.1:5432/test"
)
REDIS_URL = os.environ.get("WORKBENCH_BENCH_REDIS_URL", "redis://127.0.0.1:6379/0")
BENCH_DATABASE = "workbench_bench"

_CORES = sorted(os.sched_getaffinity(0))
SERVER_CORE = _CORES[0]
GENERATOR_CORES = _CORES[1:] or _CORES


def free_port() -> int:
    """A free loopback TCP port."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def rss_mib(pid: int) -> float:
    """Resident set size of process ``pid`` in MiB (``VmRSS`` of ``/proc/<pid>/status``)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError(f"no VmRSS for process {pid}")


def raise_open_files_limit() -> None:
    """Raise this process's soft limit of open files to its hard limit (10k connections)."""
    import resource

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


@dataclass
class Running:
    """A started server process and where to reach it."""

    process: subprocess.Popen[bytes]
    http_port: int
    ws_port: int
    log: Path

    @property
    def http_url(self) -> str:
        """Its HTTP base URL."""
        return f"http://127.0.0.1:{self.http_port}"

    @property
    def pid(self) -> int:
        """Its process id (for RSS)."""
        return self.process.pid

    def output(self) -> str:
        """What it printed so far."""
        return self.log.read_text(errors="replace")


def _pinned(core: int):  # type: ignore[no-untyped-def]
    def pin() -> None:
        os.sched_setaffinity(0, {core})
        raise_open_files_limit()

    return pin


def spawn(
    command: list[str], *, env: dict[str, str], core: int, log: Path
) -> subprocess.Popen[bytes]:
    """Start ``command`` pinned to ``core``, its output going to ``log``."""
    handle = log.open("wb")
    try:
        return subprocess.Popen(
            command,
            env=env,
            cwd=ROOT,
            stdout=handle,
            stderr=subprocess.STDOUT,
            preexec_fn=_pinned(core),
        )
    finally:
        handle.close()


async def _wait_ready(running: Running, path: str) -> None:
    async with httpx.AsyncClient(base_url=running.http_url, timeout=2.0) as http:
        for _ in range(600):
            if running.process.poll() is not None:
                raise RuntimeError(f"server exited:\n{running.output()}")
            try:
                if (await http.get(path)).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            await asyncio.sleep(0.05)
    raise RuntimeError(f"server never became ready:\n{running.output()}")


def _stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def service_env(database_url: str, broker_url: str) -> dict[str, str]:
    """The environment of a benchmarked ``workbench serve``: production defaults except the
    log level (warnings only: uvicorn's per-request access log would be measured otherwise,
    and the baseline has none)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("WORKBENCH_")}
    env.update(
        WORKBENCH_DATABASE_URL=database_url,
        WORKBENCH_BROKER_URL=broker_url,
        WORKBENCH_JWT_SECRET=JWT_SECRET,
        WORKBENCH_LOG_LEVEL="WARNING",
        WORKBENCH_MULTI_INSTANCE="true" if broker_url.startswith("redis") else "false",
    )
    return env


def _profile(pid: int, workdir: Path) -> subprocess.Popen[bytes] | None:
    # With WORKBENCH_BENCH_PROFILE=<folder>, py-spy samples the service for its whole life and
    # writes collapsed stacks there (one file per server process), for flame graphs.
    folder = os.environ.get("WORKBENCH_BENCH_PROFILE")
    if not folder:
        return None
    spy = shutil.which("py-spy")
    if spy is None:
        raise RuntimeError("WORKBENCH_BENCH_PROFILE needs py-spy on PATH (pip install py-spy)")
    Path(folder).mkdir(parents=True, exist_ok=True)
    output = Path(folder) / f"workbench-{pid}.txt"
    return subprocess.Popen(
        [
            spy,
            "record",
            "--pid",
            str(pid),
            "--rate",
            "250",
            "--format",
            "raw",
            "--nonblocking",
            "--output",
            str(output),
        ],
        stdout=subprocess.DEVNULL,
        stderr=(workdir / f"py-spy-{pid}.log").open("wb"),
    )


def migrate(database_url: str) -> None:
    """``workbench migrate`` on ``database_url``; raises ``RuntimeError`` with its output on
    failure."""
    env = service_env(database_url, "memory://")
    done = subprocess.run([WORKBENCH, "migrate"], env=env, cwd=ROOT, capture_output=True, text=True)
    if done.returncode != 0:
        raise RuntimeError(f"workbench migrate failed:\n{done.stdout}{done.stderr}")


@asynccontextmanager
async def workbench(
    database_url: str,
    broker_url: str,
    workdir: Path,
    settings: dict[str, str] | None = None,
) -> AsyncIterator[Running]:
    """``workbench serve`` on a free port (the database already migrated), pinned to the
    server core, with ``settings`` (``WORKBENCH_*`` variables) over the defaults; stopped
    (SIGTERM) at the end."""
    env = {**service_env(database_url, broker_url), **(settings or {})}
    port = free_port()
    log = workdir / f"workbench-{port}.log"
    process = spawn([WORKBENCH, "serve", "--port", str(port)], env=env, core=SERVER_CORE, log=log)
    running = Running(process, port, port, log)
    profiler = _profile(process.pid, workdir)
    try:
        await _wait_ready(running, "/readyz")
        yield running
    finally:
        _stop(process)
        if profiler is not None:
            profiler.wait(30)


@asynccontextmanager
async def baseline(database_url: str, workdir: Path) -> AsyncIterator[Running]:
    """The baseline server (``benchmarks.baseline``) pinned to the server core."""
    http_port, ws_port = free_port(), free_port()
    log = workdir / f"baseline-{http_port}.log"
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    process = spawn(
        [
            PYTHON,
            "-m",
            "benchmarks.baseline",
            "--database-url",
            database_url,
            "--http-port",
            str(http_port),
            "--ws-port",
            str(ws_port),
        ],
        env=env,
        core=SERVER_CORE,
        log=log,
    )
    running = Running(process, http_port, ws_port, log)
    try:
        await _wait_ready(running, "/ready")
        yield running
    finally:
        _stop(process)


def _spec_file(spec: dict[str, Any], workdir: Path) -> Path:
    path = workdir / f"spec-{uuid.uuid4().hex[:8]}.json"
    path.write_text(json.dumps(spec), encoding="utf-8")
    return path


async def _start_generator(
    kind: str, spec: dict[str, Any], workdir: Path, core: int | None
) -> tuple[asyncio.subprocess.Process, Path]:
    output = workdir / f"result-{uuid.uuid4().hex[:8]}.json"
    spec = {**spec, "output": str(output)}
    chosen = GENERATOR_CORES[0] if core is None else core
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    process = await asyncio.create_subprocess_exec(
        PYTHON,
        "-m",
        "benchmarks.loadgen",
        kind,
        str(_spec_file(spec, workdir)),
        cwd=ROOT,
        env=env,
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        preexec_fn=_pinned(chosen),
    )
    return process, output


def _result(kind: str, output: Path, err: bytes, code: int | None) -> dict[str, Any]:
    if code != 0 or not output.exists():
        raise RuntimeError(f"load generator {kind} failed ({code}):\n{err.decode()[-4000:]}")
    result: dict[str, Any] = json.loads(output.read_text(encoding="utf-8"))
    return result


async def generate(
    kind: str, spec: dict[str, Any], workdir: Path, *, core: int | None = None
) -> dict[str, Any]:
    """Run one load generator (``benchmarks.loadgen``) as a process pinned to a generator core
    and return the JSON it prints. Raises ``RuntimeError`` when it fails."""
    process, output = await _start_generator(kind, spec, workdir, core)
    _, err = await process.communicate()
    return _result(kind, output, err, process.returncode)


@asynccontextmanager
async def holding(
    spec: dict[str, Any], workdir: Path, *, core: int | None = None
) -> AsyncIterator[dict[str, Any]]:
    """Run the ``hold`` generator: yields once its connections are all subscribed (its ready
    line), and lets it close them when the block ends. Raises ``RuntimeError`` on failure."""
    process, output = await _start_generator("hold", spec, workdir, core)
    assert process.stdout is not None
    assert process.stdin is not None
    line = await process.stdout.readline()
    if not line:
        _, err = await process.communicate()
        _result("hold", output, err, process.returncode)
        raise RuntimeError("hold generator ended before it was ready")
    try:
        yield json.loads(line)
    finally:
        process.stdin.write(b"done\n")
        await process.stdin.drain()
        _, err = await process.communicate()
        _result("hold", output, err, process.returncode)


def sqlite_url(workdir: Path, name: str) -> str:
    """A fresh SQLite file's URL in ``workdir``."""
    path = workdir / f"{name}-{uuid.uuid4().hex[:8]}.db"
    return f"sqlite+aiosqlite:///{path}"


async def fresh_postgres() -> str:
    """Drop and create the benchmark's own PostgreSQL database; its URL. Raises
    ``RuntimeError`` with the URL when PostgreSQL cannot be reached."""
    admin = create_async_engine(POSTGRES_URL, isolation_level="AUTOCOMMIT")
    try:
        async with admin.connect() as connection:
            await connection.exec_driver_sql(
                f"DROP DATABASE IF EXISTS {BENCH_DATABASE} WITH (FORCE)"
            )
            await connection.exec_driver_sql(f"CREATE DATABASE {BENCH_DATABASE}")
    except OSError as error:
        raise RuntimeError(f"PostgreSQL unreachable at {POSTGRES_URL}: {error}") from error
    finally:
        await admin.dispose()
    return POSTGRES_URL.rsplit("/", 1)[0] + "/" + BENCH_DATABASE


def redis_broker_url() -> str:
    """A Redis broker URL with a namespace of its own."""
    return f"{REDIS_URL}?namespace=bench-{uuid.uuid4().hex[:8]}"
