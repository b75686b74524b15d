"""Answers from a language model through the OpenAI protocol.

- :mod:`ragreel.llm.client`: which server answers (a configured one, or the built-in local model),
  one chat call, errors mapped to ragreel's transient/permanent errors, keys redacted.
- :mod:`ragreel.llm.local_server`: assemble the packaged GGUF and run a llama.cpp server for it.
- :mod:`ragreel.llm.prompt`: the length target and the passages as delimited data.
- :mod:`ragreel.llm.script`: the script request (instructions and JSON schema) and reading the reply.
- :mod:`ragreel.llm.evidence`: the check of each scene against the sentence it quotes.

Nothing is imported here, so that ``python -m ragreel.llm.local_server`` (how the server process
starts) loads only what it needs. The stage's entry point is ``tasks.answer.answer_question``.
"""
