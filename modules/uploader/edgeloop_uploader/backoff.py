"""Exponential backoff with jitter."""

from __future__ import annotations

import random

from edgeloop_uploader.config import RetryConfig


def backoff_delay(attempt: int, config: RetryConfig, rng: random.Random) -> float:
    """Delay before retry number ``attempt`` (1 for the first retry): ``initial * 2**(attempt-1)``,
    capped at ``max_backoff_s``, shortened by a random fraction up to ``jitter`` so that many
    devices (or entries) recovering together do not retry in step."""
    exponent = min(max(attempt, 1) - 1, 60)
    delay = min(config.max_backoff_s, config.initial_backoff_s * (2.0**exponent))
    return float(delay * (1.0 - config.jitter * rng.random()))
