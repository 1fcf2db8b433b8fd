"""The README's configuration reference is generated from the settings models: keep it current."""

from __future__ import annotations

from pathlib import Path

from gateway.config_reference import splice

README = Path(__file__).resolve().parents[2] / "README.md"


def test_readme_configuration_reference_is_current() -> None:
    text = README.read_text(encoding="utf-8")
    assert splice(text) == text, "run: .venv/bin/python -m gateway.config_reference --write-readme"


def test_readme_has_the_two_setup_commands() -> None:
    text = README.read_text(encoding="utf-8")
    assert "make run" in text and "make test" in text
