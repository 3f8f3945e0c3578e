"""The project's benchmark: `uv run python -m benchmarks` (see docs/performance.md).

Every figure for the library is measured in the same run, against the same server, as
the raw redis-py minimum for the same work, so the ratios hold on a noisy machine.
"""
