"""Prefect flows: ingest, retrieve, generate (one question) and batch (a spreadsheet)."""
