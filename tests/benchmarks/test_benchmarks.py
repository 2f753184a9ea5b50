"""The benchmark suite's own parts (issue 6): its statistics, its command line's refusals, and
that the workbench-query baseline answers with the service's very JSON. The benchmarks
themselves run by hand (``make bench``), never here: timings are not test assertions."""

from __future__ import annotations

import asyncio
import math
import os
import subprocess
import sys
from pathlib import Path

import httpx
import pytest
from sqlalchemy import text

from benchmarks.processes import free_port
from benchmarks.scenarios import WORKBENCH_QUERY
from benchmarks.stats import Row, percentile, ratio, table
from storage.db import Database
from tests.factories import JWT_SECRET, TIMEOUT, create_app, gql, push

ROOT = Path(__file__).resolve().parents[2]


def bench(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """``python -m benchmarks ARGS`` in the checkout."""
    return subprocess.run(
        [sys.executable, "-m", "benchmarks", *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=TIMEOUT * 6,
    )


def test_percentiles_are_nearest_rank():
    """p50 of 1..100 is 50, p99 is 99, p100 is 100; no values give NaN."""
    values = [float(v) for v in range(1, 101)]
    assert (percentile(values, 0.5), percentile(values, 0.99), percentile(values, 1.0)) == (
        50.0,
        99.0,
        100.0,
    )
    assert percentile([7.0], 0.99) == 7.0
    assert math.isnan(percentile([], 0.5))


def test_rows_summarise_latencies_and_print_as_a_table():
    """A row takes count, percentiles and max from raw latencies; the table shows them."""
    # given
    row = Row("s", "workbench", "sqlite", "200/s").with_latencies([3.0, 1.0, 2.0, 10.0])
    row.throughput = 1234.5
    # when
    printed = table([row])
    # then
    assert (row.count, row.p50_ms, row.p99_ms, row.max_ms) == (4, 2.0, 10.0, 10.0)
    assert printed.splitlines()[0].split() == [
        "system", "db", "load", "n", "p50", "p95", "p99", "max", "ops/s", "RSS", "MiB"
    ]  # fmt: skip
    assert printed.splitlines()[2].split() == [
        "workbench", "sqlite", "200/s", "4", "2.0", "10.0", "10.0", "10.0", "1,234", "-"
    ]  # fmt: skip
    assert ratio(2.0, 4.0) == 0.5
    assert ratio(1.0, 0.0) is None
    assert ratio(None, 1.0) is None


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["run", "--scenario", "nope"], "unknown scenario nope"),
        (["run", "--database", "mysql"], "unknown database mysql"),
        (["run", "--quick", "--bogus"], "No such option"),
    ],
)
def test_the_runner_refuses_bad_arguments_with_exit_2(args, message):
    """An unknown scenario, database or option: exit status 2 and a message naming it, before
    anything runs."""
    done = bench(*args)
    assert done.returncode == 2, done.stdout + done.stderr
    assert message in done.stderr


def test_a_profile_without_py_spy_is_refused_before_anything_runs(tmp_path):
    """WORKBENCH_BENCH_PROFILE with no py-spy on PATH: exit 2 and a message, no result file."""
    # given
    env = {**os.environ, "WORKBENCH_BENCH_PROFILE": str(tmp_path), "PATH": str(tmp_path)}
    before = set((ROOT / "benchmarks" / "results").glob("*.json"))
    # when
    done = bench("run", "--quick", "--scenario", "legacy-throughput", env=env)
    # then
    assert done.returncode == 2, done.stdout + done.stderr
    assert "needs py-spy on PATH" in done.stderr
    assert set((ROOT / "benchmarks" / "results").glob("*.json")) == before


def test_the_runner_lists_every_scenario():
    """``list`` names every scenario: issue 6's six and issue 11's two floods."""
    done = bench("list")
    assert done.returncode == 0, done.stderr
    names = [line.split(":")[0] for line in done.stdout.splitlines()]
    assert names == [
        "push-latency",
        "fan-out",
        "idle-connections",
        "workbench-query",
        "hot-counter",
        "legacy-throughput",
        "websocket-flood",
        "legacy-flood",
    ]


async def test_the_workbench_baseline_returns_the_services_json(server, http, tokens, database_url):
    """The bare baseline (same statements, same database) answers the benchmark's workbench
    query with exactly the service's JSON."""
    # given
    for index in range(3):
        created = await create_app(http, tokens.admin(), identifier=f"Same{index}")
        await push(http, created["id"], ["1001,1034"])
    expected = await gql(http, tokens.user(), WORKBENCH_QUERY)
    port = free_port()
    command = [sys.executable, "-m", "benchmarks.baseline", "--database-url", database_url]
    command += ["--http-port", str(port), "--ws-port", str(free_port())]
    command += ["--jwt-secret", JWT_SECRET]
    process = subprocess.Popen(  # noqa: ASYNC220 (returns at once)
        command, cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)}
    )
    try:
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as bare:
            for _ in range(int(TIMEOUT * 20)):
                try:
                    if (await bare.get("/ready")).status_code == 200:
                        break
                except httpx.TransportError:
                    await asyncio.sleep(0.05)
            # when
            answer = await bare.post(
                "/graphql",
                json={"query": WORKBENCH_QUERY},
                headers={"Authorization": f"Bearer {tokens.user()}"},
            )
    finally:
        process.terminate()
        process.wait(TIMEOUT)
        # The baseline's own table must not outlive the test: the database is shared.
        db = Database(database_url)
        async with db.write() as session:
            await session.execute(text("DROP TABLE IF EXISTS bench_badge"))
        await db.dispose()
    # then
    assert answer.status_code == 200
    assert answer.json() == expected
    assert len(expected["data"]["workbench"]["apps"]) == 3
