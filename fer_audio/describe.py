"""`fer-audio ctl describe`: who is there now, as one short line to print and speak.

Pure: per-track state in (the smoother's :class:`~fer_audio.smoothing.TrackState`
snapshots), text out. People are read left to right, as a sighted person
would scan the camera's view, with a position word and their settled
expression, e.g. "2 people: left smiling, right neutral". Only announced
faces count (a brief false detection is nobody). Other per-person facts
(head pose, a nod) can be added as more words per person here.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Protocol

NOBODY = "nobody in view"
UNSETTLED = "no clear expression"

# Horizontal position (-1 left edge .. 1 right edge) to a word: five bands so that two
# people side by side usually get different words.
_BANDS: tuple[tuple[float, str], ...] = ((-0.6, "far left"), (-0.2, "left"), (0.2, "centre"), (0.6, "right"))


class PersonState(Protocol):
    """What the description needs of one track (TrackState has it)."""

    @property
    def track(self) -> int: ...
    @property
    def announced(self) -> bool: ...
    @property
    def current(self) -> str | None: ...
    @property
    def x(self) -> float: ...


def position_word(x: float) -> str:
    for bound, word in _BANDS:
        if x < bound:
            return word
    return "far right"


def describe_people(people: Sequence[PersonState], words: Mapping[str, str] | None = None,
                    facing: Mapping[int, bool | None] | None = None) -> str:
    """One line: how many people, then each one's place and expression, left to right.

    ``words`` maps an expression label to what is said for it (the cue
    texts: happy -> "smiling"); a label without a word is said as it is.
    ``facing`` holds each track's settled attention (the social smoother's):
    a person facing the user gets "facing you" after their expression.
    """
    words = words or {}
    facing = facing or {}
    shown = sorted((p for p in people if p.announced), key=lambda p: (p.x, p.track))
    if not shown:
        return NOBODY
    parts = []
    for p in shown:
        what = UNSETTLED if p.current is None else (words.get(p.current, "").strip() or p.current)
        parts.append(f"{position_word(p.x)} {what}" + (" facing you" if facing.get(p.track) else ""))
    count = "1 person" if len(shown) == 1 else f"{len(shown)} people"
    return f"{count}: {', '.join(parts)}"
