"""Choosing ONNX Runtime execution providers from what the twin asks for and what is installed."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass

from edgeloop_inference.config import PROVIDER_ALIASES

log = logging.getLogger(__name__)

CPU = "CPUExecutionProvider"


@dataclass(frozen=True)
class ProviderChoice:
    """The providers to open a session with, and why some requested ones were skipped."""

    providers: list[str]
    warnings: list[str]


def resolve(name: str) -> str:
    """``cuda`` -> ``CUDAExecutionProvider``; full names pass through."""
    return PROVIDER_ALIASES.get(name.lower(), name)


def choose_providers(requested: Sequence[str], available: Sequence[str]) -> ProviderChoice:
    """Keep the requested providers that are installed, in order, with CPU always last.

    A requested provider that is not installed is skipped with a warning; when none is left the
    session runs on CPU (also a warning unless CPU was the only one asked for).
    """
    chosen: list[str] = []
    warnings: list[str] = []
    for name in requested:
        full = resolve(name)
        if full in chosen:
            continue
        if full in available:
            chosen.append(full)
        else:
            warnings.append(f"execution provider {full} is not available here (installed: {list(available)})")
    if CPU in chosen:
        chosen.remove(CPU)
    if not chosen and any(resolve(n) != CPU for n in requested):
        warnings.append("falling back to CPUExecutionProvider")
    chosen.append(CPU)
    for warning in warnings:
        log.warning("%s", warning)
    return ProviderChoice(chosen, warnings)


def available_providers() -> list[str]:
    import onnxruntime

    return list(onnxruntime.get_available_providers())
