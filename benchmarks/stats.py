"""Latency summaries and the table each scenario prints."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any


def percentile(sorted_values: Sequence[float], fraction: float) -> float:
    """The nearest-rank percentile (``fraction`` in [0, 1]) of already sorted values; NaN for
    none."""
    if not sorted_values:
        return math.nan
    rank = max(1, math.ceil(fraction * len(sorted_values)))
    return sorted_values[rank - 1]


@dataclass
class Row:
    """One measured line: a system (the service or its baseline) under one load.

    Latencies are in milliseconds, throughput in operations per second, RSS in MiB. Fields
    that do not apply stay ``None``; ``extra`` holds scenario-specific numbers.
    """

    scenario: str
    system: str
    database: str
    load: str
    count: int = 0
    p50_ms: float | None = None
    p95_ms: float | None = None
    p99_ms: float | None = None
    max_ms: float | None = None
    throughput: float | None = None
    rss_mib: float | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    def with_latencies(self, latencies_ms: Sequence[float]) -> Row:
        """Fill count and percentiles from raw latencies (milliseconds)."""
        ordered = sorted(latencies_ms)
        self.count = len(ordered)
        if ordered:
            self.p50_ms = percentile(ordered, 0.50)
            self.p95_ms = percentile(ordered, 0.95)
            self.p99_ms = percentile(ordered, 0.99)
            self.max_ms = ordered[-1]
        return self

    def as_dict(self) -> dict[str, Any]:
        """The row as JSON-ready data."""
        return asdict(self)


@dataclass
class Check:
    """One target of issue 6 and where the run stands: ``passed`` with the measured value."""

    scenario: str
    target: str
    measured: str
    passed: bool

    def as_dict(self) -> dict[str, Any]:
        """The check as JSON-ready data."""
        return asdict(self)


def _cell(value: float | None, digits: int = 1) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    if abs(value) >= 1000:
        return f"{value:,.0f}"
    return f"{value:.{digits}f}"


def table(rows: Sequence[Row]) -> str:
    """Rows as an aligned text table (p50/p95/p99/max ms, throughput/s, RSS MiB)."""
    header = ("system", "db", "load", "n", "p50", "p95", "p99", "max", "ops/s", "RSS MiB")
    lines = [header]
    for row in rows:
        lines.append(
            (
                row.system,
                row.database,
                row.load,
                str(row.count),
                _cell(row.p50_ms),
                _cell(row.p95_ms),
                _cell(row.p99_ms),
                _cell(row.max_ms),
                _cell(row.throughput, 0),
                _cell(row.rss_mib),
            )
        )
    widths = [max(len(line[i]) for line in lines) for i in range(len(header))]
    out = []
    for index, line in enumerate(lines):
        out.append("  ".join(cell.ljust(widths[i]) for i, cell in enumerate(line)).rstrip())
        if index == 0:
            out.append("  ".join("-" * width for width in widths))
    return "\n".join(out)


def ratio(value: float | None, baseline: float | None) -> float | None:
    """``value / baseline``, or ``None`` when either is missing or the baseline is 0."""
    if value is None or baseline is None or baseline == 0:
        return None
    return value / baseline
