"""Every measured value, by figure, front end and implementation; medians over repetitions; the JSON report."""

from __future__ import annotations

from collections import defaultdict
from typing import Any

from benchmarks.common import median


class Results:
    def __init__(self) -> None:
        # figure -> front end -> implementation -> one value per repetition
        self.values: dict[str, dict[str, dict[str, list[float]]]] = defaultdict(lambda: defaultdict(dict))
        # figure -> front end -> implementation -> one {name: value} per repetition
        self.breakdowns: dict[str, dict[str, dict[str, list[dict[str, float]]]]] = defaultdict(
            lambda: defaultdict(dict)
        )
        self.notes: list[str] = []

    def add(self, figure: str, front: str, impl: str, value: float) -> None:
        self.values[figure][front].setdefault(impl, []).append(float(value))

    def add_breakdown(self, figure: str, front: str, impl: str, parts: dict[str, float]) -> None:
        self.breakdowns[figure][front].setdefault(impl, []).append(parts)

    def median(self, figure: str, front: str, impl: str) -> float | None:
        values = self.values.get(figure, {}).get(front, {}).get(impl)
        return median(values) if values else None

    def median_breakdown(self, figure: str, front: str, impl: str) -> dict[str, float] | None:
        runs = self.breakdowns.get(figure, {}).get(front, {}).get(impl)
        if not runs:
            return None
        names = sorted({name for run in runs for name in run})
        return {name: median([run.get(name, 0.0) for run in runs]) for name in names}

    def note(self, text: str) -> None:
        self.notes.append(text)

    def as_json(self) -> dict[str, Any]:
        figures: dict[str, Any] = {}
        for figure, fronts in sorted(self.values.items()):
            figures[figure] = {
                front: {impl: {"median": median(values), "values": values} for impl, values in impls.items()}
                for front, impls in fronts.items()
            }
        breakdowns: dict[str, Any] = {}
        for figure, by_front in sorted(self.breakdowns.items()):
            breakdowns[figure] = {
                front: {
                    impl: {"median": self.median_breakdown(figure, front, impl), "values": runs}
                    for impl, runs in runs_by_impl.items()
                }
                for front, runs_by_impl in by_front.items()
            }
        return {"figures": figures, "breakdowns": breakdowns, "notes": self.notes}
