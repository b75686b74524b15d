"""One figure of a benchmark, beside its baseline and target, and the table ``make bench`` prints.

A benchmark reports what it measured with :func:`record`; run alone it prints its own prose, and
run by ``python -m bench`` its figures are also gathered (through the file that
``RAGREEL_BENCH_FIGURES`` names) into one table and ``bench/results/latest.json``. Every ratio is
against a baseline measured in the same run: these machines drift from run to run, so absolute
times are for the record only.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, computed_field

FIGURES_VARIABLE = "RAGREEL_BENCH_FIGURES"


class Figure(BaseModel):
    name: str
    value: float
    unit: str
    baseline: float | None = None
    target: tuple[Literal["<=", ">="], float] | None = None
    target_of: Literal["ratio", "value"] = "ratio"
    note: str = ""

    @computed_field
    @property
    def ratio(self) -> float | None:
        return round(self.value / self.baseline, 3) if self.baseline else None

    @computed_field
    @property
    def ok(self) -> bool | None:
        if self.target is None:
            return None
        measured = self.ratio if self.target_of == "ratio" else self.value
        if measured is None:
            return None
        comparison, limit = self.target
        return measured <= limit if comparison == "<=" else measured >= limit

    def target_text(self) -> str:
        if self.target is None:
            return ""
        what = "x" if self.target_of == "ratio" else f" {self.unit}"
        return f"{self.target[0]} {self.target[1]:g}{what}"


def record(*figures: Figure) -> None:
    """Hand figures to ``python -m bench`` when it runs this benchmark (else nothing to do)."""
    path = os.environ.get(FIGURES_VARIABLE)
    if not path:
        return
    with open(path, "a", encoding="utf-8") as out:
        for figure in figures:
            out.write(figure.model_dump_json(exclude={"ratio", "ok"}) + "\n")


def read(path: Path) -> list[Figure]:
    if not path.exists():
        return []
    return [
        Figure.model_validate_json(line) for line in path.read_text(encoding="utf-8").splitlines() if line
    ]


def table(figures: list[Figure]) -> str:
    def number(value: float | None) -> str:
        return "" if value is None else f"{value:.3g}" if abs(value) < 1000 else f"{value:.0f}"

    rows = [("figure", "value", "baseline", "ratio", "target", "ok")]
    for f in figures:
        ok = {True: "yes", False: "NO", None: ""}[f.ok]
        rows.append(
            (f.name, f"{number(f.value)} {f.unit}", number(f.baseline), number(f.ratio), f.target_text(), ok)
        )
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    lines = ["  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)) for row in rows]
    lines.insert(1, "  ".join("-" * width for width in widths))
    return "\n".join(lines)


def write_json(figures: list[Figure], path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    rows = [
        f.model_dump(include={"name", "value", "unit", "baseline", "ratio", "ok"})
        | {"target": f.target_text() or None, "note": f.note}
        for f in figures
    ]
    path.write_text(json.dumps(rows, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
