"""Answers from a language model through the OpenAI protocol.

- :mod:`ragreel.llm.client`: which server answers (a configured one, or the built-in local model),
  one chat call, errors mapped to ragreel's transient/permanent errors, keys redacted.
- :mod:`ragreel.llm.local_server`: assemble the packaged GGUF and run a llama.cpp server for it.
- :mod:`ragreel.llm.prompt`: the grounded prompt and the clean-up that makes a reply speakable.

Nothing is imported here, so that ``python -m ragreel.llm.local_server`` (how the server process
starts) loads only what it needs. The stage's entry point is ``tasks.answer.answer_question``.
"""
