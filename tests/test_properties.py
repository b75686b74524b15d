"""Property-based tests: arbitrary text never breaks the spreadsheet reader, file names, run names,
prompt building or the chunker (hypothesis, a bounded number of examples each)."""

from __future__ import annotations

import csv
import io

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ragreel.errors import InputError
from ragreel.kb.chunking import chunk_document
from ragreel.kb.loaders import Document, Section
from ragreel.llm.prompt import LengthTarget
from ragreel.llm.script import script_messages
from ragreel.schemas import Passage
from ragreel.settings import get_settings
from tasks.batch import BatchRow, read_spreadsheet, safe_names
from tasks.stage import one_line

# Any Unicode text, Chinese and control characters included (but no lone surrogates: a str read
# from a file or a spreadsheet cell never holds them).
TEXT = st.text(alphabet=st.characters(blacklist_categories=("Cs",)), max_size=200)
CJK = st.text(alphabet=st.characters(min_codepoint=0x4E00, max_codepoint=0x4FFF), min_size=1, max_size=60)
EXAMPLES = settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)


@EXAMPLES
@given(questions=st.lists(TEXT, min_size=1, max_size=6))
def test_spreadsheet_reader_takes_any_cell_text(tmp_path_factory, questions):
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(["id", "question"])
    for index, question in enumerate(questions):
        writer.writerow([f"q{index}", question])
    path = tmp_path_factory.mktemp("sheet") / "questions.csv"
    path.write_text(buffer.getvalue(), encoding="utf-8")
    try:
        sheet = read_spreadsheet(path)
    except InputError:
        return  # a whole-file problem (e.g. every row blank) is a clear error, never a crash
    for row in sheet.rows:
        assert row.question and row.question == " ".join(row.question.split())
    for problem in sheet.problems:
        assert problem.row >= 2 and problem.column


@EXAMPLES
@given(ids=st.lists(TEXT.filter(lambda s: s.strip()), min_size=1, max_size=8, unique=True))
def test_safe_names_are_unique_plain_file_names(tmp_path_factory, ids):
    folder = tmp_path_factory.mktemp("batch")
    rows = [BatchRow(row=index + 2, id=row_id, question="q") for index, row_id in enumerate(ids)]
    names = safe_names(rows)
    assert len({name.lower() for name in names.values()}) == len(rows)
    for name in names.values():
        assert name not in ("", ".", "..") and "/" not in name and "\x00" not in name
        assert (folder / name).resolve().parent == folder.resolve()


@EXAMPLES
@given(text=TEXT, limit=st.integers(min_value=2, max_value=80))
def test_run_names_from_user_text_are_one_printable_line(text, limit):
    name = one_line(text, limit)
    assert len(name) <= limit and name.isprintable() and name == name.strip()
    assert f"retrieve passages for {name!r}"  # a plain string: no format template is applied to it


@EXAMPLES
@given(question=TEXT.filter(lambda s: s.strip()), passage_text=TEXT, title=TEXT)
def test_prompt_building_takes_any_question_and_passage(question, passage_text, title):
    passage = Passage(
        chunk_id="c", source="s.md", title=title, text=passage_text, language="en", score=1.0, rank=1
    )
    for language in ("en", "zh"):
        system, user = script_messages(question, [passage], language, LengthTarget(language, 30, 90))
        # The passage's and question's text cannot close their blocks or open new ones.
        assert user["content"].count("<question>") == 1 and user["content"].count("</question>") == 1
        assert user["content"].count("</passage>") == 1
        assert question.strip()[:1] in user["content"] and system["content"]


@EXAMPLES
@given(paragraphs=st.lists(st.one_of(TEXT, CJK), min_size=1, max_size=8))
def test_chunker_keeps_every_word_within_the_size(paragraphs):
    config = get_settings()
    text = "\n\n".join(paragraphs)
    chunks = chunk_document(Document("t", [Section("", text)]), config)
    # Nothing is lost: every character of the text is in some chunk (overlaps repeat some).
    assert set("".join(text.split())) <= set("".join(chunk.text for chunk in chunks))
    for chunk in chunks:
        limit = config.chunk_chars_zh if chunk.language == "zh" else config.chunk_chars_en
        assert chunk.text and len(chunk.text) <= limit
