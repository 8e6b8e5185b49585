"""Frozen, validated settings, read once at the entry point.

Sources, lowest precedence first: field defaults, the YAML config file, environment variables
``FINMON_<SECTION>__<KEY>`` (for example ``FINMON_KAFKA__BOOTSTRAP_SERVERS=broker:9092``).
Inner code receives these typed objects and never reads the environment itself.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    ValidationError,
    field_validator,
    model_validator,
)

from monitor.errors import ConfigError

ENV_PREFIX = "FINMON_"
ENV_NESTED_DELIMITER = "__"

Role = Literal["classify", "aggregate", "source", "all"]
Device = Literal["auto", "cpu", "cuda"]


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class KafkaSettings(_Frozen):
    """Where the broker is, which topics FinMon uses, and how consumers behave."""

    bootstrap_servers: str = "127.0.0.1:9092"
    raw_topic: str = "news.raw"
    scored_topic: str = "news.scored"
    dlq_topic: str = "news.dlq"
    # aggregate.mode partitioned: partial window aggregates, routed by ticker or `overall`.
    partials_topic: str = "news.partials"
    classify_group: str = "finmon-classify"
    aggregate_group: str = "finmon-aggregate"
    client_id: str = "finmon"
    auto_offset_reset: Literal["earliest", "latest"] = "earliest"
    # A modest poll interval: a stuck worker leaves the group fast; group joins complete quickly.
    max_poll_interval_ms: int = Field(default=30_000, ge=1_000)
    session_timeout_ms: int = Field(default=10_000, ge=1_000)
    heartbeat_interval_ms: int = Field(default=2_000, ge=100)
    max_poll_records: int = Field(default=256, ge=1)
    poll_timeout_ms: int = Field(default=200, ge=1)
    # How long the broker may hold a consumer's fetch that finds nothing new. The embedded broker
    # does not answer a held fetch when a record arrives, so kafka-python's 500 added up to 250
    # ms to an item's latency (p50 125 ms against 10 at 50; docs/bench-e2e.md, Round 8); 50
    # costs an idle consumer about 20 empty fetches a second.
    fetch_max_wait_ms: int = Field(default=50, ge=0, le=30_000)
    producer_acks: Literal["all", "1"] = "all"
    produce_timeout_sec: float = Field(default=30.0, gt=0)
    create_topics: bool = True
    topic_partitions: int = Field(default=3, ge=1)
    # Producer max_request_size: at most the broker's message.max.bytes (Kafka: 1048588). A
    # scored record past it goes to the DLQ as too_large_output (see docs/contract.md).
    max_request_bytes: int = Field(default=1_048_576, ge=65_536)
    # Broker loss: start-up waits this long for a bootstrap server before it stops with a
    # message; after broker_down_after_sec of failed calls finmon_broker_up is 0 and an ERROR is
    # logged; after broker_exit_after_sec the daemon exits non-zero (a supervisor restarts it).
    connect_timeout_sec: float = Field(default=10.0, gt=0)
    broker_down_after_sec: float = Field(default=15.0, gt=0)
    broker_exit_after_sec: float = Field(default=120.0, gt=0)
    # Passed unchanged to kafka-python clients: security_protocol, sasl_mechanism,
    # sasl_plain_username, ssl_cafile, ... Secrets go in client_secrets.
    client_options: dict[str, str | int | bool] = Field(default_factory=dict)
    client_secrets: dict[str, SecretStr] = Field(default_factory=dict)

    @field_validator("bootstrap_servers")
    @classmethod
    def _hosts(cls, value: str) -> str:
        for host in value.split(","):
            if ":" not in host.strip():
                raise ValueError(f"expected host:port[,host:port...], got {value!r}")
        return value

    @model_validator(mode="after")
    def _broker_loss_order(self) -> KafkaSettings:
        if self.broker_exit_after_sec <= self.broker_down_after_sec:
            raise ValueError("broker_exit_after_sec must be > broker_down_after_sec")
        return self

    def client_config(self) -> dict[str, Any]:
        """kafka-python keyword arguments shared by every client (bootstrap, SASL/SSL)."""
        config: dict[str, Any] = {
            "bootstrap_servers": self.bootstrap_servers.split(","),
            "client_id": self.client_id,
        }
        config.update(self.client_options)
        config.update({k: v.get_secret_value() for k, v in self.client_secrets.items()})
        return config


# Room a scored record needs beyond its input (labels, probabilities, timestamps).
OUTPUT_HEADROOM_BYTES = 16_384


class IngestSettings(_Frozen):
    """What the classify role's decode accepts from news.raw (the rest goes to news.dlq)."""

    # At most kafka.max_request_bytes - 16384, so a dead letter or scored record still fits.
    max_message_bytes: int = Field(default=1_000_000, ge=1_024)
    max_json_depth: int = Field(default=64, ge=2, le=500)
    max_integer_digits: int = Field(default=100, ge=1, le=4_300)
    # Longer 'id' strings -> too_long_id (ids are remembered per item downstream).
    max_id_chars: int = Field(default=256, ge=16, le=65_536)
    # published_at outside [min_published_at, now + max_future_ms] -> bad_published_at.
    min_published_at: datetime = datetime(1990, 1, 1, tzinfo=UTC)
    max_future_ms: int = Field(default=86_400_000, ge=0)

    @field_validator("min_published_at")
    @classmethod
    def _aware(cls, value: datetime) -> datetime:
        if value.tzinfo is None:
            raise ValueError("needs a UTC offset, e.g. 1990-01-01T00:00:00Z")
        return value.astimezone(UTC)


class ModelSettings(_Frozen):
    """Which model the classify role serves, and how it batches."""

    # Exported FinMon model directory (pipelines' format). Empty: `finmon demo` trains one.
    path: str = ""
    device: Device = "auto"
    # 256: fewer, fuller passes beat 64 on CPU as well (docs/bench-e2e.md); the token budget still
    # caps a batch of long texts.
    max_batch_items: int = Field(default=256, ge=1)
    # Padded tokens per forward pass. 4096 ran 1.05-1.9x (median 1.3x) as fast as 8192 on this
    # 2-core Xeon (4 MiB L2 per core; docs/bench-classify.md); a model call holds twice that.
    max_batch_tokens: int = Field(default=4096, ge=16)
    max_wait_ms: int = Field(default=20, ge=0)
    max_length_tokens: int = Field(default=128, ge=8, le=512)
    # Items waiting for the model; when full, the classify worker pauses its partitions.
    max_queue_items: int = Field(default=1024, ge=1)
    # Recent predictions kept by normalised text (syndicated repeats skip the model); 0 disables.
    cache_items: int = Field(default=10_000, ge=0)
    # CPU precision: bf16 autocast (native bf16 CPUs), int8 dynamic quantisation, or none (fp32);
    # auto: bf16 where the CPU supports it natively, else fp32. CUDA always runs bf16 autocast.
    quantize: Literal["none", "int8", "bf16", "auto"] = "auto"
    # Texts past max_length_tokens: chunk_mean (windows averaged, headline first) or truncate.
    long_text: Literal["chunk_mean", "truncate"] = "chunk_mean"
    max_chunks: int = Field(default=8, ge=1, le=64)
    # CPU threads for the model's matmuls; 0 keeps torch's default (one per core). On CPU the
    # engine runs two forward batches at once, each on half of them (docs/bench-e2e.md, Round 8).
    torch_threads: int = Field(default=0, ge=0, le=256)
    # YAML/JSON file {ticker: [name, alias, ...]}: names that count as entities of that ticker
    # (scored by a model with an entity head, beside cashtags and the input tickers), and that
    # the source role tags items with. Empty: none.
    ticker_names: str = ""


class AggregateSettings(_Frozen):
    """Event-time windows, the negative-share spike and volume surge detectors, their state."""

    window_ms: int = Field(default=60_000, ge=1_000)
    allowed_lateness_ms: int = Field(default=30_000, ge=0)
    # Wall-clock quiet time after which the watermark advances without new items.
    idle_close_ms: int = Field(default=120_000, ge=0)
    # Stories a pooled span needs before its negative share can breach (docs/detection.md).
    min_volume: int = Field(default=10, ge=1)
    # Floor: an evaluation whose negative share is below this never breaches.
    negative_share_threshold: float = Field(default=0.1, gt=0, le=1)
    consecutive_windows: int = Field(default=2, ge=1)
    resolve_windows: int = Field(default=2, ge=1)
    evaluation_windows: int = Field(default=3, ge=1, le=60)
    spike_z: float = Field(default=4.0, gt=0)
    spike_critical_z: float = Field(default=8.0, gt=0)
    resolve_z: float = Field(default=1.5)
    min_share_rise: float = Field(default=0.05, ge=0, le=1)
    baseline_prior_share: float = Field(default=0.2, gt=0, lt=1)
    baseline_prior_items: float = Field(default=100.0, gt=0)
    baseline_half_life_windows: float = Field(default=60.0, gt=0)
    # Prior for the window-to-window spread of the share beyond binomial noise.
    baseline_prior_spread: float = Field(default=0.03, ge=0, le=1)
    max_alert_windows: int = Field(default=180, ge=1)
    volume_z: float = Field(default=5.0, gt=0)
    volume_min_ratio: float = Field(default=3.0, gt=1)
    volume_critical_ratio: float = Field(default=6.0, gt=1)
    volume_warmup_windows: int = Field(default=30, ge=0)
    volume_half_life_windows: float = Field(default=30.0, gt=0)
    cooldown_ms: int = Field(default=900_000, ge=0)
    # Key kinds whose transitions are emitted (all are still windowed and exported as metrics).
    alert_key_kinds: tuple[Literal["topic", "ticker", "overall"], ...] = (
        "topic",
        "ticker",
        "overall",
    )
    # Ticker series beyond the cap are not tracked; a ticker quiet for max_fill_windows is dropped.
    max_ticker_series: int = Field(default=200, ge=0)
    # Ids remembered (and persisted) to skip at-least-once redeliveries.
    max_tracked_ids: int = Field(default=200_000, ge=1)
    # Items dated further ahead of the wall clock are `future`: not windowed, dead-lettered
    # (reason future_event_time). Nearer ones (producer clock skew) wait in their own windows.
    max_future_ms: int = Field(default=300_000, ge=0)
    # Event time is the N-th highest event time seen (capped at the wall clock): N items, not one,
    # move the watermark.
    watermark_quorum_items: int = Field(default=3, ge=1, le=1_000)
    # Topics counted under their own name; any other is counted as `other`. Empty: the topic
    # labels of the model at model.path, else the first max_topic_series topics seen.
    topic_labels: tuple[str, ...] = ()
    max_topic_series: int = Field(default=64, ge=1)
    # -- detection (docs/detection.md): spans of up to lookback_windows pooled, seasonal volume.
    lookback_windows: int = Field(default=60, ge=1, le=240)
    volume_min_items: int = Field(default=20, ge=1)
    volume_season_memory_weeks: float = Field(default=3.0, gt=0)
    # Topic spikes during an overall spike: held back (one alert) or sent with a note.
    market_wide: Literal["suppress", "annotate"] = "suppress"
    # Syndication: near-duplicate headlines within story_window_ms count as one story.
    story_dedup: bool = True
    story_window_ms: int = Field(default=3_600_000, ge=1_000)
    max_stories: int = Field(default=2_000, ge=1)
    story_similarity: float = Field(default=0.5, gt=0, le=1)
    # Empty windows evaluated per quiet gap before the rest of the gap is skipped.
    max_fill_windows: int = Field(default=120, ge=1)
    # SQLite file under state.dir holding windows, baselines, rule states and recent ids.
    state_file: str = "aggregate.sqlite"
    # single: one aggregator holds every window (state in state_file). partitioned: any number
    # of aggregators in kafka.aggregate_group; per-partition state in changelog topics (local
    # SQLite changelog_cache_file as a cache), ticker and overall windows as a second stage fed
    # by kafka.partials_topic (docs/scaling.md).
    mode: Literal["single", "partitioned"] = "single"
    # partitioned: how often partials are emitted and both stages checkpoint and commit.
    commit_interval_ms: int = Field(default=2_000, ge=100)
    # partitioned: alert transitions a partition's state keeps until the outbox has finished
    # them, re-submitted by the aggregator that takes the partition over.
    max_unsettled_alerts: int = Field(default=256, ge=1)
    changelog_cache_file: str = "aggregate-changelog.sqlite"

    @model_validator(mode="after")
    def _ordered_thresholds(self) -> AggregateSettings:
        if self.spike_critical_z < self.spike_z:
            raise ValueError("spike_critical_z must be >= spike_z")
        if self.resolve_z >= self.spike_z:
            raise ValueError("resolve_z must be < spike_z (hysteresis)")
        if self.volume_critical_ratio < self.volume_min_ratio:
            raise ValueError("volume_critical_ratio must be >= volume_min_ratio")
        return self


class AlertSettings(_Frozen):
    """Where alert webhooks go and how delivery is retried."""

    webhook_urls: tuple[str, ...] = ()
    webhook_secret: SecretStr | None = None
    timeout_sec: float = Field(default=5.0, gt=0)
    # Retry with capped exponential backoff until a notification is max_age_sec old; 0 attempts:
    # no other limit.
    max_age_sec: float = Field(default=86_400.0, gt=0)
    max_attempts: int = Field(default=0, ge=0)
    backoff_initial_sec: float = Field(default=0.5, gt=0)
    backoff_max_sec: float = Field(default=300.0, gt=0)
    top_headlines: int = Field(default=5, ge=0, le=50)
    # Durable outbox bounds: pending rows past the cap drop the oldest; finished rows are kept
    # this long so a re-submitted transition is not sent twice.
    outbox_max_pending: int = Field(default=10_000, ge=1)
    outbox_retention_sec: float = Field(default=7 * 86_400.0, gt=0)

    @field_validator("webhook_urls", mode="before")
    @classmethod
    def _split(cls, value: object) -> object:
        if isinstance(value, str):
            return tuple(u.strip() for u in value.split(",") if u.strip())
        return value

    @field_validator("webhook_urls")
    @classmethod
    def _urls(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        for url in value:
            if not url.startswith(("http://", "https://")):
                raise ValueError(f"webhook URL must start with http:// or https://, got {url!r}")
        return value


class MetricsSettings(_Frozen):
    """The Prometheus /metrics endpoint."""

    enabled: bool = True
    host: str = "127.0.0.1"
    port: int = Field(default=9108, ge=0, le=65535)


class HealthSettings(_Frozen):
    """Liveness and readiness on the metrics port (/healthz, /readyz)."""

    # A role loop (or the model thread) with no pass for this long is stuck: /healthz fails.
    stall_after_ms: int = Field(default=60_000, ge=1_000)
    # How often /readyz re-checks that a bootstrap server accepts a TCP connection.
    broker_check_interval_ms: int = Field(default=5_000, ge=100)


class ReloadSettings(_Frozen):
    """Model hot reload: triggers, the canary check, the admin endpoint."""

    # Poll model.path (or the `current` symlink it names) for a new export.
    watch: bool = True
    watch_interval_ms: int = Field(default=5_000, ge=100)
    # Bearer token for POST /admin/reload; unset disables the endpoint (403).
    admin_token: SecretStr | None = None
    # Canary texts: a file with one headline per line; empty uses synthetic headlines.
    canary_file: str = ""
    canary_items: int = Field(default=60, ge=1, le=10_000)
    # Share of canary texts on which the candidate must agree with the serving model, per task.
    min_agreement: float = Field(default=0.8, ge=0, le=1)


class ShutdownSettings(_Frozen):
    """Graceful drain on SIGTERM: finish batches, produce, commit, leave the group."""

    # Keep below the orchestrator's kill deadline (Kubernetes terminationGracePeriodSeconds).
    grace_period_ms: int = Field(default=25_000, ge=1_000)


class StateSettings(_Frozen):
    """Local state (SQLite): webhook outbox, window and baseline snapshots."""

    dir: str = "./finmon-state"


# --- sources (feed poller, push endpoint, drop folder) -------------------------------------------

_SOURCE_NAME = r"^[a-z0-9][a-z0-9_.-]{0,63}$"


class FeedSettings(_Frozen):
    """One RSS 2.0 / RSS 1.0 (RDF) / Atom feed, polled every ``interval_sec`` plus jitter."""

    # The news.raw ``source`` field and the metric label: lower case, digits, ``_.-``.
    name: str = Field(pattern=_SOURCE_NAME)
    url: str
    interval_sec: float = Field(default=300.0, gt=0)
    # A random delay in [0, jitter_sec] is added to every interval (feeds are not hit in step).
    jitter_sec: float = Field(default=30.0, ge=0)

    @field_validator("url")
    @classmethod
    def _http(cls, value: str) -> str:
        if not value.startswith(("http://", "https://")):
            raise ValueError(f"feed URL must start with http:// or https://, got {value!r}")
        return value


class PushSettings(_Frozen):
    """``POST /v1/news``: items pushed by other systems, produced before the 202."""

    enabled: bool = False
    host: str = "127.0.0.1"
    port: int = Field(default=9111, ge=0, le=65535)
    # Required when enabled: clients send ``Authorization: Bearer <token>``.
    token: SecretStr | None = None
    max_items: int = Field(default=500, ge=1)
    max_body_bytes: int = Field(default=5_000_000, ge=1_000)
    # Items produced but not yet acknowledged, over all requests; past it requests get 429.
    max_in_flight_items: int = Field(default=5_000, ge=1)
    retry_after_sec: int = Field(default=2, ge=1)

    @model_validator(mode="after")
    def _token_when_enabled(self) -> PushSettings:
        if self.enabled and (self.token is None or not self.token.get_secret_value()):
            raise ValueError("push needs a token: set FINMON_SOURCES__PUSH__TOKEN")
        return self


class DropFolderSettings(_Frozen):
    """JSONL / CSV files dropped in ``dir`` are produced, then moved to done/ or failed/."""

    # Empty: no drop folder.
    dir: str = ""
    scan_interval_sec: float = Field(default=2.0, gt=0)
    # A file is read once its size and mtime have not changed for this long (writers still busy
    # are skipped; writing to a dot-file or ``*.tmp`` and renaming is safer still).
    settle_sec: float = Field(default=2.0, ge=0)
    # A dropped file is read whole: this bounds the memory it takes.
    max_file_bytes: int = Field(default=50_000_000, ge=1)
    # The source label of dropped items, and their ``source`` when a row has none.
    source_name: str = Field(default="dropfolder", pattern=_SOURCE_NAME)


class SourcesSettings(_Frozen):
    """The source role: feeds polled, items pushed and files dropped, all produced to news.raw."""

    feeds: tuple[FeedSettings, ...] = ()
    user_agent: str = "FinMon/0.1 (financial news monitor; feed poller)"
    timeout_sec: float = Field(default=20.0, gt=0)
    # A feed body past this is refused (error kind too_large), never parsed.
    max_feed_bytes: int = Field(default=8_000_000, ge=1_000)
    # Backoff after a failed poll: initial * 2^(failures-1), at most max; a longer Retry-After wins.
    backoff_initial_sec: float = Field(default=30.0, gt=0)
    backoff_max_sec: float = Field(default=3_600.0, gt=0)
    # Items kept per feed entry (text past it is cut at a word boundary).
    max_body_chars: int = Field(default=8_000, ge=100)
    # Seen items are remembered this long (SQLite under state.dir); older feed items are skipped.
    dedup_retention_sec: float = Field(default=14 * 86_400.0, gt=0)
    state_file: str = "sources.sqlite"
    # A feed with no successful poll for this many intervals (plus jitter) is silent: exported
    # as finmon_source_silent_after_seconds, which the FinMonFeedSilent alert compares against.
    silent_after_intervals: float = Field(default=3.0, ge=1)
    push: PushSettings = Field(default_factory=PushSettings)
    drop_folder: DropFolderSettings = Field(default_factory=DropFolderSettings)

    @field_validator("feeds")
    @classmethod
    def _unique_names(cls, value: tuple[FeedSettings, ...]) -> tuple[FeedSettings, ...]:
        names = [f.name for f in value]
        repeated = sorted({n for n in names if names.count(n) > 1})
        if repeated:
            raise ValueError(f"feed names must be unique, repeated: {repeated}")
        return value

    @property
    def configured(self) -> bool:
        """Whether any source is set up (the role has something to do)."""
        return bool(self.feeds or self.push.enabled or self.drop_folder.dir)


class Settings(_Frozen):
    """Everything a FinMon process needs, validated once at start-up."""

    role: Role = "all"
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    kafka: KafkaSettings = Field(default_factory=KafkaSettings)
    model: ModelSettings = Field(default_factory=ModelSettings)
    ingest: IngestSettings = Field(default_factory=IngestSettings)
    aggregate: AggregateSettings = Field(default_factory=AggregateSettings)
    alerts: AlertSettings = Field(default_factory=AlertSettings)
    metrics: MetricsSettings = Field(default_factory=MetricsSettings)
    state: StateSettings = Field(default_factory=StateSettings)
    health: HealthSettings = Field(default_factory=HealthSettings)
    reload: ReloadSettings = Field(default_factory=ReloadSettings)
    shutdown: ShutdownSettings = Field(default_factory=ShutdownSettings)
    sources: SourcesSettings = Field(default_factory=SourcesSettings)

    @model_validator(mode="after")
    def _sizes_agree(self) -> Settings:
        room = self.kafka.max_request_bytes - OUTPUT_HEADROOM_BYTES
        if self.ingest.max_message_bytes > room:
            raise ValueError(
                f"ingest.max_message_bytes ({self.ingest.max_message_bytes}) must be at most "
                f"kafka.max_request_bytes - {OUTPUT_HEADROOM_BYTES} ({room}): lower it or raise "
                "kafka.max_request_bytes (and the broker's message.max.bytes)"
            )
        return self


def _env_overrides(environ: Mapping[str, str]) -> dict[str, Any]:
    """Nested dict from ``FINMON_SECTION__KEY=value`` variables (values parsed as YAML scalars)."""
    tree: dict[str, Any] = {}
    for name, raw in environ.items():
        if not name.startswith(ENV_PREFIX):
            continue
        path = name[len(ENV_PREFIX) :].lower().split(ENV_NESTED_DELIMITER)
        node = tree
        for part in path[:-1]:
            node = node.setdefault(part, {})
            if not isinstance(node, dict):
                raise ConfigError(name, "conflicts with another FINMON_ variable", "remove one")
        node[path[-1]] = _parse_env_value(raw)
    return tree


def _parse_env_value(raw: str) -> Any:
    try:
        value = yaml.safe_load(raw)
    except yaml.YAMLError:
        return raw
    # Keep strings that YAML would turn into dates or None as plain text.
    return raw if value is None or not isinstance(value, str | int | float | bool | list) else value


def _merge(base: dict[str, Any], override: Mapping[str, Any]) -> dict[str, Any]:
    merged = dict(base)
    for key, value in override.items():
        if isinstance(value, Mapping) and isinstance(merged.get(key), dict):
            merged[key] = _merge(merged[key], value)
        else:
            merged[key] = value
    return merged


def _read_file(path: Path) -> dict[str, Any]:
    if not path.is_file():
        raise ConfigError(str(path), "config file not found", "pass an existing --config FILE")
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except yaml.YAMLError as exc:
        raise ConfigError(str(path), f"is not valid YAML ({exc})", "fix the YAML syntax") from exc
    if not isinstance(data, dict):
        raise ConfigError(
            str(path), "top level must be a mapping", "see configs/finmon.example.yaml"
        )
    return data


def load_settings(
    path: str | Path | None = None,
    environ: Mapping[str, str] | None = None,
    overrides: Mapping[str, Any] | None = None,
) -> Settings:
    """Build settings from defaults, the config file, ``FINMON_*`` variables and ``overrides``.

    Raises ConfigError naming the first bad key (for example ``kafka.max_poll_interval_ms``), what
    is wrong with it and how to fix it.
    """
    data: dict[str, Any] = _read_file(Path(path)) if path else {}
    data = _merge(data, _env_overrides(os.environ if environ is None else environ))
    data = _merge(data, overrides or {})
    try:
        return Settings.model_validate(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        key = ".".join(str(p) for p in first["loc"]) or "<root>"
        fix = _fix_hint(first["type"], key)
        raise ConfigError(key, first["msg"], fix) from exc


def _fix_hint(error_type: str, key: str) -> str:
    env = ENV_PREFIX + key.upper().replace(".", ENV_NESTED_DELIMITER)
    if error_type == "extra_forbidden":
        return "remove it or check its spelling against configs/finmon.example.yaml"
    return f"set a valid value in the config file or in {env}"
