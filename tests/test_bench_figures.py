"""`make bench`'s table: each figure beside its baseline, its ratio and whether it meets its target."""

import json

from bench.figures import FIGURES_VARIABLE, Figure, read, record, table, write_json


def test_a_figure_is_judged_on_its_ratio_or_on_its_value():
    render = Figure(name="render", value=13.0, unit="s", baseline=10.0, target=("<=", 1.5))
    assert (render.ratio, render.ok, render.target_text()) == (1.3, True, "<= 1.5x")
    slow = render.model_copy(update={"value": 16.0})
    assert slow.ok is False
    speed = Figure(name="ingest", value=6.7, unit="chunks/s", target=(">=", 10.0), target_of="value")
    assert (speed.ratio, speed.ok, speed.target_text()) == (None, False, ">= 10 chunks/s")
    assert Figure(name="record only", value=3.0, unit="s").ok is None


def test_figures_travel_from_a_benchmark_to_the_table_and_the_json(tmp_path, monkeypatch):
    collected = tmp_path / "figures.jsonl"
    monkeypatch.setenv(FIGURES_VARIABLE, str(collected))
    record(Figure(name="render", value=13.0, unit="s", baseline=10.0, target=("<=", 1.5)))
    record(Figure(name="ingest", value=6.7, unit="chunks/s", target=(">=", 10.0), target_of="value"))
    figures = read(collected)
    assert [f.name for f in figures] == ["render", "ingest"]

    lines = table(figures).splitlines()
    assert lines[0].split() == ["figure", "value", "baseline", "ratio", "target", "ok"]
    assert lines[2].split()[-1] == "yes" and lines[3].split()[-1] == "NO"

    write_json(figures, tmp_path / "latest.json")
    rows = json.loads((tmp_path / "latest.json").read_text())
    assert rows[0] | {"note": ""} == {
        "name": "render",
        "value": 13.0,
        "unit": "s",
        "baseline": 10.0,
        "ratio": 1.3,
        "target": "<= 1.5x",
        "ok": True,
        "note": "",
    }
    assert rows[1]["ok"] is False and rows[1]["ratio"] is None


def test_without_the_variable_a_benchmark_run_alone_records_nothing(tmp_path, monkeypatch):
    monkeypatch.delenv(FIGURES_VARIABLE, raising=False)
    record(Figure(name="x", value=1.0, unit="s"))
    assert not list(tmp_path.iterdir())
