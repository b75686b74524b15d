"""Prefect flows: ingest, retrieve, generate (one question) and batch (a spreadsheet)."""

import logging

# Prefect forwards these loggers (pyproject's [tool.prefect.logging] extra_loggers) to run logs;
# at the root's default WARNING level their progress lines would never show.
for _name in ("ragreel", "tasks", "flows"):
    logging.getLogger(_name).setLevel(logging.INFO)
