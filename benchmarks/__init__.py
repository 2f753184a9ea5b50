"""Benchmarks of the workbench service against baselines measured in the same run (issue 6).

Run them with ``python -m benchmarks run [--quick] [--scenario NAME]`` (``make bench``,
``make bench-quick``). The machines are shared and noisy, so every scenario measures its
baseline side by side with the service and reports the ratio; absolute numbers are only for
the record. Layout:

- ``stats``: percentiles and the printed table.
- ``processes``: servers and load generators as separate processes, pinned to cores; RSS.
- ``baseline``: the baseline server (bare Starlette + raw ``websockets``), a process of its own.
- ``loadgen``: the load generators' side (HTTP and WebSocket clients), run as processes.
- ``scenarios``: the six scenarios of issue 6, each with its baseline.
"""
