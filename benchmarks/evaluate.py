"""Run a clip through the real pipeline with taps, and score what was heard against its ground truth.

The taps only listen: :class:`TapAudio` notes every cue handed to the real
AudioOut (which still plays it, into a WAV or nowhere), :class:`TapSmoother`
notes every observation handed to the real Smoother. The observations let
the raw per-frame argmax (what `fer` or deepface users get) be scored on
exactly the frames fer-audio saw, and let other smoothing settings be
replayed without running the detector and model again.

Scoring is per slot (a face position in the clip; slots differ in x in every
clip scored here). A heard cue is *correct* the first time a segment's own
label is cued, *repeated* when that label is cued again within the same
segment, and *false* when it names a label the face does not show (or comes
where no face is). A *change* is a segment whose label differs from the one
before it in the same slot; it is *missed* when no correct cue comes.
Neutral is silent by default, so only changes to a non-neutral label count
as expected cues.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from fer_audio.config import Config
from fer_audio.types import Event, Observation

SLOT_TOLERANCE = 0.25  # in x units (-1..1); slots in the clips are at least 0.44 apart
SILENT_LABELS = ("neutral",)


@dataclass(frozen=True)
class Heard:
    """One announcement: a cue fer-audio played, or a top-label change a raw argmax would announce."""

    t: float
    label: str
    x: float
    track: int


class TapAudio:
    """The real AudioOut, noting each cue it is asked to play."""

    def __init__(self, inner: Any, pan_width: float) -> None:
        self.inner = inner
        self.pan_width = pan_width
        self.heard: list[Heard] = []

    def play(self, cue: Any, t: float) -> bool:
        x = cue.pan / self.pan_width if self.pan_width > 0 else 0.0
        self.heard.append(Heard(t, cue.key, x, cue.track))
        return bool(self.inner.play(cue, t))

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)


class TapSmoother:
    """The real Smoother, noting each frame's observations."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.frames: list[tuple[float, list[Observation]]] = []

    def step(self, t: float, observations: Sequence[Observation]) -> list[Event]:
        self.frames.append((t, list(observations)))
        out: list[Event] = self.inner.step(t, observations)
        return out

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)


@dataclass
class ClipRun:
    stats: Any
    events: list[Event]
    heard: list[Heard]
    frames: list[tuple[float, list[Observation]]]
    presenter: dict[str, int]
    labels: tuple[str, ...]


def run_clip(cfg: Config, max_seconds: float | None = None) -> ClipRun:
    """The clip ``cfg.source.uri`` through build_stages' real stages, with taps."""
    from fer_audio.pipeline import Stages, build_stages
    from fer_audio.runner import Run as PipelineRun

    def build(c: Config) -> Stages:
        stages = build_stages(c)
        stages.audio, stages.smoother = TapAudio(stages.audio, c.audio.pan_width), TapSmoother(stages.smoother)
        return stages

    with PipelineRun(cfg, keep_events=True, build=build) as run:
        stats = run.pipe.run(max_seconds=max_seconds)
    stages = run.pipe.s
    audio, smoother = stages.audio, stages.smoother
    assert isinstance(audio, TapAudio) and isinstance(smoother, TapSmoother) and run.kept is not None
    sink = run.kept
    p = stages.presenter.stats
    return ClipRun(stats, sink.events, audio.heard, smoother.frames,
                   {"played": p.played, "dropped_stale": p.dropped_stale, "dropped_rate": p.dropped_rate},
                   tuple(stages.model.labels))


# -- the raw argmax baseline ---------------------------------------------------------------

def raw_argmax(frames: Sequence[tuple[float, Sequence[Observation]]], labels: Sequence[str],
               silent: Sequence[str] = ()) -> list[Heard]:
    """Every change of a track's per-frame top label (its first frame included) as an announcement.

    ``silent`` labels change the state but are not announced (to compare with
    fer-audio, whose neutral cue is silent by default).
    """
    last: dict[int, int] = {}
    out: list[Heard] = []
    for t, obs in frames:
        for o in obs:
            k = int(np.argmax(o.probs))
            if last.get(o.track) != k:
                last[o.track] = k
                if labels[k] not in silent:
                    out.append(Heard(t, labels[k], o.x, o.track))
    return out


# -- ground truth and scoring ---------------------------------------------------------------

@dataclass
class Slot:
    x: float
    segments: list[dict[str, Any]] = field(default_factory=list)

    def at(self, t: float) -> int | None:
        for i, s in enumerate(self.segments):
            if s["start"] <= t < s["end"]:
                return i
        return None

    def is_change(self, i: int) -> bool:
        seg = self.segments[i]
        if i == 0:
            return True
        prev = self.segments[i - 1]
        return not (abs(prev["end"] - seg["start"]) < 1e-9 and prev["label"] == seg["label"])


def slots_of(tl: dict[str, Any]) -> list[Slot]:
    by_x: dict[float, Slot] = {}
    for seg in tl["segments"]:
        by_x.setdefault(seg["x"], Slot(seg["x"])).segments.append(seg)
    for s in by_x.values():
        s.segments.sort(key=lambda g: g["start"])
    return sorted(by_x.values(), key=lambda s: s.x)


@dataclass
class Score:
    correct: int = 0
    repeated: int = 0
    false: int = 0
    expected: int = 0
    missed: int = 0
    minutes: float = 0.0
    face_minutes: float = 0.0
    latencies: list[dict[str, Any]] = field(default_factory=list)
    false_list: list[dict[str, Any]] = field(default_factory=list)
    missed_list: list[dict[str, Any]] = field(default_factory=list)

    @property
    def unwanted(self) -> int:
        return self.false + self.repeated

    @property
    def unwanted_per_min(self) -> float:
        return self.unwanted / self.minutes if self.minutes else math.nan

    def as_dict(self) -> dict[str, Any]:
        return {"correct": self.correct, "repeated": self.repeated, "false": self.false,
                "expected_changes": self.expected, "missed": self.missed, "minutes": round(self.minutes, 3),
                "face_minutes": round(self.face_minutes, 3),
                "unwanted_per_min": round(self.unwanted_per_min, 3) if self.minutes else None,
                "unwanted_per_face_min": round(self.unwanted / self.face_minutes, 3) if self.face_minutes else None,
                "latencies": self.latencies, "false_cues": self.false_list, "missed_changes": self.missed_list}


def score(heard: Sequence[Heard], tl: dict[str, Any], silent: Sequence[str] = SILENT_LABELS,
          until: float | None = None) -> Score:
    """Score announcements against a clip's timeline (see the module docstring)."""
    slots = slots_of(tl)
    end = float(tl["duration"]) if until is None else until
    sc = Score(minutes=end / 60.0)
    sc.face_minutes = sum(min(g["end"], end) - g["start"] for s in slots for g in s.segments if g["start"] < end) / 60
    matched: set[tuple[int, int]] = set()
    for h in sorted(heard, key=lambda h: h.t):
        if h.t > end:
            continue
        near = [(abs(s.x - h.x), k) for k, s in enumerate(slots) if abs(s.x - h.x) <= SLOT_TOLERANCE]
        if not near:
            sc.false += 1
            sc.false_list.append({"t": round(h.t, 3), "label": h.label, "x": round(h.x, 3), "why": "no face there"})
            continue
        k = min(near)[1]
        i = slots[k].at(h.t)
        seg = slots[k].segments[i] if i is not None else None
        if seg is None or seg["label"] != h.label:
            sc.false += 1
            sc.false_list.append({"t": round(h.t, 3), "label": h.label, "x": round(h.x, 3),
                                  "truth": seg["label"] if seg else None})
            continue
        assert i is not None
        # The first correct announcement of a changed segment counts; within a run of
        # same-label segments (a new neutral face every 3 s), the run is one expression.
        first = i
        while first > 0 and not slots[k].is_change(first):
            first -= 1
        if (k, first) in matched:
            sc.repeated += 1
            continue
        matched.add((k, first))
        sc.correct += 1
        start = slots[k].segments[first]["start"]
        sc.latencies.append({"onset": start, "t": round(h.t, 4), "latency_s": round(h.t - start, 4),
                             "label": h.label, "x": slots[k].x,
                             "from": slots[k].segments[first - 1]["label"] if first > 0 else None})
    for k, s in enumerate(slots):
        for i, seg in enumerate(s.segments):
            if seg["start"] >= end or seg["label"] in silent or not s.is_change(i):
                continue
            sc.expected += 1
            if (k, i) not in matched:
                sc.missed += 1
                sc.missed_list.append({"onset": seg["start"], "label": seg["label"], "x": s.x})
    return sc


# -- finding earcons in a WAV -----------------------------------------------------------------

def earcon_onsets(wav: Path, earcons: dict[str, Path], threshold: float = 0.9) -> list[tuple[float, str, float]]:
    """(time s, label, normalised correlation) of every earcon found in a WAV, by cross-correlation.

    Each earcon is loaded the way AudioOut loads it (mono, at the WAV's rate) and
    slid over the WAV's mono mix; a position where the normalised correlation
    passes ``threshold`` and is a local maximum is a cue's first sample. Pan and
    gain scale a voice and do not change its normalised correlation.
    """
    import soundfile

    from fer_audio.sound import load_sound

    data, rate = soundfile.read(str(wav), dtype="float64", always_2d=True)
    mono = data.sum(axis=1)
    found: list[tuple[float, str, float]] = []
    if mono.size == 0 or not np.any(mono):
        return found
    energy = np.concatenate([[0.0], np.cumsum(mono * mono)])
    for label, path in earcons.items():
        e = load_sound(path, rate).data.astype(np.float64)
        n = len(e)
        if n > len(mono):
            continue
        size = 1 << int(math.ceil(math.log2(len(mono) + n)))
        corr = np.fft.irfft(np.fft.rfft(mono, size) * np.conj(np.fft.rfft(e, size)), size)[: len(mono) - n + 1]
        local = np.sqrt(np.maximum(energy[n:] - energy[:-n], 1e-20))
        ncc = corr / (local * np.linalg.norm(e))
        idx = np.flatnonzero(ncc > threshold)
        # Keep the best position of each run of above-threshold samples (one earcon each).
        start = 0
        while start < len(idx):
            stop = start
            while stop + 1 < len(idx) and idx[stop + 1] - idx[stop] < n // 2:
                stop += 1
            run = idx[start:stop + 1]
            best = int(run[np.argmax(ncc[run])])
            found.append((best / rate, label, float(ncc[best])))
            start = stop + 1
    found.sort()
    return found


def segment_confidence(frames: Sequence[tuple[float, Sequence[Observation]]], tl: dict[str, Any],
                       labels: Sequence[str]) -> dict[tuple[float, float], float]:
    """Mean model probability of each segment's own label over its frames, keyed by (slot x, start).

    It tells a miss by the smoother (the model was sure) from a miss by the model (it never was).
    """
    out: dict[tuple[float, float], float] = {}
    for slot in slots_of(tl):
        for seg in slot.segments:
            k = labels.index(seg["label"]) if seg["label"] in labels else None
            if k is None:
                continue
            ps = [float(o.probs[k]) for t, obs in frames if seg["start"] <= t < seg["end"]
                  for o in obs if abs(o.x - slot.x) <= SLOT_TOLERANCE]
            if ps:
                out[(slot.x, seg["start"])] = sum(ps) / len(ps)
    return out
