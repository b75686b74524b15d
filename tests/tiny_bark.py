"""Build a tiny, randomly initialised Bark that loads through the same code as suno/bark-small.

Sub-models are one layer wide 16, but keep Bark's real vocabulary sizes, because the generation
config hard-codes token ids (text offset 10,048, pads and infer tokens near 129,600, codebook
size 1,024). The folder gets a nested ``generation_config.json`` like the real one (transformers
5.24's ``BarkGenerationConfig.save_pretrained`` crashes), a ``BertTokenizer`` from a small local
vocabulary, and optionally speaker-embedding presets (``v2/en_speaker_0``, ``v2/zh_speaker_0``) laid
out as in suno/bark.

    python tests/tiny_bark.py /tmp/tiny-bark
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np

PRESETS = ("v2/en_speaker_0", "v2/zh_speaker_0")


def build_tiny_bark(folder: Path, with_presets: bool = True, seed: int = 0) -> Path:
    import torch
    from transformers import (
        BarkCoarseConfig,
        BarkConfig,
        BarkFineConfig,
        BarkModel,
        BarkProcessor,
        BarkSemanticConfig,
        BertTokenizer,
        EncodecConfig,
    )

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(seed)
    small = {"num_layers": 1, "num_heads": 2, "hidden_size": 16, "block_size": 1024}
    semantic = BarkSemanticConfig(input_vocab_size=129_600, output_vocab_size=10_048, **small)
    coarse = BarkCoarseConfig(input_vocab_size=12_096, output_vocab_size=12_096, **small)
    fine = BarkFineConfig(
        input_vocab_size=1_056, output_vocab_size=1_056, n_codes_total=8, n_codes_given=1, **small
    )
    codec = EncodecConfig(
        sampling_rate=24_000,
        target_bandwidths=[1.5, 3.0, 6.0, 12.0, 24.0],
        hidden_size=16,
        num_filters=4,
        num_residual_layers=1,
        upsampling_ratios=[8, 5, 4, 2],
        codebook_size=1024,
        num_lstm_layers=1,
        audio_channels=1,
    )
    config = BarkConfig(
        semantic_config=semantic.to_dict(),
        coarse_acoustics_config=coarse.to_dict(),
        fine_acoustics_config=fine.to_dict(),
        codec_config=codec.to_dict(),
    )
    BarkModel(config).save_pretrained(folder)
    # Empty sub-dicts mean Bark's real defaults (token ids, 24 kHz, codebook 1024).
    (folder / "generation_config.json").write_text(
        json.dumps(
            {
                "semantic_config": {},
                "coarse_acoustics_config": {},
                "fine_acoustics_config": {},
                "sample_rate": 24_000,
                "codebook_size": 1024,
            }
        )
    )

    letters = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789.,!?'-"
    han = "臺灣的茶文化歷史悠久台湾你好世界烏龍和包種都很有名"
    chars = sorted(set(letters + han))
    vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "hello", "world", "the", "tea"]
    vocab += chars + ["##" + c for c in chars]
    vocab_file = folder / "tiny_vocab.txt"
    vocab_file.write_text("\n".join(vocab) + "\n", encoding="utf-8")
    tokenizer = BertTokenizer(str(vocab_file), do_lower_case=False, tokenize_chinese_chars=True)
    BarkProcessor(tokenizer=tokenizer).save_pretrained(folder)
    vocab_file.unlink()

    if with_presets:
        rng = np.random.default_rng(seed)
        embeddings: dict = {"repo_or_path": str(folder)}
        (folder / "speaker_embeddings" / "v2").mkdir(parents=True, exist_ok=True)
        for preset in PRESETS:
            # Shapes as in the real .npz presets: semantic (T,), coarse (2, T), fine (8, T).
            arrays = {
                "semantic_prompt": rng.integers(0, 10_000, size=(20,)),
                "coarse_prompt": rng.integers(0, 1024, size=(2, 30)),
                "fine_prompt": rng.integers(0, 1024, size=(8, 30)),
            }
            entry = {}
            for key, array in arrays.items():
                relative = f"speaker_embeddings/{preset}_{key}.npy"
                np.save(folder / relative, array, allow_pickle=False)
                entry[key] = relative
            embeddings[preset] = entry
        (folder / "speaker_embeddings_path.json").write_text(json.dumps(embeddings))
    return folder


if __name__ == "__main__":
    print(build_tiny_bark(Path(sys.argv[1] if len(sys.argv) > 1 else "/tmp/tiny-bark")))
