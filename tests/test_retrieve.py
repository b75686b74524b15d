"""Hybrid retrieval over the sample knowledge base, in English and Chinese, and its errors."""

import json

import pytest

from flows.retrieve import main
from ragreel.errors import InputError, KnowledgeBaseError
from ragreel.schemas import Passage
from tasks.retrieve import retrieve_passages, with_translations_best


@pytest.mark.parametrize(
    ("question", "answering_source"),
    [
        ("What water temperature should I use for oolong tea?", "tea/brewing-guide.md"),
        ("How do garbage trucks in Taipei let people know they are coming?", "taipei/recycling.txt"),
        ("Who decides whether there is a typhoon day off?", "typhoons.md"),
        ("高山烏龍茶要種在多高的地方？", "tea/high-mountain-oolong.md"),
        ("可以在台北捷運上喝水嗎？", "taipei/mrt-guide.html"),
        ("珍珠奶茶起源於哪裡？", "night-markets.md"),
        ("珍珠奶茶起源于哪里？", "night-markets.md"),  # Simplified question, Traditional document
    ],
)
def test_answering_document_ranks_first(use_ingested_home, question, answering_source):
    passages = retrieve_passages(question, top_k=3)
    assert len(passages) == 3
    assert passages[0].source == answering_source
    assert [p.rank for p in passages] == [1, 2, 3]
    assert passages[0].score >= passages[1].score >= passages[2].score
    assert passages[0].title and passages[0].text


def test_passages_carry_title_heading_and_language(use_ingested_home):
    [top] = retrieve_passages("Who decides whether there is a typhoon day off?", top_k=1)
    assert top.title == "Typhoon Preparedness in Taiwan"
    assert top.heading == "Typhoon days off"
    assert top.language == "en"
    assert "Local governments decide" in top.text


@pytest.mark.parametrize("question", ["", "   \n\t", "x" * 2001])
def test_bad_questions_fail_before_any_work(ragreel_home, question):
    # ragreel_home is empty: the question check must come before the knowledge-base check
    with pytest.raises(InputError):
        retrieve_passages(question)


def test_missing_knowledge_base_says_which_command_to_run(ragreel_home):
    with pytest.raises(KnowledgeBaseError, match="python -m flows.ingest"):
        retrieve_passages("What is oolong?")


def test_cli_json_lists_every_question(use_ingested_home, capsys):
    assert main(["What is oolong?", "捷運幾點營運？", "--top-k", "2", "--json"]) == 0
    results = json.loads(capsys.readouterr().out)
    assert [r["question"] for r in results] == ["What is oolong?", "捷運幾點營運？"]
    assert all(len(r["passages"]) == 2 for r in results)
    assert results[1]["passages"][0]["source"] == "taipei/mrt-guide.html"


def test_cli_reports_errors_with_exit_code(ragreel_home, capsys):
    assert main(["   "]) == 2
    assert "question is empty" in capsys.readouterr().err


def test_vector_side_is_trusted_by_how_much_of_the_question_the_model_reads():
    from ragreel.kb.embedding import get_embedder

    minilm = get_embedder("all-MiniLM-L6-v2")

    assert minilm.vocabulary_coverage("What water temperature should I use for oolong tea?") == 1.0
    assert minilm.vocabulary_coverage("高山烏龍茶要種在多高的地方？") < 0.6


# --- cross-lingual search ------------------------------------------------------------------------------

NIGHT_MARKET = "Which night market is right next to Jiantan MRT station?"
TRANSLATIONS = {NIGHT_MARKET: "哪個夜市鄰近捷運劍潭站？"}


@pytest.fixture
def translating_llm(use_ingested_home, stub_llm, monkeypatch):
    """The stub LLM, translating the questions it knows (and echoing others, which is no translation)."""
    from tests.openai_stub_server import grounded_script, is_translation, question_to_translate

    monkeypatch.setenv("RAGREEL_CROSS_LINGUAL", "true")

    def reply(body: dict) -> str:
        if is_translation(body):
            question = question_to_translate(body)
            return TRANSLATIONS.get(question, question)
        return grounded_script(body)

    stub_llm.reply = reply
    return stub_llm


def test_an_english_question_finds_the_chinese_passage_through_its_translation(translating_llm):
    own = retrieve_passages(NIGHT_MARKET, top_k=3, cross_lingual=False)
    assert "night-markets.md" not in [p.source for p in own]

    passages = retrieve_passages(NIGHT_MARKET, top_k=3)
    assert passages[0].chunk_id == own[0].chunk_id  # the question's own best keeps the first place
    assert passages[1].source == "night-markets.md" and "劍潭" in passages[1].text
    assert [p.rank for p in passages] == [1, 2, 3] and len(passages) == 3
    [request] = translating_llm.chat_requests()
    assert "Traditional Chinese" in request.body["messages"][0]["content"]
    assert request.body["messages"][-1]["content"] == f"<question>{NIGHT_MARKET}</question>"


def test_a_failing_translator_leaves_the_question_as_asked(translating_llm, caplog):
    translating_llm.fail_next("503")
    passages = retrieve_passages(NIGHT_MARKET, top_k=3)
    own = retrieve_passages(NIGHT_MARKET, top_k=3, cross_lingual=False)
    assert [p.chunk_id for p in passages] == [p.chunk_id for p in own]
    assert len(translating_llm.chat_requests()) == 1  # a translation is not worth retrying
    assert "Searching without a translation of the question" in caplog.text


def test_a_reply_that_is_no_translation_is_not_searched(translating_llm):
    question = "Where does high mountain oolong grow?"  # the stub echoes it: not a translation
    passages = retrieve_passages(question, top_k=3)
    assert [p.chunk_id for p in passages] == [
        p.chunk_id for p in retrieve_passages(question, top_k=3, cross_lingual=False)
    ]
    assert len(translating_llm.chat_requests()) == 1


def test_only_the_knowledge_bases_other_languages_are_asked_for(translating_llm):
    from ragreel.kb.store import KnowledgeBase
    from ragreel.settings import get_settings
    from tasks.retrieve import translations

    assert KnowledgeBase(get_settings()).languages() == ["en", "zh"]  # recorded by the ingest
    assert translations(NIGHT_MARKET, "en", ["en"], get_settings()) == []
    assert retrieve_passages(NIGHT_MARKET, top_k=1)  # one passage: the question's own best
    assert translating_llm.chat_requests() == []


@pytest.mark.parametrize(
    ("reply", "target", "usable"),
    [
        ("哪個夜市鄰近捷運劍潭站？", "zh", "哪個夜市鄰近捷運劍潭站？"),
        ("<question>哪個夜市鄰近捷運劍潭站？</question>", "zh", "哪個夜市鄰近捷運劍潭站？"),
        ("「哪個夜市鄰近捷運劍潭站？」\n這是翻譯。", "zh", "哪個夜市鄰近捷運劍潭站？"),
        (NIGHT_MARKET, "zh", None),  # the question back
        ("The night market next to Jiantan is Shilin.", "zh", None),  # an answer, in the wrong language
        ("夜市" * 200, "zh", None),  # far longer than a translation
        ("", "zh", None),
    ],
)
def test_only_a_translation_into_the_target_language_is_used(reply, target, usable):
    from ragreel.llm.translate import usable_translation

    assert usable_translation(reply, NIGHT_MARKET, target) == usable


def _passage(chunk_id: str, rank: int, similarity: float, source: str = "a.md") -> Passage:
    return Passage(
        chunk_id=chunk_id,
        source=source,
        title="t",
        heading="",
        text="x",
        language="en",
        score=1.0 / rank,
        similarity=similarity,
        rank=rank,
    )


def test_a_translations_best_passage_takes_the_second_place_when_it_is_as_close():
    own = [_passage("a", 1, 0.85), _passage("b", 2, 0.80), _passage("c", 3, 0.79)]
    far, close = _passage("z", 1, 0.83, "zh.md"), _passage("z", 1, 0.86, "zh.md")

    assert with_translations_best(own, [far], shift=-0.04) == own  # 0.79 on the question's scale
    fused = with_translations_best(own, [close], shift=-0.04)
    assert [p.chunk_id for p in fused] == ["a", "z", "b"] and [p.rank for p in fused] == [1, 2, 3]
    assert fused[1].similarity == pytest.approx(0.82) and fused[1].score == own[1].score
    # shifted up to rank, but its similarity stays the cosine it measured
    up = with_translations_best(own, [_passage("z", 1, 0.78, "zh.md")], shift=0.04)
    assert [p.chunk_id for p in up] == ["a", "z", "b"] and up[1].similarity == pytest.approx(0.78)
    # already among the first two: left where it is; further down: moved up, not repeated
    assert with_translations_best(own, [_passage("b", 1, 0.9)], shift=0.0) == own
    moved = with_translations_best(own, [_passage("c", 1, 0.9)], shift=0.0)
    assert [p.chunk_id for p in moved] == ["a", "c", "b"]
