"""Narration: text prepared for speech, voices (Bark, Piper, Kokoro, espeak-ng), timed WAV assembly.

The stage's entry point is :func:`tasks.speak.narrate`. Modules here import their heavy
dependencies (torch, transformers, onnxruntime, piper, kokoro-onnx) only when a voice loads.
"""
