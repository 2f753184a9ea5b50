"""python -m benchmarks run [--quick] [--scenario NAME] [--database sqlite|postgresql].

Runs the chosen scenarios (all by default), prints each one's table, its ratios to the
baseline and the issue 6 targets, and writes everything as JSON to ``benchmarks/results/``.
--quick runs every scenario with short loads, on SQLite unless --database says otherwise (under
a minute on 2 cores). The full run also measures 10k connections and PostgreSQL (+ Redis) and
takes about ten minutes. Exit status: 0 when the run completed (targets met or not: the JSON
and the table say which), 1 when a scenario could not run, 2 for bad arguments (or a profile
requested without py-spy). BENCHMARKS.md lists the targets.
"""

from __future__ import annotations

import asyncio
import json
import os
import platform
import shutil
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any

import typer

from benchmarks import processes
from benchmarks.scenarios import SCENARIOS, Context, Outcome
from benchmarks.stats import table

RESULTS = Path(__file__).resolve().parent / "results"
DATABASES = ("sqlite", "postgresql")

cli = typer.Typer(add_completion=False, no_args_is_help=True, help=__doc__)


def machine() -> dict[str, Any]:
    """What the numbers were measured on."""
    model = ""
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.exists():
        for line in cpuinfo.read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    return {
        "cpu": model,
        "cores": os.cpu_count(),
        "server_core": processes.SERVER_CORE,
        "generator_cores": processes.GENERATOR_CORES,
        "python": platform.python_version(),
        "platform": platform.platform(),
    }


async def _run(names: list[str], context: Context) -> tuple[dict[str, Outcome], list[str]]:
    outcomes: dict[str, Outcome] = {}
    failures: list[str] = []
    for name in names:
        print(f"\n== {name}", flush=True)
        started = time.monotonic()
        try:
            outcome = await SCENARIOS[name](context)
        except Exception as error:  # report and go on with the next scenario
            failures.append(f"{name}: {error}")
            print(f"FAILED: {error}", flush=True)
            continue
        outcomes[name] = outcome
        print(table(outcome.rows))
        for check in outcome.checks:
            mark = "PASS" if check.passed else "MISS"
            print(f"  [{mark}] {check.target}: {check.measured}")
        print(f"  ({time.monotonic() - started:.1f} s)", flush=True)
    return outcomes, failures


@cli.command()
def run(
    quick: Annotated[
        bool,
        typer.Option("--quick", help="Short loads, on SQLite unless --database is given."),
    ] = False,
    scenario: Annotated[
        list[str] | None,
        typer.Option(help=f"Only this scenario (repeatable): {', '.join(SCENARIOS)}."),
    ] = None,
    database: Annotated[
        list[str] | None,
        typer.Option(help="Only this database (repeatable): sqlite, postgresql."),
    ] = None,
) -> None:
    """Run the benchmarks and write ``benchmarks/results/<UTC time>-<quick|full>.json``."""
    names = scenario or list(SCENARIOS)
    unknown = [name for name in names if name not in SCENARIOS]
    if unknown:
        typer.echo(
            f"unknown scenario {', '.join(unknown)}; known: {', '.join(SCENARIOS)}", err=True
        )
        raise typer.Exit(2)
    databases = tuple(database or (("sqlite",) if quick else DATABASES))
    bad = [d for d in databases if d not in DATABASES]
    if bad:
        typer.echo(f"unknown database {', '.join(bad)}; known: sqlite, postgresql", err=True)
        raise typer.Exit(2)
    if os.environ.get("WORKBENCH_BENCH_PROFILE") and shutil.which("py-spy") is None:
        typer.echo("WORKBENCH_BENCH_PROFILE needs py-spy on PATH (pip install py-spy)", err=True)
        raise typer.Exit(2)
    processes.raise_open_files_limit()
    print(json.dumps(machine()))
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="workbench-bench-") as workdir:
        context = Context(quick=quick, workdir=Path(workdir), databases=databases)
        outcomes, failures = asyncio.run(_run(names, context))
    elapsed = time.monotonic() - started
    RESULTS.mkdir(exist_ok=True)
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    path = RESULTS / f"{stamp}-{'quick' if quick else 'full'}.json"
    report = {
        "machine": machine(),
        "quick": quick,
        "databases": list(databases),
        "seconds": round(elapsed, 1),
        "scenarios": {
            name: {
                "rows": [row.as_dict() for row in outcome.rows],
                "checks": [check.as_dict() for check in outcome.checks],
            }
            for name, outcome in outcomes.items()
        },
        "failures": failures,
    }
    path.write_text(json.dumps(report, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    checks = [c for o in outcomes.values() for c in o.checks]
    met = sum(1 for c in checks if c.passed)
    print(f"\n{met} of {len(checks)} targets met in {elapsed:.0f} s; results: {path}")
    if failures:
        print("scenarios that could not run:\n  " + "\n  ".join(failures), file=sys.stderr)
        raise typer.Exit(1)


@cli.command("list")
def list_scenarios() -> None:
    """The scenarios, one per line with what each measures."""
    for name, function in SCENARIOS.items():
        summary = " ".join((function.__doc__ or "").split("\n\n")[0].split())
        typer.echo(f"{name}: {summary}")


if __name__ == "__main__":
    cli()
