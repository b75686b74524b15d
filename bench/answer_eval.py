"""Answer accuracy on the bilingual evaluation set: does the narrated answer carry the key facts?

    python -m bench.answer_eval                  # every question (the local LLM: about 30-60 min here)
    python -m bench.answer_eval --limit 6        # the first 6 questions of each language
    python -m bench.answer_eval --kind cross-lingual   # only the questions asked across languages
    python -m bench.answer_eval --show-misses --json
    python -m bench.answer_eval --sentences      # no model: only the answer sentences every script says

Ingests ``bench/eval/docs`` into a temporary knowledge base, then for each question of
``bench/eval/questions.jsonl`` retrieves passages and asks the answer stage (the configured LLM,
else the built-in local one) exactly as the generate flow does. Each question lists its
``key_facts``: a fact is found when one of its surface forms appears in the answer (case-insensitive,
Chinese compared in Traditional characters). A question is answered when every fact is found.
Reported per language: accuracy, mean share of facts found, the share of questions whose right
document was retrieved (so a miss can be told apart: retrieval or answer), mean answer length in
seconds of speech and time to answer; and from the evidence check, the share of scenes that passed
on the first try, that were rewritten, kept though they leave something out, narrated from their
quote (extractive) or dropped, and the share of answers with a sentence about "the passage" or
restating the question.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from collections import defaultdict

from bench.retrieval_eval import EVAL_DIR, load_questions


def facts_found(answer: str, key_facts: list[list[str]]) -> list[bool]:
    """For each fact, whether one of its surface forms is in ``answer``."""
    from ragreel.text import convert_chinese

    text = convert_chinese(answer).lower()
    return [any(convert_chinese(form).lower() in text for form in forms) for forms in key_facts]


def evasions(answer: str, question: str) -> dict[str, bool]:
    """Whether any sentence of ``answer`` talks about the sources or restates the question."""
    from ragreel.llm.evidence import restates_question, talks_about_sources
    from ragreel.speech.prepare import subtitle_sentences

    sentences = subtitle_sentences(answer)
    return {
        "about_sources": any(talks_about_sources(s) for s in sentences),
        "restates": any(restates_question(s, question) for s in sentences),
    }


def scene_outcomes(checks: list[str]) -> dict[str, int]:
    """Counts of what the evidence check did to each scene, read from ``Answer.checks``."""
    outcomes = {"passed": 0, "rewritten": 0, "kept": 0, "replaced": 0, "dropped": 0}
    for check in checks:
        for outcome in outcomes:
            if check.split(": ", 1)[-1].startswith(outcome):
                outcomes[outcome] += 1
    return outcomes


def score(items: list[dict]) -> dict[str, float]:
    n = len(items)
    scenes = {
        k: sum(i["scenes"].get(k, 0) for i in items)
        for k in ("passed", "rewritten", "kept", "replaced", "dropped")
    }
    checked = sum(scenes.values()) or 1
    return {
        "n": n,
        "accuracy": sum(all(i["found"]) for i in items) / n,
        "fact_recall": sum(sum(i["found"]) / len(i["found"]) for i in items) / n,
        "retrieved": sum(i["retrieved"] for i in items) / n,
        "seconds_spoken": sum(i["seconds_spoken"] for i in items) / n,
        "seconds_to_answer": sum(i["seconds_to_answer"] for i in items) / n,
        "first_try": scenes["passed"] / checked,
        "rewritten": scenes["rewritten"] / checked,
        "kept": scenes["kept"] / checked,
        "extractive": scenes["replaced"] / checked,
        "dropped": scenes["dropped"] / checked,
        "about_sources": sum(i["about_sources"] for i in items) / n,
        "restates": sum(i["restates"] for i in items) / n,
    }


def run(questions: list[dict]) -> list[dict]:
    from ragreel.errors import RagreelError
    from ragreel.llm.prompt import spoken_seconds
    from ragreel.schemas import Answer
    from tasks.answer import answer_question
    from tasks.retrieve import retrieve_passages

    results = []
    for number, item in enumerate(questions, start=1):
        passages = retrieve_passages(item["question"])
        started = time.perf_counter()
        try:
            answer = answer_question(item["question"], passages, item["language"])
        except RagreelError as error:  # a failed answer is a miss, not the end of the evaluation
            print(f"[{number}/{len(questions)}] error: {error}", file=sys.stderr, flush=True)
            answer = Answer(
                question=item["question"], language=item["language"], text="", backend="", model="", server=""
            )
        found = facts_found(answer.text, item["key_facts"])
        results.append(
            {
                **item,
                "answer": answer.text,
                "found": found,
                "retrieved": any(p.source == item["answer_source"] for p in passages),
                "seconds_spoken": spoken_seconds(answer.text, item["language"]),
                "seconds_to_answer": time.perf_counter() - started,
                "scenes": scene_outcomes(answer.checks),
                "checks": answer.checks,
                "script": [scene.model_dump(mode="json") for scene in answer.scenes],
                **evasions(answer.text, item["question"]),
            }
        )
        mark = "ok" if all(found) else f"{sum(found)}/{len(found)}"
        print(f"[{number}/{len(questions)}] {mark:>4} {item['question'][:70]}", file=sys.stderr, flush=True)
    return results


def run_sentences(questions: list[dict]) -> list[dict]:
    """No model: the answer sentences the stage makes every script say (``answer_sentences``),
    scored alone. A fact they miss must come from the model; a miss here is a ranking miss."""
    from ragreel.settings import get_settings
    from tasks.answer import answer_sentences
    from tasks.retrieve import retrieve_passages

    settings = get_settings()
    results = []
    for item in questions:
        passages = retrieve_passages(item["question"])
        scenes = answer_sentences(item["question"], passages, item["language"], settings)
        text = " ".join(scene.narration for scene in scenes)
        results.append(
            {
                **item,
                "answer": text,
                "found": facts_found(text, item["key_facts"]),
                "retrieved": any(p.source == item["answer_source"] for p in passages),
            }
        )
    return results


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bench.answer_eval",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--limit", type=int, help="only the first N questions of each language")
    parser.add_argument("--language", choices=("en", "zh"), help="only the questions in this language")
    parser.add_argument(
        "--kind", help="only the questions of this kind (literal, paraphrase, colloquial, cross-lingual)"
    )
    parser.add_argument("--show-misses", action="store_true", help="print the answers that miss a fact")
    parser.add_argument("--json", action="store_true", help="print every result as JSON")
    parser.add_argument(
        "--sentences",
        action="store_true",
        help="no model: score only the answer sentences every script is made to say (seconds, not minutes)",
    )
    args = parser.parse_args(argv)
    by_language: dict[str, list[dict]] = defaultdict(list)
    for item in load_questions():
        if args.language in (None, item["language"]) and args.kind in (None, item.get("kind", "literal")):
            by_language[item["language"]].append(item)
    questions = [q for items in by_language.values() for q in items[: args.limit or len(items)]]
    with tempfile.TemporaryDirectory(prefix="ragreel-answer-eval-") as home:
        os.environ["RAGREEL_HOME"] = home
        from flows.ingest import ingest_knowledge_base

        ingest_knowledge_base([str(EVAL_DIR / "docs")])
        results = run_sentences(questions) if args.sentences else run(questions)
    if args.sentences:
        return _print_sentence_scores(results, args.show_misses)
    groups: dict[str, list[dict]] = defaultdict(list)
    for result in results:
        groups[result["language"]].append(result)
        groups[f"{result['language']} {result['answer_type']}"].append(result)
    if args.json:
        print(
            json.dumps(
                {"scores": {g: score(r) for g, r in sorted(groups.items())}, "results": results},
                ensure_ascii=False,
                indent=2,
            )
        )
        return 0
    columns = [
        ("accuracy", "accuracy"),
        ("facts", "fact_recall"),
        ("retrieved", "retrieved"),
        ("spoken s", "seconds_spoken"),
        ("answer s", "seconds_to_answer"),
        ("1st try", "first_try"),
        ("rewritten", "rewritten"),
        ("kept", "kept"),
        ("extractive", "extractive"),
        ("dropped", "dropped"),
        ("about src", "about_sources"),
        ("restates", "restates"),
    ]
    print(f"\n{'group':<16} {'n':>3} " + " ".join(f"{title:>10}" for title, _ in columns))
    for group, items in sorted(groups.items()):
        s = score(items)
        print(f"{group:<16} {s['n']:>3} " + " ".join(f"{s[key]:>10.3f}" for _, key in columns))
    if args.show_misses:
        for result in results:
            if not all(result["found"]):
                missing = [
                    forms[0]
                    for forms, hit in zip(result["key_facts"], result["found"], strict=True)
                    if not hit
                ]
                print(
                    f"\n[{result['language']}] {result['question']}\n  missing {missing}\n  answer: {result['answer']}"
                )
    return 0


def _print_sentence_scores(results: list[dict], show_misses: bool) -> int:
    groups: dict[str, list[dict]] = defaultdict(list)
    for result in results:
        groups[result["language"]].append(result)
    print(f"\n{'answer sentences':<16} {'n':>3} {'accuracy':>10} {'facts':>10} {'retrieved':>10}")
    for group, items in sorted(groups.items()):
        n = len(items)
        accuracy = sum(all(i["found"]) for i in items) / n
        facts = sum(sum(i["found"]) / len(i["found"]) for i in items) / n
        retrieved = sum(i["retrieved"] for i in items) / n
        print(f"{group:<16} {n:>3} {accuracy:>10.3f} {facts:>10.3f} {retrieved:>10.3f}")
    if show_misses:
        for result in results:
            if not all(result["found"]):
                missing = [
                    f[0] for f, hit in zip(result["key_facts"], result["found"], strict=True) if not hit
                ]
                print(
                    f"\n[{result['language']}] {result['question']}\n  missing {missing}\n  said: {result['answer']}"
                )
    return 0


if __name__ == "__main__":
    sys.exit(main())
