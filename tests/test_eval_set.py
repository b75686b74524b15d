"""The evaluation set stays what `make eval` reports on: enough questions of each kind, each answered
by a document that exists, each with key facts to score answers by."""

from collections import Counter

from bench.answer_eval import facts_found
from bench.retrieval_eval import EVAL_DIR, load_questions


def test_the_set_has_enough_questions_of_each_kind_and_language():
    questions = load_questions()
    for language in ("en", "zh"):
        mine = [q for q in questions if q["language"] == language]
        assert len(mine) >= 40
        assert sum(q["kind"] != "literal" for q in mine) >= len(mine) / 3
        types = Counter(q["answer_type"] for q in mine)
        assert {"number", "yes-no", "name", "procedure"} <= set(types)
    for q in questions:
        assert (EVAL_DIR / "docs" / q["answer_source"]).is_file(), q["answer_source"]
        assert q["key_facts"] and all(forms and all(forms) for forms in q["key_facts"]), q["question"]


def test_facts_are_found_case_blind_and_in_either_chinese_script():
    facts = [["2048", "2,048"], ["Passphrase"], ["三十五", "35"]]
    assert facts_found("Use 2,048 bits and a PASSPHRASE; 年滿三十五歲", facts) == [True, True, True]
    assert facts_found("Use 1024 bits", facts) == [False, False, False]
    assert facts_found("台湾的茶叶", [["臺灣"]]) == [
        True
    ]  # Simplified in the answer, Traditional in the fact
