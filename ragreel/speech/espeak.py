"""espeak-ng, the formant voice that is always there: the libespeak-ng bundled in ``espeakng-loader``.

Driven through ctypes (no apt package, no subprocess). Robotic but instant and able to say
English and Mandarin; ragreel falls back to it when a neural voice fails to load.
"""

from __future__ import annotations

import ctypes
import logging
import threading
import time

import numpy as np

from ragreel.errors import DependencyMissing
from ragreel.speech.base import Voice

log = logging.getLogger(__name__)

_AUDIO_OUTPUT_SYNCHRONOUS = 2
_CHARS_UTF8 = 1
_SYNTH_CALLBACK = ctypes.CFUNCTYPE(
    ctypes.c_int, ctypes.POINTER(ctypes.c_short), ctypes.c_int, ctypes.c_void_p
)

# libespeak-ng keeps one global state per process, so one engine and one lock serve every voice.
_engine: _Engine | None = None
_engine_lock = threading.Lock()

ESPEAK_VOICES = {"en": "en-us", "zh": "cmn"}


class _Engine:
    def __init__(self) -> None:
        try:
            import espeakng_loader
        except ImportError as exc:
            raise DependencyMissing(
                "espeak-ng is not installed", stage="speak", hint="pip install espeakng-loader"
            ) from exc
        started = time.perf_counter()
        self.lib = ctypes.cdll.LoadLibrary(espeakng_loader.get_library_path())
        self.lib.espeak_Initialize.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_char_p, ctypes.c_int]
        self.lib.espeak_SetVoiceByName.argtypes = [ctypes.c_char_p]
        self.lib.espeak_Synth.argtypes = [
            ctypes.c_void_p,
            ctypes.c_size_t,
            ctypes.c_uint,
            ctypes.c_int,
            ctypes.c_uint,
            ctypes.c_uint,
            ctypes.c_void_p,
            ctypes.c_void_p,
        ]
        self.sample_rate = self.lib.espeak_Initialize(
            _AUDIO_OUTPUT_SYNCHRONOUS, 0, str(espeakng_loader.get_data_path()).encode(), 0
        )
        if self.sample_rate <= 0:
            raise DependencyMissing(
                "libespeak-ng failed to initialise",
                stage="speak",
                hint="reinstall espeakng-loader (pip install --force-reinstall espeakng-loader)",
            )
        self._chunks: list[np.ndarray] = []
        # Kept on the instance: ctypes callbacks must outlive every call into the library.
        self._callback = _SYNTH_CALLBACK(self._collect)
        self.lib.espeak_SetSynthCallback(self._callback)
        self.lock = threading.Lock()
        log.info(
            "espeak-ng loaded from %s in %.2f s (%d Hz)",
            espeakng_loader.get_library_path(),
            time.perf_counter() - started,
            self.sample_rate,
        )

    def _collect(self, wav, count, events) -> int:
        if count > 0:
            self._chunks.append(np.ctypeslib.as_array(wav, shape=(count,)).copy())
        return 0

    def synthesize(self, text: str, voice: str) -> np.ndarray:
        data = text.encode("utf-8")
        with self.lock:
            if self.lib.espeak_SetVoiceByName(voice.encode()) != 0:
                raise DependencyMissing(
                    f"espeak-ng has no voice {voice!r}",
                    stage="speak",
                    hint="use an espeak-ng voice name such as en-us, en-gb or cmn",
                )
            self._chunks = []
            self.lib.espeak_Synth(data, len(data) + 1, 0, 0, 0, _CHARS_UTF8, None, None)
            self.lib.espeak_Synchronize()
            chunks, self._chunks = self._chunks, []
        if not chunks:
            return np.zeros(0, dtype=np.float32)
        return np.concatenate(chunks).astype(np.float32) / 32768.0


def _get_engine() -> _Engine:
    global _engine
    with _engine_lock:
        if _engine is None:
            _engine = _Engine()
        return _engine


class EspeakVoice(Voice):
    """espeak-ng for one narration language; runs in the other script switch to that language's voice."""

    kind = "espeak"
    languages = frozenset({"en", "zh"})

    def __init__(self, language: str, voice_name: str | None = None):
        self.engine = _get_engine()
        self.sample_rate = self.engine.sample_rate
        self.voice_names = dict(ESPEAK_VOICES)
        if voice_name:
            self.voice_names[language] = voice_name
        # Fail now, not in the middle of a narration, when the voice name is wrong.
        self.engine.synthesize("", self.voice_names[language])
        self.name = f"espeak:{self.voice_names[language]}"

    def max_chars(self, language: str) -> int:
        return 1000

    def synthesize(self, text: str, language: str) -> np.ndarray:
        return self.engine.synthesize(text, self.voice_names[language])
