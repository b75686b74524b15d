"""Each setting a stage reads changes that stage's cache key, and no other stage's.

Fast: no model, server or flow runs; the keys are computed the way Prefect's cache policy
computes them (``tasks/stage.py``), from settings built from the environment.
"""

from __future__ import annotations

import pytest

from ragreel.settings import get_settings
from tasks.answer import generate_cache_key
from tasks.render import render_cache_key
from tasks.retrieve import retrieve_cache_key
from tasks.speak import narration_path, speak_cache_key

ENGLISH = {"text": "Brew oolong at 90 degrees [1].", "language": "en", "voice": "auto"}
MIXED = {"text": "The word 茶 means tea [1].", "language": "en", "voice": "auto"}
CHINESE = {"text": "高山烏龍茶生長在海拔一千公尺以上 [1]。", "language": "zh", "voice": "auto"}


def keys(speak_parameters: dict) -> dict[str, str]:
    settings = get_settings()
    return {
        "retrieve": retrieve_cache_key(settings, {}),
        "generate": generate_cache_key(settings, {}),
        "speak": speak_cache_key(settings, speak_parameters),
        "render": render_cache_key(settings, {}),
    }


@pytest.fixture
def clean_settings(ragreel_home, monkeypatch, tmp_path):
    for name in ("OPENAI_BASE_URL", "OPENAI_API_KEY", "RAGREEL_OPENAI_BASE_URL", "RAGREEL_LLM_MODEL"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.chdir(tmp_path)  # no .env file from the working copy
    return tmp_path


@pytest.mark.parametrize(
    ("variable", "value", "stage", "speak_parameters"),
    [
        ("RAGREEL_EMBEDDING_MODEL", "/models/multilingual-e5", "retrieve", ENGLISH),
        ("RAGREEL_HYBRID_VECTOR_WEIGHT", "0.3", "retrieve", ENGLISH),
        ("RAGREEL_CROSS_LINGUAL", "true", "retrieve", ENGLISH),
        ("OPENAI_BASE_URL", "http://127.0.0.1:9/v1", "generate", ENGLISH),
        ("RAGREEL_LLM_LOCAL_MODEL", "/models/other.gguf", "generate", ENGLISH),
        ("RAGREEL_ANSWER_MIN_SECONDS", "10", "generate", ENGLISH),
        ("RAGREEL_ANSWER_MAX_SECONDS", "40", "generate", ENGLISH),
        ("RAGREEL_MIN_RELEVANCE", "0.3", "generate", ENGLISH),
        ("RAGREEL_VOICE_EN", "espeak", "speak", ENGLISH),
        ("RAGREEL_VOICE_ZH", "espeak", "speak", CHINESE),
        # An English narration with Chinese words in it is partly spoken by the Mandarin voice.
        ("RAGREEL_VOICE_ZH", "espeak", "speak", MIXED),
        ("RAGREEL_VOICE_EN", "espeak", "speak", CHINESE | {"text": "用 Prefect 排程。"}),
        ("RAGREEL_BARK_MODEL", "/models/bark-small", "speak", ENGLISH),
        ("RAGREEL_PIPER_VOICE", "/voices/en_GB-alan.onnx", "speak", ENGLISH),
        ("RAGREEL_SAMPLE_RATE", "22050", "speak", ENGLISH),
        ("RAGREEL_SENTENCE_PAUSE_S", "0.5", "speak", ENGLISH),
        ("RAGREEL_FPS", "25", "render", ENGLISH),
        ("RAGREEL_THEME", "light", "render", ENGLISH),
        ("RAGREEL_BACKGROUND_IMAGE", "/images/bg.png", "render", ENGLISH),
        ("RAGREEL_FONT_PATH", "/fonts/other.ttf", "render", ENGLISH),
        ("RAGREEL_TITLE_SECONDS", "5", "render", ENGLISH),
        ("RAGREEL_SOURCES_SECONDS", "6", "render", ENGLISH),
    ],
)
def test_a_setting_changes_its_stage_key_only(
    clean_settings, monkeypatch, variable, value, stage, speak_parameters
):
    before = keys(speak_parameters)
    monkeypatch.setenv(variable, value)
    after = keys(speak_parameters)
    changed = {name for name in before if before[name] != after[name]}
    assert changed == {stage}


@pytest.mark.parametrize(
    ("variable", "value"),
    [("RAGREEL_LLM_LOCAL_MODEL", "/models/other.gguf"), ("OPENAI_BASE_URL", "http://127.0.0.1:9/v1")],
)
def test_with_cross_lingual_search_the_llm_is_part_of_the_retrieve_key(
    clean_settings, monkeypatch, variable, value
):
    """It translates the question that retrieval searches with."""
    monkeypatch.setenv("RAGREEL_CROSS_LINGUAL", "true")
    before = keys(ENGLISH)
    monkeypatch.setenv(variable, value)
    after = keys(ENGLISH)
    assert {name for name in before if before[name] != after[name]} == {"retrieve", "generate"}


@pytest.mark.parametrize(
    ("variable", "value", "speak_parameters"),
    [
        ("RAGREEL_VOICE_ZH", "espeak", ENGLISH),  # no Chinese in the text: the Mandarin voice never speaks
        ("RAGREEL_VOICE_EN", "espeak", CHINESE),
        ("RAGREEL_LLM_TIMEOUT_S", "5", ENGLISH),  # how long to wait is not what the answer says
        ("RAGREEL_BATCH_CONCURRENCY", "4", ENGLISH),
        ("RAGREEL_ASPECT", "portrait", ENGLISH),  # the flow passes the aspect to the render task as an input
    ],
)
def test_settings_that_do_not_shape_a_stage_change_no_key(
    clean_settings, monkeypatch, variable, value, speak_parameters
):
    before = keys(speak_parameters)
    monkeypatch.setenv(variable, value)
    assert keys(speak_parameters) == before


def test_narration_file_name_follows_what_shapes_it(clean_settings, monkeypatch):
    settings = get_settings()
    first = narration_path("/out", MIXED["text"], "en", "auto", settings)
    assert first == narration_path("/out", MIXED["text"], "en", "auto", get_settings())
    assert first != narration_path("/out", MIXED["text"], "en", "espeak", settings)
    monkeypatch.setenv("RAGREEL_VOICE_ZH", "espeak")
    assert first != narration_path("/out", MIXED["text"], "en", "auto", get_settings())
