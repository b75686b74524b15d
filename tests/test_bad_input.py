"""Bad input, one table: every case gets one line naming the problem and the fix, the same exit code
for the same kind of error (2: bad input or set-up; 1: the work failed), no traceback, and
nothing lost or left behind. Refused before any flow or Prefect server starts, where it can be.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from flows import batch, generate, ingest, retrieve

pytestmark = pytest.mark.usefixtures("prefect_harness")


def _sheet(tmp_path: Path, name: str, data: bytes) -> str:
    path = tmp_path / name
    path.write_bytes(data)
    return str(path)


def _xlsx_with_two_sheets(tmp_path: Path) -> str:
    import pandas as pd

    path = tmp_path / "two.xlsx"
    with pd.ExcelWriter(path) as writer:
        pd.DataFrame({"question": ["What is oolong?"]}).to_excel(writer, sheet_name="first", index=False)
        pd.DataFrame({"notes": ["x"]}).to_excel(writer, sheet_name="second", index=False)
    return str(path)


CASES = [
    # (name, command, argv builder, exit code, words the one line must contain)
    ("empty question", generate, lambda t: ["   "], 2, ["[retrieve]", "empty"]),
    ("huge question", generate, lambda t: ["x" * 5000], 2, ["5,000", "RAGREEL_MAX_QUESTION_CHARS"]),
    ("invalid UTF-8 bytes", generate, lambda t: ["caf\udce9 au lait?"], 2, ["UTF-8"]),
    ("emoji only", generate, lambda t: ["😀😀😀 ❓"], 2, ["[retrieve]", "no words"]),
    (
        "Japanese question",
        generate,
        lambda t: ["烏龍茶はどうやって淹れますか？"],
        2,
        ["Japanese", "--language"],
    ),
    ("top-k 0", generate, lambda t: ["What is oolong?", "--top-k", "0"], 2, ["top_k"]),
    ("top-k too big", generate, lambda t: ["What is oolong?", "--top-k", "100000"], 2, ["top_k", "50"]),
    ("no knowledge base", generate, lambda t: ["What is oolong?"], 2, ["no knowledge base", "flows.ingest"]),
    ("retrieve, no knowledge base", retrieve, lambda t: ["What is oolong?"], 2, ["no knowledge base"]),
    ("ingest, missing path", ingest, lambda t: [str(t / "nope")], 2, ["not found"]),
    ("batch, missing file", batch, lambda t: [str(t / "nope.csv")], 2, ["not found"]),
    (
        "batch, no question column",
        batch,
        lambda t: [_sheet(t, "q.csv", b"id,text\n1,hello\n")],
        2,
        ["no 'question' column"],
    ),
    ("batch, not a spreadsheet", batch, lambda t: [_sheet(t, "q.pdf", b"%PDF")], 2, ["unsupported"]),
]


@pytest.mark.parametrize(("name", "command", "argv", "code", "words"), CASES, ids=[c[0] for c in CASES])
def test_bad_input_is_one_clear_line(ragreel_home, tmp_path, capsys, name, command, argv, code, words):
    assert command.main(argv(tmp_path)) == code
    captured = capsys.readouterr()
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1, captured.err  # one line, no traceback, no server start-up chatter
    assert lines[0].startswith("error: ")
    for word in words:
        assert word in lines[0], lines[0]
    assert not ragreel_home.exists()  # nothing was created for a command that could not start


def test_a_bad_setting_is_one_line_naming_the_variable(ragreel_home, monkeypatch, capsys):
    monkeypatch.setenv("RAGREEL_TOP_K", "abc")
    assert generate.main(["What is oolong?"]) == 2
    [line] = capsys.readouterr().err.strip().splitlines()
    assert line.startswith("error: [settings]") and "RAGREEL_TOP_K" in line


def test_control_characters_and_escape_sequences_never_reach_the_terminal():
    from ragreel.schemas import check_question

    assert check_question("What\x1b[31m is\x07 oolong?\x1b]0;title\x07") == "What is oolong?"


def test_a_multi_sheet_workbook_says_which_sheet_it_read(tmp_path):
    from tasks.batch import read_spreadsheet

    path = _xlsx_with_two_sheets(tmp_path)
    sheet = read_spreadsheet(path)
    assert [r.question for r in sheet.rows] == ["What is oolong?"]
    assert any("2 sheets" in note and "first" in note for note in sheet.notes)
    with pytest.raises(Exception, match="no 'question' column"):
        read_spreadsheet(path, sheet="second")


def test_formulas_in_column_names_and_skipped_rows_in_the_manifest(tmp_path):
    import pandas as pd

    from tasks.batch import read_spreadsheet, write_manifest

    sheet = read_spreadsheet(
        _sheet(tmp_path, "q.csv", b'id,question,"=HYPERLINK(""http://evil"")"\nok,What?,x\nbad,  ,y\n')
    )
    [problem] = sheet.problems
    assert (problem.id, problem.question) == ("bad", "")
    csv_path, json_path = write_manifest(
        [{"id": "ok", "question": "What?", **sheet.rows[0].extra}], tmp_path / "out"
    )
    header = pd.read_csv(csv_path, dtype=str, encoding="utf-8-sig").columns
    assert all(not str(column).startswith("=") for column in header)
    assert json.loads(json_path.read_text())[0]['=hyperlink("http://evil")'] == "x"
