"""Hybrid retrieval over the sample knowledge base, in English and Chinese, and its errors."""

import json

import pytest

from flows.retrieve import main
from ragreel.errors import InputError, KnowledgeBaseError
from tasks.retrieve import retrieve_passages


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
