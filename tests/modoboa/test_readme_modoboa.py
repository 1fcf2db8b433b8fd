"""The README's Modoboa section quotes what the code does."""

from __future__ import annotations

from pathlib import Path

from adapters.modoboa.adapter import EMPTY_LIST_RECIPIENT, PLUGIN, SELF_ALIAS_REPAIR_SQL, ModoboaSettings
from adapters.modoboa.mapping import LIST_MARKER

README = (Path(__file__).resolve().parents[2] / "README.md").read_text(encoding="utf-8")
PROSE = " ".join(README.split())


def test_the_repair_statement_is_the_one_the_tests_run() -> None:
    quoted = "\n".join(f"> {line}" for line in SELF_ALIAS_REPAIR_SQL.splitlines())
    assert quoted in README


def test_the_names_and_defaults_it_quotes_are_the_codes() -> None:
    assert f"`{LIST_MARKER}`" in README
    assert f"`{EMPTY_LIST_RECIPIENT}`" in README
    defaults = {name: info.default for name, info in ModoboaSettings.model_fields.items()}
    assert (defaults["requests_per_minute"], defaults["writes_per_second"], defaults["reads_per_minute"]) == (
        300, 5, 200)
    for words in ("300 requests a minute", "5 writes a second", "200 reads a minute",
                  f"`deadline` {defaults['deadline']:g} s", f"`attempt_timeout` {defaults['attempt_timeout']:g} s"):
        assert words in PROSE, words
    assert PLUGIN.notes and "catch-all" in PLUGIN.notes[0]
