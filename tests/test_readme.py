"""The README is the user's manual: every setting and every command it promises must exist."""

import re
from pathlib import Path

from ragreel.settings import Settings

README = (Path(__file__).resolve().parent.parent / "README.md").read_text(encoding="utf-8")


def test_every_setting_is_documented():
    for name, field in Settings.model_fields.items():
        names = field.validation_alias.choices if field.validation_alias else [f"RAGREEL_{name.upper()}"]
        assert any(n in README for n in names), f"{names} missing from README's settings"


def test_documented_settings_exist():
    known = {f"RAGREEL_{name.upper()}" for name in Settings.model_fields} | {
        "RAGREEL_OPENAI_API_KEY",
        "RAGREEL_OPENAI_BASE_URL",
    }
    known |= {"RAGREEL_SKIP_POSTGRES", "RAGREEL_PG_BIN", "RAGREEL_ROUND_TRIP_TIMEOUT_S"}  # test-suite knobs
    # `make up`'s own knobs (deployments/stack-env.sh), not settings of the Python code
    stack = {"RAGREEL_PREFECT_PORT", "RAGREEL_WORKER_LIMIT", "RAGREEL_DATABASE_URL"}
    stack_env = (Path(__file__).resolve().parent.parent / "deployments" / "stack-env.sh").read_text()
    assert all(knob in stack_env for knob in stack)
    known |= stack
    for mentioned in set(re.findall(r"RAGREEL_[A-Z_]+", README)):
        assert mentioned in known, f"README mentions {mentioned}, which is no setting"


def test_quick_start_commands():
    assert "make demo" in README and "make test" in README
