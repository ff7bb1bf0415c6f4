"""Nothing true is lost: cues that meet the rate limit wait while still true (issue 13).

Pure: a scripted clock and a scripted scene (who is present, what each holds).
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fer_audio.config import AudioConfig, Config, SmoothingConfig
from fer_audio.cues import MAX_PENDING, Cue, CuePlanner, CuePresenter, Scene, still_true
from fer_audio.resources import LABELS, SOUNDS_DIR
from fer_audio.smoothing import Smoother
from fer_audio.types import Observation

# 1/16 s: exact in binary, so "exactly min_interval_s later" is exact on this clock.
FRAME = 0.0625


def audio(**kw: object) -> AudioConfig:
    return AudioConfig.model_validate({"output": "silent", **kw})


def cue(key: str, event_t: float, track: int, size: float = 0.3) -> Cue:
    return Cue(key=key, mode="earcon", earcon=SOUNDS_DIR / "happy.wav", text="", gain_db=0.0, pan=0.0,
               event_t=event_t, track=track, size=size)


def run(p: CuePresenter, until: float, arrivals: dict[float, list[Cue]],
        scene_at: dict[float, Scene]) -> list[tuple[float, int, str]]:
    """Present every frame up to ``until``; the frame at time t gets arrivals[t] and the latest scene given."""
    played: list[tuple[float, int, str]] = []
    scene: Scene = {}
    for i in range(round(until / FRAME) + 1):
        now = i * FRAME
        scene = scene_at.get(now, scene)
        played += [(now, c.track, c.key) for c in p.present(arrivals.get(now, []), now, scene)]
    return played


def test_still_true_per_kind() -> None:
    scene = {1: "happy", 2: None}
    assert still_true(cue("happy", 0, 1), scene)
    assert not still_true(cue("sad", 0, 1), scene)
    assert not still_true(cue("happy", 0, 2), scene)  # present, but the expression has gone
    assert not still_true(cue("happy", 0, 3), scene)  # not present
    assert still_true(cue("face_appeared", 0, 2), scene) and not still_true(cue("face_appeared", 0, 3), scene)
    assert still_true(cue("face_lost", 0, 3), scene) and not still_true(cue("face_lost", 0, 1), scene)


def test_two_people_at_once_both_play_one_slot_apart() -> None:
    p = CuePresenter(audio(min_interval_s=1.5))
    both = [cue("sad", 1.0, track=2, size=0.4), cue("happy", 1.0, track=1, size=0.2)]
    played = run(p, 4.0, {1.0: both}, {0.0: {1: "happy", 2: "sad"}})
    assert played == [(1.0, 2, "sad"), (2.5, 1, "happy")]  # the larger face first, the other at the next slot
    assert p.stats.played == 2 and p.stats.pending == 0


def test_three_people_play_in_order_of_size() -> None:
    p = CuePresenter(audio(min_interval_s=1.5))
    three = [cue("happy", 1.0, 1, 0.2), cue("surprise", 1.0, 2, 0.5), cue("sad", 1.0, 3, 0.3)]
    played = run(p, 6.0, {1.0: three}, {0.0: {1: "happy", 2: "surprise", 3: "sad"}})
    assert played == [(1.0, 2, "surprise"), (2.5, 3, "sad"), (4.0, 1, "happy")]
    gaps = np.diff([t for t, _, _ in played])
    assert np.all(gaps >= 1.5 - 1e-9)


def test_one_who_changes_while_waiting_is_not_told_stale() -> None:
    p = CuePresenter(audio(min_interval_s=1.5))
    both = [cue("happy", 1.0, 1, 0.4), cue("happy", 1.0, 2, 0.2)]
    # Person 2 stops smiling at 1.8 s (no new event: nothing settled yet) ...
    played = run(p, 5.0, {1.0: both}, {0.0: {1: "happy", 2: "happy"}, 1.8125: {1: "happy", 2: None}})
    assert played == [(1.0, 1, "happy")]
    assert p.stats.dropped_untrue == 1 and p.stats.pending == 0


def test_one_who_changes_to_a_new_expression_is_heard_with_the_new_one() -> None:
    p = CuePresenter(audio(min_interval_s=1.5))
    both = [cue("happy", 1.0, 1, 0.4), cue("happy", 1.0, 2, 0.2)]
    arrivals = {1.0: both, 2.0: [cue("sad", 2.0, 2, 0.2)]}  # person 2 settles into sad at 2.0 s
    played = run(p, 5.0, arrivals, {0.0: {1: "happy", 2: "happy"}, 2.0: {1: "happy", 2: "sad"}})
    assert played == [(1.0, 1, "happy"), (2.5, 2, "sad")]  # one pending cue per person: the newer replaced it
    assert p.stats.dropped_untrue == 1


def test_one_who_leaves_while_waiting_is_dropped() -> None:
    p = CuePresenter(audio(min_interval_s=1.5))
    both = [cue("happy", 1.0, 1, 0.4), cue("sad", 1.0, 2, 0.2)]
    played = run(p, 5.0, {1.0: both}, {0.0: {1: "happy", 2: "sad"}, 2.1875: {1: "happy"}})
    assert played == [(1.0, 1, "happy")]
    assert p.stats.dropped_untrue == 1


def test_a_true_cue_waits_at_most_max_pending_s() -> None:
    p = CuePresenter(audio(min_interval_s=10.0, max_pending_s=3.0))
    both = [cue("happy", 1.0, 1, 0.4), cue("sad", 1.0, 2, 0.2)]
    played = run(p, 12.0, {1.0: both}, {0.0: {1: "happy", 2: "sad"}})
    assert played == [(1.0, 1, "happy")]  # the slot opens at 11 s; person 2's cue expired at 4 s
    assert p.stats.dropped_expired == 1 and p.stats.pending == 0


def test_exactly_max_pending_s_still_plays() -> None:
    p = CuePresenter(audio(min_interval_s=2.0, max_pending_s=2.0))
    scene = {1: "happy", 2: "sad"}
    assert [c.track for c in p.present([cue("happy", 0.0, 1, 0.4), cue("sad", 0.0, 2, 0.2)], 0.0, scene)] == [1]
    assert [c.track for c in p.present([], 2.0, scene)] == [2]


def test_pending_is_bounded_keeping_the_largest_faces() -> None:
    p = CuePresenter(audio(min_interval_s=1.5))
    crowd = [cue("happy", 1.0, track=i, size=0.01 * (i + 1)) for i in range(MAX_PENDING + 4)]
    scene = {c.track: "happy" for c in crowd}
    (first,) = p.present(crowd, 1.0, scene)
    assert first.track == MAX_PENDING + 3
    kept = [c.track for c in p.pending()]
    # The 8 largest were kept (one of them then played); the 4 smallest faces were dropped.
    assert kept == list(range(MAX_PENDING + 2, 3, -1))
    assert p.stats.dropped_expired == 4


def test_no_rate_limit_plays_every_pending_cue_now() -> None:
    p = CuePresenter(audio(min_interval_s=0.0))
    got = p.present([cue("happy", 1.0, 1, 0.2), cue("sad", 1.0, 2, 0.4)], 1.0, {1: "happy", 2: "sad"})
    assert [c.track for c in got] == [2, 1]


def test_clock_restart_drops_cues_of_the_old_timeline() -> None:
    p = CuePresenter(audio(min_interval_s=1.5))
    scene = {1: "happy", 2: "sad"}
    p.present([cue("happy", 10.0, 1, 0.4), cue("sad", 10.0, 2, 0.2)], 10.0, scene)
    assert p.stats.pending == 1
    assert p.present([cue("happy", 0.0, 1)], 0.0, scene) == [cue("happy", 0.0, 1)]
    assert p.stats.pending == 0 and p.stats.dropped_expired == 1


def test_reset_forgets_waiting_cues() -> None:
    p = CuePresenter(audio(min_interval_s=1.5))
    scene = {1: "happy", 2: "sad"}
    p.present([cue("happy", 1.0, 1, 0.4), cue("sad", 1.0, 2, 0.2)], 1.0, scene)
    p.reset()
    assert p.pending() == [] and p.present([], 3.0, scene) == []


@settings(max_examples=150, deadline=None)
@given(
    min_interval=st.floats(0.0, 3.0),
    max_pending=st.floats(0.1, 5.0),
    steps=st.lists(
        st.tuples(
            st.floats(0.0, 1.0),                                  # clock advance
            st.lists(st.tuples(st.integers(0, 11), st.sampled_from(["happy", "sad"]),
                               st.floats(0.0, 1.0)), max_size=4),  # (track, label, size) settling now
            st.lists(st.integers(0, 11), max_size=3),             # tracks that leave
        ),
        max_size=40,
    ),
)
def test_property_pending_invariants(min_interval: float, max_pending: float,
                                     steps: list[tuple[float, list[tuple[int, str, float]], list[int]]]) -> None:
    p = CuePresenter(audio(min_interval_s=min_interval, max_pending_s=max_pending))
    now, offered, plays = 0.0, 0, []
    scene: dict[int, str | None] = {}
    for advance, settle, leave in steps:
        now += advance
        for tr in leave:
            scene.pop(tr, None)
        batch: dict[int, Cue] = {}
        for tr, label, size in settle:
            scene[tr] = label
            batch[tr] = cue(label, now, tr, size)
        offered += len(batch)
        for c in p.present(list(batch.values()), now, scene):
            assert still_true(c, scene)                     # never a cue that stopped being true
            assert now - c.event_t <= max_pending + 1e-9    # never one that waited too long
            plays.append(now)
        assert p.stats.pending <= MAX_PENDING
        assert len({c.track for c in p.pending()}) == p.stats.pending  # one per person
    assert all(b - a >= min_interval for a, b in zip(plays, plays[1:], strict=False) if min_interval > 0)
    s = p.stats
    assert s.played + s.dropped_untrue + s.dropped_expired + s.pending == offered
    assert s.played == len(plays)


# -- with the real smoother and planner --------------------------------------


def test_two_people_settling_together_are_both_heard_each_panned_to_them() -> None:
    smoother = Smoother(SmoothingConfig(), LABELS)
    a = audio(verbosity="changes-only")
    planner, presenter = CuePlanner(Config().cues, a), CuePresenter(a)
    smile = np.full(len(LABELS), 0.1 / (len(LABELS) - 1))
    smile[LABELS.index("happy")] = 0.9
    sad = np.full(len(LABELS), 0.1 / (len(LABELS) - 1))
    sad[LABELS.index("sad")] = 0.9
    flat = np.full(len(LABELS), 1.0 / len(LABELS))
    played: list[tuple[float, Cue]] = []
    for i in range(150):
        t = i * FRAME
        frame = [Observation(1, smile if t >= 1.0 else flat, x=-0.6, size=0.3),
                 Observation(2, sad if t >= 1.0 else flat, x=0.6, size=0.25)]
        events = smoother.step(t, frame)
        played += [(t, c) for c in presenter.present(planner.plan(events), t, smoother.holding())]
    assert [(c.track, c.key) for _, c in played] == [(1, "happy"), (2, "sad")]
    (t1, left), (t2, right) = played
    assert left.pan == pytest.approx(-0.6 * a.pan_width) and right.pan == pytest.approx(0.6 * a.pan_width)
    assert t2 - t1 == pytest.approx(math.ceil(a.min_interval_s / FRAME - 1e-9) * FRAME)
