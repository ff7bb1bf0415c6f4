"""The reconnect rule, stated once: the camera and the audio device both wait like this between tries."""

from __future__ import annotations

from collections.abc import Iterator


def backoff_delays(initial_s: float, max_s: float) -> Iterator[float]:
    """Reopen waits: initial, doubled each time, capped at max."""
    delay = min(initial_s, max_s)
    while True:
        yield delay
        delay = min(delay * 2.0, max_s)
