"""Reading and validating spreadsheets of questions (no models involved)."""

from pathlib import Path

import pytest

from ragreel.errors import InputError
from tasks.batch import BatchRow, read_spreadsheet, safe_names, spreadsheet_safe, write_manifest


def write(tmp_path: Path, name: str, data: bytes | str) -> Path:
    path = tmp_path / name
    path.write_bytes(data.encode("utf-8") if isinstance(data, str) else data)
    return path


@pytest.mark.parametrize(
    ("encoding", "delimiter"),
    [("utf-8", ","), ("utf-8-sig", ";"), ("utf-16", "\t"), ("big5", ","), ("cp1252", ";")],
)
def test_csv_in_common_encodings_and_delimiters(tmp_path, encoding, delimiter):
    question_zh = "珍珠奶茶起源於哪裡？" if encoding != "cp1252" else "Où est né le thé aux perles ?"
    text = delimiter.join(["id", "question", "language", "owner"]) + "\n"
    text += delimiter.join(["q1", question_zh, "zh", "Lin"]) + "\n"
    text += delimiter.join(["q2", "Who decides typhoon days off?", "en", "Chen"]) + "\n"
    sheet = read_spreadsheet(write(tmp_path, "q.csv", text.encode(encoding)))
    assert [r.question for r in sheet.rows] == [question_zh, "Who decides typhoon days off?"]
    assert sheet.rows[0].extra == {"owner": "Lin"}
    assert sheet.problems == []


def test_xlsx(tmp_path):
    import pandas as pd

    path = tmp_path / "q.xlsx"
    pd.DataFrame(
        {"Question": ["What is oolong?", "高山茶多高？"], "top_k": ["3", ""], "aspect": ["portrait", ""]}
    ).to_excel(path, index=False)
    sheet = read_spreadsheet(path)
    assert [(r.row, r.id, r.top_k, r.aspect) for r in sheet.rows] == [
        (2, "row-2", 3, "portrait"),
        (3, "row-3", None, None),
    ]


def test_bad_rows_are_named_by_row_and_column_and_good_rows_stay(tmp_path):
    csv = (
        "id,question,language,top_k,voice\n"
        "a,What is oolong?,en,3,\n"
        "b,   ,en,,\n"
        "c," + "x" * 2001 + ",en,,\n"
        "a,Duplicate id?,en,,\n"
        "d,Bad language?,fr,,\n"
        "e,Bad top k?,en,many,\n"
        "f,Bad voice?,en,,robot\n"
        ",,,,\n"
        "g,高山茶多高？,,,\n"
    )
    sheet = read_spreadsheet(write(tmp_path, "q.csv", csv))
    assert [r.id for r in sheet.rows] == ["a", "g"]
    problems = {(p.row, p.column) for p in sheet.problems}
    assert problems == {
        (3, "question"),
        (4, "question"),
        (5, "id"),
        (6, "language"),
        (7, "top_k"),
        (8, "voice"),
    }
    assert "already used on row 2" in next(str(p) for p in sheet.problems if p.column == "id")
    assert "2,000" in next(p.message for p in sheet.problems if p.row == 4)


@pytest.mark.parametrize(
    ("name", "data", "message"),
    [
        ("empty.csv", b"", "empty"),
        ("header-only.csv", b"question,id\n", "no rows"),
        ("no-question.csv", b"id,text\n1,hello\n", "no 'question' column"),
        ("broken.xlsx", b"this is not a zip file", "cannot read"),
        ("questions.pdf", b"%PDF", "unsupported"),
    ],
)
def test_whole_file_problems_fail_before_any_work(tmp_path, name, data, message):
    with pytest.raises(InputError, match=message):
        read_spreadsheet(write(tmp_path, name, data))


def test_missing_file(tmp_path):
    with pytest.raises(InputError, match="not found"):
        read_spreadsheet(tmp_path / "nope.csv")


def test_safe_names_stay_inside_the_batch_folder(tmp_path):
    rows = [
        BatchRow(row=i + 2, id=row_id, question="q")
        for i, row_id in enumerate(
            ["../../etc/passwd", "/abs/path", "..", "con", "a:b*c", "ok", "OK", "影片一"]
        )
    ]
    names = safe_names(rows)
    assert len(set(n.lower() for n in names.values())) == len(rows)
    for name in names.values():
        target = (tmp_path / name).resolve()
        assert target.parent == tmp_path.resolve() and name not in ("", ".", "..")
    assert names["影片一"] == "影片一" and names["ok"] == "ok"


def test_manifest_cells_are_never_formulas(tmp_path):
    entries = [
        {"id": '=HYPERLINK("http://evil")', "answer": "+1 is fine", "n": 3, "note": "-x", "ok": "text"}
    ]
    csv_path, json_path = write_manifest(entries, tmp_path)
    import pandas as pd

    frame = pd.read_csv(csv_path, dtype=str, encoding="utf-8-sig")
    assert frame.loc[0, "id"].startswith("'=") and frame.loc[0, "answer"] == "'+1 is fine"
    assert frame.loc[0, "ok"] == "text" and frame.loc[0, "n"] == "3"
    assert spreadsheet_safe("@SUM(A1)") == "'@SUM(A1)"
    assert json_path.exists()
