"""Spreadsheets of questions: read CSV or Excel, validate every row, write the manifest.

Whole-file problems (unreadable, empty, no ``question`` column) raise InputError before any
work; row problems are collected with the spreadsheet row and column, so that the good rows
run and the report says exactly what to fix.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
from pathlib import Path

from pydantic import BaseModel, Field

from ragreel.errors import InputError
from ragreel.settings import Settings, get_settings

STAGE = "batch"
KNOWN_COLUMNS = ("id", "question", "language", "voice", "title", "top_k", "aspect")
LANGUAGES = ("en", "zh")
VOICES = ("auto", "bark", "piper", "kokoro", "espeak")
ASPECTS = ("landscape", "portrait", "square")
COMMON_ENCODINGS = ["cp950", "big5", "gb18030", "cp1252", "shift_jis", "euc_kr"]
# Cells starting with these are run as formulas by Excel and LibreOffice.
FORMULA_PREFIXES = ("=", "+", "-", "@", "\t", "\r")


class BatchRow(BaseModel):
    row: int = Field(description="Row number as the spreadsheet shows it (the header is row 1).")
    id: str
    question: str
    language: str | None = None
    voice: str | None = None
    title: str | None = None
    top_k: int | None = None
    aspect: str | None = None
    extra: dict[str, str] = Field(default_factory=dict, description="Other columns, carried into the manifest.")


class RowProblem(BaseModel):
    row: int
    column: str
    message: str

    def __str__(self) -> str:
        return f"row {self.row}, column {self.column}: {self.message}"


class Spreadsheet(BaseModel):
    path: str
    content_hash: str
    rows: list[BatchRow]
    problems: list[RowProblem]


# --- reading ------------------------------------------------------------------------------------

def _decode(data: bytes, path: Path) -> str:
    if data.startswith((b"\xff\xfe", b"\xfe\xff")):
        return data.decode("utf-16")
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError:
        pass
    from charset_normalizer import from_bytes

    # Spreadsheets come from Excel on Taiwanese, mainland or Western systems: keep the guess to
    # their encodings, as a short sample fits many exotic code pages equally well.
    best = from_bytes(data, cp_isolation=COMMON_ENCODINGS).best()
    if best is None:
        raise InputError(f"cannot read {path.name}: unknown text encoding", stage=STAGE,
                         hint="save the spreadsheet as UTF-8 CSV or as .xlsx")
    return str(best)


def _read_frame(path: Path):
    import pandas as pd

    suffix = path.suffix.lower()
    try:
        if suffix in (".xlsx", ".xlsm"):
            return pd.read_excel(path, dtype=str, keep_default_na=False, engine="openpyxl")
        if suffix not in (".csv", ".tsv", ".txt"):
            raise InputError(f"{path.name}: unsupported spreadsheet type {suffix!r}", stage=STAGE,
                             hint="use .csv (comma, semicolon or tab) or .xlsx")
        text = _decode(path.read_bytes(), path)
        if not text.strip():
            raise InputError(f"{path.name} is empty", stage=STAGE, hint="add a header row with a 'question' column")
        try:
            delimiter = csv.Sniffer().sniff(text[:4096].split("\n", 1)[0], delimiters=",;\t").delimiter
        except csv.Error:
            delimiter = ","
        return pd.read_csv(io.StringIO(text), sep=delimiter, dtype=str, keep_default_na=False,
                           skip_blank_lines=True)
    except InputError:
        raise
    except FileNotFoundError as exc:
        raise InputError(f"spreadsheet not found: {path}", stage=STAGE) from exc
    except Exception as exc:  # noqa: BLE001 - pandas/openpyxl raise many kinds for a bad file
        raise InputError(f"cannot read {path.name}: {exc}", stage=STAGE,
                         hint="check that it is a valid CSV or .xlsx file") from exc


def read_spreadsheet(path: str | Path, settings: Settings | None = None) -> Spreadsheet:
    """Read and validate a spreadsheet of questions."""
    settings = settings or get_settings()
    path = Path(path)
    frame = _read_frame(path)
    frame.columns = [str(c).strip().lower().lstrip("\ufeff") for c in frame.columns]
    if "question" not in frame.columns:
        found = ", ".join(repr(c) for c in frame.columns) or "none"
        raise InputError(f"{path.name} has no 'question' column (columns found: {found})", stage=STAGE,
                         hint="name the column of questions 'question' in the header row")
    if frame.empty:
        raise InputError(f"{path.name} has a header but no rows", stage=STAGE, hint="add one question per row")
    rows, problems = _validate(frame, settings)
    return Spreadsheet(path=str(path), content_hash=hashlib.sha256(path.read_bytes()).hexdigest()[:12],
                       rows=rows, problems=problems)


def _validate(frame, settings: Settings) -> tuple[list[BatchRow], list[RowProblem]]:
    rows: list[BatchRow] = []
    problems: list[RowProblem] = []
    seen_ids: dict[str, int] = {}
    extra_columns = [c for c in frame.columns if c not in KNOWN_COLUMNS]
    for index, record in enumerate(frame.to_dict("records")):
        number = index + 2
        cell = {k: str(v).strip() for k, v in record.items()}
        if not any(cell.values()):
            continue  # a fully blank line is not a row
        found: list[RowProblem] = []
        question = " ".join(cell.get("question", "").split())
        if not question:
            found.append(RowProblem(row=number, column="question", message="blank question: fill it in or delete the row"))
        elif len(question) > settings.max_question_chars:
            found.append(RowProblem(row=number, column="question", message=(
                f"question is {len(question):,} characters; the limit is {settings.max_question_chars:,}")))
        row_id = cell.get("id") or f"row-{number}"
        if row_id in seen_ids:
            found.append(RowProblem(row=number, column="id",
                                    message=f"id {row_id!r} is already used on row {seen_ids[row_id]}: ids must be unique"))
        else:
            seen_ids[row_id] = number
        options: dict[str, object] = {}
        for column, allowed in (("language", LANGUAGES), ("voice", VOICES), ("aspect", ASPECTS)):
            value = cell.get(column, "").lower()
            if value and column == "language":
                value = value.replace("_", "-").split("-")[0]
            if value and value not in allowed:
                found.append(RowProblem(row=number, column=column,
                                        message=f"{cell[column]!r} is not one of {', '.join(allowed)}"))
            options[column] = value or None
        top_k = cell.get("top_k", "")
        if top_k:
            if not top_k.isdigit() or not 1 <= int(top_k) <= 50:
                found.append(RowProblem(row=number, column="top_k", message=f"{top_k!r} is not a whole number from 1 to 50"))
            else:
                options["top_k"] = int(top_k)
        if found:
            problems.extend(found)
            continue
        rows.append(BatchRow(row=number, id=row_id, question=question, title=cell.get("title") or None,
                             extra={c: cell.get(c, "") for c in extra_columns}, **options))
    return rows, problems


# --- file names -------------------------------------------------------------------------------

def safe_names(rows: list[BatchRow]) -> dict[str, str]:
    """Row id -> a file name that stays inside the batch folder, unique within the batch."""
    from pathvalidate import sanitize_filename

    names: dict[str, str] = {}
    used: set[str] = set()
    for row in rows:
        name = sanitize_filename(row.id.replace("/", "_").replace("\\", "_"), replacement_text="_")
        name = name.strip(" .")[:80] or f"row-{row.row}"
        if name.lower() in used:
            name = f"{name}-row{row.row}"
        used.add(name.lower())
        names[row.id] = name
    return names


# --- manifest -----------------------------------------------------------------------------------

def spreadsheet_safe(value: object) -> object:
    """A cell value that a spreadsheet shows as text, never runs as a formula."""
    if isinstance(value, str) and value.startswith(FORMULA_PREFIXES):
        return "'" + value
    return value


def write_manifest(entries: list[dict], folder: Path) -> tuple[Path, Path]:
    """manifest.csv (UTF-8 with BOM, so Excel shows Chinese) and manifest.json, written atomically."""
    import pandas as pd

    folder.mkdir(parents=True, exist_ok=True)
    csv_path, json_path = folder / "manifest.csv", folder / "manifest.json"
    frame = pd.DataFrame([{k: spreadsheet_safe(v) for k, v in entry.items()} for entry in entries])
    tmp_csv, tmp_json = csv_path.with_suffix(".csv.tmp"), json_path.with_suffix(".json.tmp")
    frame.to_csv(tmp_csv, index=False, encoding="utf-8-sig")
    tmp_json.write_text(json.dumps(entries, ensure_ascii=False, indent=2), encoding="utf-8")
    tmp_csv.replace(csv_path)
    tmp_json.replace(json_path)
    return csv_path, json_path
