"""ragreel: a question in, a short narrated video grounded in a knowledge base out.

This package holds what every stage shares: settings, result models, errors, and the
text helpers (language, sentences). The stages themselves live under ``tasks/`` and the
Prefect flows that join them under ``flows/``.
"""

__version__ = "0.1.0"
