from __future__ import annotations

from pathlib import Path

import pytest

from monitor.errors import ConfigError
from monitor.settings import load_settings

EXAMPLE = Path(__file__).resolve().parents[2] / "configs" / "finmon.example.yaml"


def test_example_config_loads() -> None:
    settings = load_settings(EXAMPLE, environ={})
    assert settings.kafka.raw_topic == "news.raw"
    assert settings.role == "all"


def test_env_overrides_file(tmp_path: Path) -> None:
    env = {
        "FINMON_KAFKA__BOOTSTRAP_SERVERS": "b1:9092,b2:9092",
        "FINMON_AGGREGATE__WINDOW_MS": "5000",
        "FINMON_ALERTS__WEBHOOK_URLS": "http://a/x, https://b/y",
        "FINMON_KAFKA__CLIENT_SECRETS__SASL_PLAIN_PASSWORD": "hunter2",
        "FINMON_KAFKA__CLIENT_OPTIONS__SECURITY_PROTOCOL": "SASL_SSL",
        "UNRELATED": "1",
    }
    settings = load_settings(EXAMPLE, environ=env)
    assert settings.kafka.bootstrap_servers == "b1:9092,b2:9092"
    assert settings.aggregate.window_ms == 5000
    assert settings.alerts.webhook_urls == ("http://a/x", "https://b/y")
    client = settings.kafka.client_config()
    assert client["sasl_plain_password"] == "hunter2"
    assert client["security_protocol"] == "SASL_SSL"
    assert client["bootstrap_servers"] == ["b1:9092", "b2:9092"]
    assert "hunter2" not in repr(settings)


@pytest.mark.parametrize(
    ("env", "key"),
    [
        ({"FINMON_AGGREGATE__WINDOW_MS": "-5"}, "aggregate.window_ms"),
        ({"FINMON_KAFKA__BOOTSTRAP_SERVERS": "nohostport"}, "kafka.bootstrap_servers"),
        ({"FINMON_ROLE": "everything"}, "role"),
        ({"FINMON_ALERTS__WEBHOOK_URLS": "ftp://x"}, "alerts.webhook_urls"),
        ({"FINMON_KAFKA__BOOTSTRAP_SERVER": "x:1"}, "kafka.bootstrap_server"),
    ],
)
def test_bad_value_names_the_key_and_a_fix(env: dict[str, str], key: str) -> None:
    with pytest.raises(ConfigError) as info:
        load_settings(None, environ=env)
    assert info.value.key == key
    assert key in str(info.value)
    assert "fix:" in str(info.value)


def test_missing_or_broken_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="not found"):
        load_settings(tmp_path / "nope.yaml", environ={})
    broken = tmp_path / "broken.yaml"
    broken.write_text("kafka: [unclosed")
    with pytest.raises(ConfigError, match="YAML"):
        load_settings(broken, environ={})


def _keys(model: type, prefix: str = "") -> list[str]:
    from pydantic import BaseModel

    out = []
    for name, field in model.model_fields.items():  # type: ignore[attr-defined]
        annotation = field.annotation
        if isinstance(annotation, type) and issubclass(annotation, BaseModel):
            out += _keys(annotation, f"{prefix}{name}.")
        else:
            out.append(f"{prefix}{name}")
    return out


def test_example_config_documents_every_key() -> None:
    from monitor.settings import Settings

    text = EXAMPLE.read_text()
    missing = [k for k in _keys(Settings) if f"{k.rsplit('.', 1)[-1]}:" not in text]
    assert not missing, f"keys missing from {EXAMPLE.name}: {missing}"


def test_sources_from_environment_and_their_errors() -> None:
    env = {
        "FINMON_SOURCES__FEEDS": '[{name: wire, url: "https://x.example.com/rss"}]',
        "FINMON_SOURCES__PUSH__ENABLED": "true",
        "FINMON_SOURCES__PUSH__TOKEN": "tok-123",
    }
    settings = load_settings(EXAMPLE, environ=env)
    assert settings.sources.feeds[0].name == "wire" and settings.sources.configured
    assert "tok-123" not in repr(settings)
    bad = [
        ({"FINMON_SOURCES__PUSH__ENABLED": "true"}, "sources.push"),
        ({"FINMON_SOURCES__FEEDS": "[{name: Bad Name, url: 'http://x'}]"}, "sources.feeds.0.name"),
        ({"FINMON_SOURCES__FEEDS": "[{name: a, url: 'ftp://x'}]"}, "sources.feeds.0.url"),
        (
            {"FINMON_SOURCES__FEEDS": "[{name: a, url: 'http://x'}, {name: a, url: 'http://y'}]"},
            "sources.feeds",
        ),
    ]
    for environ, key in bad:
        with pytest.raises(ConfigError) as info:
            load_settings(None, environ=environ)
        assert info.value.key == key, environ


def test_the_source_role_reads_the_models_ticker_names(tmp_path: Path) -> None:
    from monitor.daemon import Daemon

    names = tmp_path / "tickers.yaml"
    names.write_text("TLRY: [Tilray]\n")
    overrides = {
        "role": "source",
        "model": {"ticker_names": str(names)},
        "sources": {"feeds": [{"name": "wire", "url": "http://127.0.0.1:9/rss"}]},
    }
    daemon = Daemon.from_settings(load_settings(None, environ={}, overrides=overrides))
    assert daemon.sources is not None and daemon.sources.dictionary.ticker_of("tilray") == "TLRY"
    names.write_text("- not a mapping\n")
    with pytest.raises(ConfigError) as info:
        Daemon.from_settings(load_settings(None, environ={}, overrides=overrides))
    assert info.value.key == "model.ticker_names"
