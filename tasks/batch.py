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

from pydantic import BaseModel, Field, ValidationError

from ragreel.errors import InputError
from ragreel.files import atomic_path, write_text_atomic
from ragreel.schemas import ASPECTS, MAX_TOP_K, VideoRequest, error_message
from ragreel.settings import Settings, get_settings
from ragreel.text import UndecodableText, decode_bytes

STAGE = "batch"
# Cells starting with these are run as formulas by Excel and LibreOffice.
FORMULA_PREFIXES = ("=", "+", "-", "@", "\t", "\r")


class BatchRow(VideoRequest):
    """One spreadsheet row: the generate flow's parameters (checked by :class:`VideoRequest`), its place
    in the sheet, and the other columns, which the manifest carries along."""

    row: int = Field(description="Row number as the spreadsheet shows it (the header is row 1).")
    id: str
    extra: dict[str, str] = Field(
        default_factory=dict, description="Other columns, carried into the manifest."
    )


# Columns that are the flow's parameters; any other column is carried into the manifest.
KNOWN_COLUMNS = ("id", *VideoRequest.model_fields)
# Columns a manifest writes about its rows: when a reviewed manifest is fed back as the sheet, they
# are made anew, not carried (its ``script`` column is a parameter: the reviewed script is rendered).
MANIFEST_COLUMNS = (
    "row",
    "status",
    "answer",
    "sources",
    "checks",
    "video",
    "subtitles",
    "thumbnail",
    "narration_seconds",
    "video_seconds",
    "llm",
    "voice",
    "from_cache",
    "failed_stage",
    "error",
)


class RowProblem(BaseModel):
    row: int
    column: str
    message: str
    id: str = Field("", description="The row's id as the sheet gives it, for the manifest.")
    question: str = ""

    def __str__(self) -> str:
        return f"row {self.row}, column {self.column}: {self.message}"


class Spreadsheet(BaseModel):
    path: str
    content_hash: str
    rows: list[BatchRow]
    problems: list[RowProblem]
    notes: list[str] = Field(
        default_factory=list, description="What a reader should know, e.g. sheets not read."
    )


# --- reading ------------------------------------------------------------------------------------


def _decode(data: bytes, path: Path) -> str:
    try:
        return decode_bytes(data)
    except UndecodableText as exc:
        raise InputError(
            f"cannot read {path.name}: {exc}",
            stage=STAGE,
            hint="save the spreadsheet as UTF-8 CSV or as .xlsx",
        ) from exc


def _read_frame(path: Path, sheet: str | None, notes: list[str]):
    import pandas as pd

    suffix = path.suffix.lower()
    try:
        if suffix in (".xlsx", ".xlsm"):
            sheets = pd.ExcelFile(path, engine="openpyxl").sheet_names
            if sheet is not None and sheet not in sheets:
                raise InputError(
                    f"{path.name} has no sheet {sheet!r} (sheets: {', '.join(sheets)})",
                    stage=STAGE,
                    hint="pass one of those names with --sheet",
                )
            if sheet is None and len(sheets) > 1:
                notes.append(
                    f"{path.name} has {len(sheets)} sheets ({', '.join(sheets)}); read the first, "
                    f"{sheets[0]!r} (choose another with --sheet)"
                )
            return pd.read_excel(
                path, sheet_name=sheet or sheets[0], dtype=str, keep_default_na=False, engine="openpyxl"
            )
        if suffix not in (".csv", ".tsv", ".txt"):
            raise InputError(
                f"{path.name}: unsupported spreadsheet type {suffix!r}",
                stage=STAGE,
                hint="use .csv (comma, semicolon or tab) or .xlsx",
            )
        text = _decode(path.read_bytes(), path)
        if not text.strip():
            raise InputError(
                f"{path.name} is empty", stage=STAGE, hint="add a header row with a 'question' column"
            )
        try:
            delimiter = csv.Sniffer().sniff(text[:4096].split("\n", 1)[0], delimiters=",;\t").delimiter
        except csv.Error:
            delimiter = ","
        return pd.read_csv(
            io.StringIO(text), sep=delimiter, dtype=str, keep_default_na=False, skip_blank_lines=True
        )
    except InputError:
        raise
    except FileNotFoundError as exc:
        raise InputError(f"spreadsheet not found: {path}", stage=STAGE) from exc
    except Exception as exc:  # noqa: BLE001 - pandas/openpyxl raise many kinds for a bad file
        raise InputError(
            f"cannot read {path.name}: {exc}", stage=STAGE, hint="check that it is a valid CSV or .xlsx file"
        ) from exc


def read_spreadsheet(
    path: str | Path, settings: Settings | None = None, sheet: str | None = None
) -> Spreadsheet:
    """Read and validate a spreadsheet of questions (``sheet``: which sheet of a workbook), from a
    local path or an object on the store (``s3://...``: where the API puts an upload, so that a
    worker on any host can read it)."""
    settings = settings or get_settings()
    shown = str(path)
    path = sheet_copy(path, settings)
    notes: list[str] = []
    frame = _read_frame(path, sheet, notes)
    frame.columns = [str(c).strip().lower().lstrip("\ufeff") for c in frame.columns]
    if "question" not in frame.columns:
        found = ", ".join(repr(c) for c in frame.columns) or "none"
        raise InputError(
            f"{path.name} has no 'question' column (columns found: {found})",
            stage=STAGE,
            hint="name the column of questions 'question' in the header row",
        )
    if frame.empty:
        raise InputError(
            f"{path.name} has a header but no rows", stage=STAGE, hint="add one question per row"
        )
    rows, problems = _validate(frame, settings)
    return Spreadsheet(
        path=shown,
        content_hash=file_hash(path),
        rows=rows,
        problems=problems,
        notes=notes,
    )


def sheet_copy(spreadsheet: str | Path, settings: Settings) -> Path:
    """A local path of the spreadsheet: itself, or a fresh copy of its object (it may have been
    replaced since it was last read)."""
    from ragreel import storage
    from ragreel.outputs import local_copy

    if storage.is_url(spreadsheet) and storage.modified(str(spreadsheet), settings) is None:
        raise InputError(f"{spreadsheet}: no such object", stage=STAGE, hint="check the spreadsheet's URL")
    return local_copy(str(spreadsheet), settings, fresh=True)


def batch_folder(spreadsheet: str | Path, content_hash: str, settings: Settings) -> Path:
    """RAGREEL_HOME/batches/<sheet name>-<content hash>: the same sheet always lands in the same folder."""
    return settings.batches_dir / f"{Path(spreadsheet).stem}-{content_hash}"


def batch_location(spreadsheet: str | Path, content_hash: str, settings: Settings) -> str:
    """Where the batch's manifest and videos are published: its folder, or that folder's place on
    the store."""
    from ragreel.outputs import run_location

    return run_location(f"batches/{batch_folder(spreadsheet, content_hash, settings).name}", settings)


def file_hash(path: Path) -> str:
    """The first 12 hex digits of the file's SHA-256: what names its batch folder."""
    return hashlib.sha256(path.read_bytes()).hexdigest()[:12]


def _validate(frame, settings: Settings) -> tuple[list[BatchRow], list[RowProblem]]:
    rows: list[BatchRow] = []
    problems: list[RowProblem] = []
    seen_ids: dict[str, int] = {}
    extra_columns = [c for c in frame.columns if c not in KNOWN_COLUMNS and c not in MANIFEST_COLUMNS]
    for index, record in enumerate(frame.to_dict("records")):
        number = index + 2
        cell = {k: str(v).strip() for k, v in record.items()}
        if not any(cell.values()):
            continue  # a fully blank line is not a row
        found: list[RowProblem] = []
        row_id = cell.get("id") or f"row-{number}"
        if row_id in seen_ids:
            found.append(
                RowProblem(
                    row=number,
                    column="id",
                    message=f"id {row_id!r} is already used on row {seen_ids[row_id]}: ids must be unique",
                )
            )
        else:
            seen_ids[row_id] = number
        fields = {c: cell[c] for c in VideoRequest.model_fields if cell.get(c)}
        fields["question"] = cell.get("question", "")
        if "aspect" in fields:
            fields["aspect"] = fields["aspect"].lower()
        try:
            row = BatchRow.model_validate(
                {**fields, "row": number, "id": row_id, "extra": {c: cell.get(c, "") for c in extra_columns}},
                context={"max_question_chars": settings.max_question_chars},
            )
        except ValidationError as exc:
            found += [
                RowProblem(row=number, column=str(error["loc"][0]), message=_row_message(error, cell))
                for error in exc.errors()
            ]
        if found:
            problems.extend(
                p.model_copy(update={"id": cell.get("id", ""), "question": cell.get("question", "")})
                for p in found
            )
            continue
        rows.append(row)
    return rows, problems


def _row_message(error: dict, cell: dict[str, str]) -> str:
    column = str(error["loc"][0])
    message = error_message(error)
    if column == "question" and "empty" in message:
        return "blank question: fill it in or delete the row"
    if column == "top_k":
        return f"{cell.get('top_k')!r} is not a whole number from 1 to {MAX_TOP_K}"
    if column == "aspect":
        return f"{cell.get('aspect')!r} is not one of {', '.join(ASPECTS)}"
    return message


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


def manifest_frame(entries: list[dict]):
    """The manifest as a table whose every cell a spreadsheet shows as text."""
    import pandas as pd

    # Column names come from the user's sheet too: a header is a cell that could hold a formula.
    return pd.DataFrame(
        [{spreadsheet_safe(k): spreadsheet_safe(v) for k, v in entry.items()} for entry in entries]
    )


def write_manifest_xlsx(manifest_json: Path) -> Path:
    """manifest.xlsx beside manifest.json, made from it (again only when the JSON is newer)."""
    target = manifest_json.with_suffix(".xlsx")
    if not target.exists() or target.stat().st_mtime < manifest_json.stat().st_mtime:
        entries = json.loads(manifest_json.read_text(encoding="utf-8"))
        with atomic_path(target) as temporary:
            manifest_frame(entries).to_excel(temporary, index=False, engine="openpyxl")
    return target


def write_manifest(entries: list[dict], folder: Path) -> tuple[Path, Path]:
    """manifest.csv (UTF-8 with BOM, so Excel shows Chinese) and manifest.json, written atomically."""
    csv_path, json_path = folder / "manifest.csv", folder / "manifest.json"
    with atomic_path(csv_path) as temporary:
        manifest_frame(entries).to_csv(temporary, index=False, encoding="utf-8-sig")
    write_text_atomic(json_path, json.dumps(entries, ensure_ascii=False, indent=2))
    return csv_path, json_path
