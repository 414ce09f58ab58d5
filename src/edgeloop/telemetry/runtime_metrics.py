"""The module runtime's own metrics, the same for every module: its event counters (messages
and items in and out, method calls, config changes, handler errors), whether it is paused and
the desired-properties version in force. Read at each collection, never pushed."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any, Protocol

from edgeloop.telemetry import metrics
from edgeloop.telemetry.names import M_MODULE_CONFIG_VERSION, M_MODULE_EVENTS, M_MODULE_PAUSED

#: Reported from the start (at 0), so rates work before the first event.
STANDARD_EVENTS = (
    "messages_in",
    "items_in",
    "messages_out",
    "items_out",
    "messages_rejected",
    "method_calls",
    "method_errors",
    "config_applied",
    "config_rejected",
    "handle_input_errors",
)


class _Runtime(Protocol):
    @property
    def counters(self) -> Mapping[str, int]: ...
    @property
    def paused(self) -> bool: ...
    @property
    def config_state(self) -> Any: ...


def observe_runtime(runtime: _Runtime) -> None:
    """Report ``runtime``'s counters and state as metrics (replacing a previous runtime's)."""

    def events() -> Iterable[tuple[int, Mapping[str, str]]]:
        # A copy first: the runtime thread may add a key while the scrape reads.
        counts = dict.fromkeys(STANDARD_EVENTS, 0)
        counts.update(list(runtime.counters.items()))
        return [(value, {"event": name}) for name, value in counts.items()]

    def config_version() -> Iterable[tuple[int, Mapping[str, str]]]:
        version = runtime.config_state.version
        return [] if version is None else [(int(version), {})]

    metrics.observe(
        M_MODULE_EVENTS,
        events,
        kind="counter",
        description="Runtime events: messages and items in and out, method calls, config changes, errors.",
    )
    metrics.observe(M_MODULE_PAUSED, lambda: int(runtime.paused), description="1 while the module is paused.")
    metrics.observe(
        M_MODULE_CONFIG_VERSION, config_version, description="Desired-properties version in force."
    )


def forget_runtime() -> None:
    for name in (M_MODULE_EVENTS, M_MODULE_PAUSED, M_MODULE_CONFIG_VERSION):
        metrics.forget(name)
