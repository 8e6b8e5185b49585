"""model.ticker_names: loaded once at start-up; a bad file stops it with the key named."""

from __future__ import annotations

from pathlib import Path

import pytest

from monitor.daemon import load_ticker_names
from monitor.errors import ConfigError
from monitor.settings import load_settings


def test_ticker_names_load_and_bad_file_names_the_key(tmp_path: Path) -> None:
    names = tmp_path / "names.yaml"
    names.write_text("AAPL: [Apple, Apple Inc.]\n")
    settings = load_settings(None, environ={"FINMON_MODEL__TICKER_NAMES": str(names)})
    assert load_ticker_names(settings).ticker_of("apple inc.") == "AAPL"
    assert load_ticker_names(load_settings(None, environ={})).names == {}
    names.write_text("- Apple\n- Tesla\n")
    with pytest.raises(ConfigError, match=r"model\.ticker_names"):
        load_ticker_names(settings)
