"""The detectors' and rules' parameters, read from the aggregate settings.

The detectors take plain frozen parameter objects (``alerts.detectors``, ``alerts.rules``); this
module is the one place that maps the validated settings onto them.
"""

from __future__ import annotations

from alerts.detectors import SpikeParams, SurgeParams
from alerts.rules import AlertPolicy
from alerts.stories import StoryParams
from monitor.settings import AggregateSettings


def story_params(s: AggregateSettings) -> StoryParams:
    return StoryParams(
        window_ms=s.story_window_ms, max_stories=s.max_stories, threshold=s.story_similarity
    )


def alert_policy(s: AggregateSettings) -> AlertPolicy:
    return AlertPolicy(
        consecutive_windows=s.consecutive_windows,
        resolve_windows=s.resolve_windows,
        cooldown_ms=s.cooldown_ms,
        max_alert_windows=s.max_alert_windows,
        key_kinds=tuple(s.alert_key_kinds),
    )


def spike_params(s: AggregateSettings) -> SpikeParams:
    return SpikeParams(
        lookback_windows=s.lookback_windows,
        min_volume=s.min_volume,
        z=s.spike_z,
        critical_z=s.spike_critical_z,
        resolve_z=s.resolve_z,
        min_rise=s.min_share_rise,
        min_share=s.negative_share_threshold,
        prior_share=s.baseline_prior_share,
        prior_items=s.baseline_prior_items,
        prior_spread=s.baseline_prior_spread,
        half_life_windows=s.baseline_half_life_windows,
    )


def surge_params(s: AggregateSettings) -> SurgeParams:
    return SurgeParams(
        window_ms=s.window_ms,
        lookback_windows=s.lookback_windows,
        min_volume=s.volume_min_items,
        z=s.volume_z,
        min_ratio=s.volume_min_ratio,
        critical_ratio=s.volume_critical_ratio,
        resolve_z=s.resolve_z,
        warmup_windows=s.volume_warmup_windows,
        half_life_windows=s.volume_half_life_windows,
        memory_weeks=s.volume_season_memory_weeks,
    )


__all__ = ["alert_policy", "spike_params", "story_params", "surge_params"]
