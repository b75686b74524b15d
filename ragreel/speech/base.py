"""What every voice is: the :class:`Voice` interface and the ``kind[:variant]`` choice that names one.

The backends (Bark, Piper, Kokoro, espeak-ng) import this module, never :mod:`ragreel.speech.voices`,
which imports them.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ragreel.schemas import Language, parse_voice


class Voice:
    """A loaded voice. ``synthesize`` returns float32 mono samples at ``sample_rate``."""

    kind: str = ""
    name: str = ""  # e.g. "piper:joe-us", shown in Narration.voice
    sample_rate: int = 0
    languages: frozenset[Language] = frozenset()  # languages it can say itself

    def max_chars(self, language: Language) -> int:
        """Longest text one call should get; longer sentences are split at clause marks first."""
        raise NotImplementedError

    def synthesize(self, text: str, language: Language) -> np.ndarray:
        raise NotImplementedError


@dataclass(frozen=True)
class VoiceChoice:
    kind: str
    variant: str | None = None

    def __str__(self) -> str:
        return f"{self.kind}:{self.variant}" if self.variant else self.kind


def parse_choice(text: str) -> VoiceChoice:
    """``kind[:variant]`` parsed; an unknown kind is an InputError listing the known ones."""
    return VoiceChoice(*parse_voice(text))


def bark_how_to() -> str:
    return (
        "download Bark once where there is a network (huggingface-cli download suno/bark-small --local-dir "
        "/models/bark-small) and set RAGREEL_BARK_MODEL=/models/bark-small (a folder, or a Hugging Face cache "
        "name such as suno/bark-small)"
    )
