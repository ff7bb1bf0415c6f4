"""Scripted probability sequences through the smoothing state machine.

Expected event times are derived from the config and the smoothing formula,
never typed in, so the tests keep their meaning when defaults change.
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable, Iterable, Sequence

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fer_audio.config import SmoothingConfig
from fer_audio.resources import LABELS
from fer_audio.smoothing import TIME_EPS, ObservationError, Smoother
from fer_audio.types import Event, Observation

N = len(LABELS)
FPS = 25.0
DT = 1.0 / FPS


# -- helpers ----------------------------------------------------------------

def peaked(label: str | None, p: float = 0.9) -> np.ndarray:
    """``label`` at ``p``, the rest spread evenly; None gives a flat vector."""
    if label is None:
        return np.full(N, 1.0 / N)
    v = np.full(N, (1.0 - p) / (N - 1))
    v[LABELS.index(label)] = p
    return v


def obs(track: int, probs: np.ndarray, x: float = 0.0, size: float = 0.3) -> Observation:
    return Observation(track=track, probs=probs, x=x, size=size)


Signal = Callable[[float], "np.ndarray | None"]


def const(label: str | None, p: float = 0.9) -> Signal:
    v = peaked(label, p)
    return lambda t: v


def run(sm: Smoother, times: Iterable[float], signals: dict[int, Signal]) -> list[Event]:
    """Step through ``times``; each track observed when its signal gives a vector."""
    events: list[Event] = []
    for t in times:
        frame = []
        for tid, sig in sorted(signals.items()):
            p = sig(t)
            if p is not None:
                frame.append(obs(tid, p))
        events.extend(sm.step(t, frame))
    return events


def grid(start: float, stop: float, dt: float = DT) -> list[float]:
    n = int(round((stop - start) / dt))
    return [start + i * dt for i in range(n)]


def jittered(start: float, stop: float, lo: float, hi: float, seed: int) -> list[float]:
    rng = random.Random(seed)
    out, t = [], start
    while t < stop:
        out.append(t)
        t += rng.uniform(lo, hi)
    return out


def step_signal(t_on: float, before: np.ndarray, after: np.ndarray) -> Callable[[float], np.ndarray]:
    return lambda t: after if t >= t_on else before


def expressions(events: Sequence[Event], track: int | None = None) -> list[Event]:
    return [e for e in events if e.kind == "expression" and (track is None or e.track == track)]


def onset_event_time(cfg: SmoothingConfig, s0: float, target: float, t_switch: float) -> float:
    """When an onset from smoothed ``s0`` toward ``target`` should be cued.

    The smoothed value reaches enter_threshold after h*log2((target-s0)/(target-enter));
    the candidate must then hold for min_dwell_s.
    """
    cross = cfg.half_life_s * math.log2((target - s0) / (target - cfg.enter_threshold))
    return t_switch + cross + cfg.min_dwell_s


# -- scripted scenarios -----------------------------------------------------

def test_clean_onset_gives_one_event_at_the_expected_time() -> None:
    cfg = SmoothingConfig()
    sm = Smoother(cfg, LABELS)
    t_on = 2.0
    events = run(sm, grid(0.0, 5.0), {1: step_signal(t_on, peaked(None), peaked("happy", 0.9))})

    expr = expressions(events)
    assert [e.label for e in expr] == ["happy"]
    # An observation at t stands for the interval since the previous frame,
    # so the change is seen as starting one frame before t_on.
    expected = onset_event_time(cfg, 1.0 / N, 0.9, t_on - DT)
    assert abs(expr[0].t - expected) <= DT + TIME_EPS
    assert expr[0].confidence >= cfg.enter_threshold
    appeared = [e for e in events if e.kind == "face_appeared"]
    assert len(appeared) == 1
    assert cfg.appear_after_s - TIME_EPS <= appeared[0].t < cfg.appear_after_s + DT


def test_expression_event_carries_latest_position_and_size() -> None:
    cfg = SmoothingConfig()
    sm = Smoother(cfg, LABELS)
    events: list[Event] = []
    for i, t in enumerate(grid(0.0, 2.0)):
        x, size = -0.9 + 0.01 * i, 0.2 + 0.001 * i
        for ev in sm.step(t, [obs(4, peaked("surprise", 0.95), x=x, size=size)]):
            events.append(ev)
            assert (ev.x, ev.size) == (x, size)
    expr = expressions(events)
    assert [e.label for e in expr] == ["surprise"]
    state = sm.state(4)
    assert state is not None and state.current == "surprise"
    # confidence is the smoothed probability at the moment of the event
    assert expr[0].confidence == pytest.approx(0.95)


def test_flicker_across_the_thresholds_gives_no_cue() -> None:
    # A fast half-life so the smoothed value really crosses enter and exit;
    # the bursts are shorter than min_dwell_s, so nothing may be cued.
    cfg = SmoothingConfig(half_life_s=0.03, min_dwell_s=0.4)
    sm = Smoother(cfg, LABELS)
    rng = np.random.default_rng(7)
    burst = cfg.min_dwell_s / 2
    top_seen, candidacies, events = 0.0, 0, []
    for t in grid(0.0, 8.0):
        high = int(t / burst) % 2 == 0
        p = peaked("happy", 0.85) if high else peaked("happy", 0.15)
        p = np.clip(p + rng.uniform(-0.04, 0.04, N), 0.0, 1.0)
        events += sm.step(t, [obs(1, p)])
        s = sm.state(1)
        assert s is not None
        top_seen = max(top_seen, s.probs["happy"])
        candidacies += s.candidate is not None and s.candidate_since == t
    assert top_seen >= cfg.enter_threshold  # the test really crossed the threshold
    assert candidacies >= 10
    assert expressions(events) == []


def test_argmax_alternating_every_frame_gives_no_cue() -> None:
    cfg = SmoothingConfig(half_life_s=0.005)  # nearly no smoothing: the argmax really flips
    sm = Smoother(cfg, LABELS)
    tops, events = [], []
    for i, t in enumerate(grid(0.0, 5.0)):
        events += sm.step(t, [obs(1, peaked("happy" if i % 2 else "sad", 0.9))])
        s = sm.state(1)
        assert s is not None
        top = max(s.probs, key=s.probs.__getitem__)
        assert s.probs[top] >= cfg.enter_threshold
        tops.append(top)
    assert all(a != b for a, b in zip(tops, tops[1:], strict=False))
    assert expressions(events) == []


def test_two_people_have_independent_states() -> None:
    # A dwell of whole frames (5 at 25 fps), so the onset formula is off by at most one frame.
    cfg = SmoothingConfig(min_dwell_s=0.2)
    sig1 = step_signal(1.0, peaked(None), peaked("happy", 0.9))
    sig2_inner = step_signal(2.5, peaked(None), peaked("sad", 0.8))

    def sig2(t: float) -> np.ndarray | None:
        return sig2_inner(t) if t >= 0.5 else None

    both = run(Smoother(cfg, LABELS), grid(0.0, 5.0), {1: sig1, 2: sig2})
    alone1 = run(Smoother(cfg, LABELS), grid(0.0, 5.0), {1: sig1})
    alone2 = run(Smoother(cfg, LABELS), grid(0.0, 5.0), {2: sig2})

    assert [e for e in both if e.track == 1] == alone1
    assert [e for e in both if e.track == 2] == alone2
    assert [e.label for e in expressions(both, 1)] == ["happy"]
    assert [e.label for e in expressions(both, 2)] == ["sad"]
    t2 = expressions(both, 2)[0].t
    assert abs(t2 - onset_event_time(cfg, 1.0 / N, 0.8, 2.5 - DT)) <= DT + TIME_EPS


def test_face_leaves_and_a_new_track_returns() -> None:
    cfg = SmoothingConfig()
    sm = Smoother(cfg, LABELS)
    events = run(sm, grid(0.0, 2.0), {1: const("happy")})
    last_seen = grid(0.0, 2.0)[-1]
    gone = run(sm, grid(2.0, 4.0), {})
    back = run(sm, grid(4.0, 6.0), {2: const("happy")})

    assert [(e.kind, e.label) for e in events] == [("face_appeared", None), ("expression", "happy")]
    assert [(e.kind, e.track) for e in gone] == [("face_lost", 1)]
    assert last_seen + cfg.lost_after_s - TIME_EPS <= gone[0].t < last_seen + cfg.lost_after_s + DT
    assert sm.state(1) is None
    # A new track starts from scratch: announced again, its own cue, no cooldown inherited.
    assert [(e.kind, e.track, e.label) for e in back] == [
        ("face_appeared", 2, None), ("expression", 2, "happy")]
    assert back[0].t == pytest.approx(4.0 + cfg.appear_after_s, abs=DT)
    s2 = sm.state(2)
    assert s2 is not None and s2.first_seen == 4.0


def test_same_track_id_after_loss_starts_fresh() -> None:
    cfg = SmoothingConfig(cooldown_s=60.0)
    sm = Smoother(cfg, LABELS)
    first = run(sm, grid(0.0, 1.0), {1: const("happy")})
    run(sm, grid(1.0, 1.0 + cfg.lost_after_s + 0.2), {})
    assert sm.tracks() == []
    second = run(sm, grid(3.0, 4.0), {1: const("happy")})
    # The old state (including its cooldown) went with the loss.
    assert [e.kind for e in first] == [e.kind for e in second] == ["face_appeared", "expression"]


def test_irregular_frame_timing_matches_regular() -> None:
    cfg = SmoothingConfig()
    t_on, before, after = 2.0, peaked(None), peaked("fear", 0.85)
    sig = step_signal(t_on, before, after)
    ideal = onset_event_time(cfg, 1.0 / N, 0.85, t_on)
    times: dict[str, list[float]] = {
        "regular": grid(0.0, 5.0),
        "jittered": jittered(0.0, 5.0, 0.01, 0.08, seed=3),
        "slow": grid(0.0, 5.0, 0.1),
    }
    got, worst_all = {}, 0.0
    for name, ts in times.items():
        expr = expressions(run(Smoother(cfg, LABELS), ts, {1: sig}))
        assert [e.label for e in expr] == ["fear"], name
        got[name] = expr[0].t
        worst = max(b - a for a, b in zip(ts, ts[1:], strict=False))
        # the switch is seen up to one frame early; candidate and promotion each wait up to one frame
        assert ideal - worst - TIME_EPS <= got[name] <= ideal + 2 * worst + TIME_EPS, name
        worst_all = max(worst_all, worst)
    assert abs(got["jittered"] - got["regular"]) <= 3 * worst_all


def test_cooldown_blocks_the_same_label_only() -> None:
    cfg = SmoothingConfig(half_life_s=0.1, cooldown_s=4.0)
    sm = Smoother(cfg, LABELS)
    script = [("happy", 0.0, 2.0), ("neutral", 2.0, 3.0), ("happy", 3.0, 4.0),
              ("neutral", 4.0, 5.0), ("happy", 5.0, 6.5)]
    events: list[Event] = []
    for label, a, b in script:
        events += run(sm, grid(a, b), {1: const(label)})
        s = sm.state(1)
        assert s is not None and s.current == label  # state follows even when no cue is given
    expr = expressions(events)
    labels_times = [(e.label, e.t) for e in expr]
    happy_t = [t for lb, t in labels_times if lb == "happy"]
    neutral_t = [t for lb, t in labels_times if lb == "neutral"]
    # happy at the start; its re-entry at 3 s is within the cooldown; at 5 s it is past it
    assert len(happy_t) == 2
    assert happy_t[0] < 2.0 and happy_t[1] >= 5.0
    assert happy_t[1] - happy_t[0] >= cfg.cooldown_s
    # a different label is not blocked by happy's cooldown, but its own re-entry is
    assert len(neutral_t) == 1 and 2.0 <= neutral_t[0] < 3.0


def test_different_label_within_cooldown_is_cued() -> None:
    cfg = SmoothingConfig(half_life_s=0.1, cooldown_s=30.0)
    sm = Smoother(cfg, LABELS)
    events = run(sm, grid(0.0, 1.5), {1: const("happy")})
    events += run(sm, grid(1.5, 3.0), {1: const("sad")})
    assert [e.label for e in expressions(events)] == ["happy", "sad"]


def test_hysteresis_keeps_state_between_exit_and_enter() -> None:
    cfg = SmoothingConfig(cooldown_s=0.0)  # so every real re-entry would be cued
    sm = Smoother(cfg, LABELS)
    middle = (cfg.exit_threshold + cfg.enter_threshold) / 2
    events = run(sm, grid(0.0, 1.5), {1: const("happy")})
    assert [e.label for e in expressions(events)] == ["happy"]

    dip = []
    for t in grid(1.5, 4.0):  # long enough for the average to settle in the band
        dip += sm.step(t, [obs(1, peaked("happy", middle))])
        s = sm.state(1)
        assert s is not None and s.current == "happy"
    assert s is not None
    assert s.probs["happy"] == pytest.approx(middle, abs=1e-3)
    assert cfg.exit_threshold < s.probs["happy"] < cfg.enter_threshold
    dip += run(sm, grid(4.0, 5.0), {1: const("happy")})
    assert expressions(dip) == []  # it never left, so coming back up is not news

    # Contrast: below exit (still the argmax) the state is left, so the return is cued.
    low = (cfg.exit_threshold + 1.0 / N) / 2
    below = run(sm, grid(5.0, 7.0), {1: const("happy", low)})
    s = sm.state(1)
    assert s is not None and s.current is None and expressions(below) == []
    again = run(sm, grid(7.0, 8.5), {1: const("happy")})
    assert [e.label for e in expressions(again)] == ["happy"]


def test_other_label_takes_over_after_dwell() -> None:
    cfg = SmoothingConfig(half_life_s=0.1)
    sm = Smoother(cfg, LABELS)
    run(sm, grid(0.0, 1.5), {1: const("happy")})
    events = run(sm, grid(1.5, 3.0), {1: const("angry")})
    s = sm.state(1)
    assert [e.label for e in expressions(events)] == ["angry"]
    assert s is not None and s.current == "angry"


def test_one_frame_detection_announces_nothing() -> None:
    cfg = SmoothingConfig()
    sm = Smoother(cfg, LABELS)
    events = sm.step(0.0, [obs(9, peaked("happy", 0.99))])
    events += run(sm, grid(DT, 4.0), {})
    assert events == []
    assert sm.tracks() == []


def test_detection_shorter_than_appear_after_announces_nothing() -> None:
    cfg = SmoothingConfig()
    sm = Smoother(cfg, LABELS)
    frames = int(cfg.appear_after_s / DT)  # frames 0..frames-1 all lie before appear_after_s
    events = run(sm, grid(0.0, DT * frames), {9: const("happy", 0.99)})
    s = sm.state(9)
    assert s is not None and s.candidate == "happy"  # the expression was there, but unannounced
    events += run(sm, grid(DT * frames, 4.0), {})
    assert events == []
    assert sm.tracks() == []


def test_duplicate_and_out_of_order_timestamps() -> None:
    cfg = SmoothingConfig()
    sig = step_signal(1.0, peaked(None), peaked("happy", 0.9))
    clean = run(Smoother(cfg, LABELS), grid(0.0, 3.0), {1: sig})

    sm = Smoother(cfg, LABELS)
    messy: list[Event] = []
    for i, t in enumerate(grid(0.0, 3.0)):
        messy += sm.step(t, [obs(1, sig(t))])
        before = sm.state(1)
        if i % 3 == 0:  # a duplicate frame with contrary probabilities
            messy += sm.step(t, [obs(1, peaked("sad", 1.0))])
        if i % 5 == 0:  # a frame from the past
            messy += sm.step(t - 0.5, [obs(1, peaked("angry", 1.0))])
        assert sm.state(1) == before  # dt <= 0: the average and timers do not move
    assert messy == clean


def test_time_going_backwards_does_not_lose_tracks() -> None:
    cfg = SmoothingConfig()
    sm = Smoother(cfg, LABELS)
    sm.step(10.0, [obs(1, peaked(None))])
    assert sm.step(-5.0, []) == []  # far in the past: handled at t=10, nothing is lost
    assert sm.tracks() == [1]
    assert sm.step(10.0 + cfg.lost_after_s, []) == []  # never announced: silent
    assert sm.tracks() == []


def test_events_in_one_step_are_ordered() -> None:
    cfg = SmoothingConfig(appear_after_s=0.0, min_dwell_s=0.0)
    sm = Smoother(cfg, LABELS)
    first = sm.step(0.0, [obs(3, peaked("sad")), obs(1, peaked("happy")), obs(2, peaked(None))])
    assert [(e.track, e.kind) for e in first] == [
        (1, "face_appeared"), (1, "expression"), (2, "face_appeared"),
        (3, "face_appeared"), (3, "expression")]
    later = sm.step(cfg.lost_after_s, [obs(2, peaked("fear"))])
    assert [(e.track, e.kind) for e in later] == [(1, "face_lost"), (2, "expression"), (3, "face_lost")]


def test_bad_observations_raise_and_change_nothing() -> None:
    sm = Smoother(SmoothingConfig(), LABELS)
    sm.step(0.0, [obs(1, peaked("happy"))])
    before = sm.state(1)
    bad = [
        ([obs(1, np.ones(N - 1) / (N - 1))], "shape"),
        ([obs(1, np.full(N, np.nan))], "NaN"),
        ([obs(1, peaked(None)), obs(1, peaked(None))], "twice"),
        ([obs(1, peaked(None), x=math.inf)], "finite"),
    ]
    for frame, words in bad:
        with pytest.raises(ObservationError, match=words) as err:
            sm.step(0.1, frame)
        assert "track 1" in str(err.value)
        assert "\n" not in str(err.value)
    with pytest.raises(ObservationError, match="timestamp"):
        sm.step(math.nan, [])
    assert sm.state(1) == before
    assert sm.tracks() == [1]


def test_labels_are_checked() -> None:
    with pytest.raises(ValueError, match="non-empty"):
        Smoother(SmoothingConfig(), [])
    with pytest.raises(ValueError, match="'happy' appears more than once"):
        Smoother(SmoothingConfig(), ["happy", "sad", "happy"])


def test_forget_reset_and_state() -> None:
    sm = Smoother(SmoothingConfig(), LABELS)
    sm.step(0.0, [obs(1, peaked("happy")), obs(2, peaked(None))])
    assert sm.tracks() == [1, 2]
    assert sm.state(7) is None
    s1 = sm.state(1)
    assert s1 is not None and s1.candidate == "happy" and s1.current is None
    assert set(s1.probs) == set(LABELS)
    sm.forget(1)
    assert sm.tracks() == [2]
    assert sm.step(5.0, []) == []  # a forgotten track is never reported lost; 2 was never announced
    sm.step(6.0, [obs(2, peaked(None))])
    sm.reset()
    assert sm.tracks() == []
    assert sm.step(0.0, [obs(3, peaked(None))]) == []
    s3 = sm.state(3)
    assert s3 is not None and s3.first_seen == 0.0  # the clock restarted too (else 6.0)


def test_reconfigure_keeps_tracks() -> None:
    sm = Smoother(SmoothingConfig(), LABELS)
    sm.step(0.0, [obs(1, peaked("happy"))])
    sm.reconfigure(SmoothingConfig(min_dwell_s=0.0, appear_after_s=0.0))
    events = sm.step(0.04, [obs(1, peaked("happy"))])
    assert [e.kind for e in events] == ["face_appeared", "expression"]


# -- properties -----------------------------------------------------------

@st.composite
def configs(draw: st.DrawFn) -> SmoothingConfig:
    enter = draw(st.floats(0.3, 0.9))
    return SmoothingConfig(
        half_life_s=draw(st.floats(0.005, 0.5)),
        enter_threshold=enter,
        exit_threshold=draw(st.floats(0.1, enter)),
        min_dwell_s=draw(st.floats(0.0, 0.8)),
        cooldown_s=draw(st.floats(0.0, 3.0)),
        appear_after_s=draw(st.floats(0.0, 0.5)),
        lost_after_s=draw(st.floats(0.05, 1.0)),
    )


# Each segment: (track present?, label index or None for flat, strength, frames, dt)
segments = st.lists(
    st.tuples(st.booleans(), st.one_of(st.none(), st.integers(0, N - 1)), st.floats(0.2, 1.0),
              st.integers(1, 25), st.floats(0.0, 0.12)),
    min_size=1, max_size=12,
)


def scripted(segs: list[tuple[bool, int | None, float, int, float]]) -> list[tuple[float, np.ndarray | None]]:
    out: list[tuple[float, np.ndarray | None]] = []
    t = 0.0
    for present, idx, strength, frames, dt in segs:
        p = peaked(None if idx is None else LABELS[idx], strength)
        for _ in range(frames):
            out.append((t, p if present else None))
            t += dt  # dt may be 0: duplicate timestamps are part of the property
    return out


def assert_dwell_support(cfg: SmoothingConfig, history: list[tuple[float, np.ndarray]], ev: Event) -> None:
    """The label was the argmax and >= exit over a run of frames ending at the event,
    and that run holds a frame >= enter at least min_dwell_s before the event."""
    label = LABELS.index(ev.label or "")
    support_start = None
    for t, v in reversed(history):
        if int(np.argmax(v)) != label or v[label] < cfg.exit_threshold:
            break
        if v[label] >= cfg.enter_threshold:
            support_start = t
    assert support_start is not None
    assert ev.t - support_start >= cfg.min_dwell_s - TIME_EPS


@settings(max_examples=150, deadline=None)
@given(cfg=configs(), segs=segments)
def test_property_no_event_without_dwell_support(
    cfg: SmoothingConfig, segs: list[tuple[bool, int | None, float, int, float]]
) -> None:
    sm = Smoother(cfg, LABELS)
    history: list[tuple[float, np.ndarray]] = []  # this track's smoothed vector, frame by frame
    events: list[Event] = []
    for t, p in scripted(segs):
        step_events = sm.step(t, [] if p is None else [obs(1, p)])
        assert step_events == sorted(step_events, key=lambda e: (e.track, e.kind != "face_appeared"))
        s = sm.state(1)
        if s is None:
            history.clear()  # the track is gone; a return is a new track
        elif p is not None:
            history.append((t, np.array([s.probs[lb] for lb in LABELS])))
        for ev in expressions(step_events):
            assert_dwell_support(cfg, history, ev)
        events += step_events
    expr = expressions(events)
    assert all(e.confidence >= cfg.exit_threshold for e in expr)

    for a, b in zip(expr, expr[1:], strict=False):
        assert b.t - a.t >= cfg.min_dwell_s - TIME_EPS  # at most one cue per dwell period

    # presence: appeared before any expression; lost only after appeared; alternating
    seq = [e.kind for e in events if e.kind != "expression"]
    assert all(k == ("face_appeared" if i % 2 == 0 else "face_lost") for i, k in enumerate(seq))
    first_appeared = next((e.t for e in events if e.kind == "face_appeared"), math.inf)
    assert all(e.t >= first_appeared for e in expr)


@settings(max_examples=150, deadline=None)
@given(
    half_life=st.floats(0.01, 2.0),
    levels=st.lists(st.floats(0.0, 1.0), min_size=2, max_size=6),
    extra=st.lists(st.floats(0.001, 0.999), max_size=30),
)
def test_property_smoothing_is_independent_of_frame_timing(
    half_life: float, levels: list[float], extra: list[float]
) -> None:
    """A piecewise-constant signal gives the same average at shared times, however sampled."""
    cfg = SmoothingConfig(half_life_s=half_life)
    changes = [float(i) for i in range(len(levels))]  # level i holds on (i-1, i]

    def value(t: float) -> np.ndarray:
        i = min(max(math.ceil(t - 1e-12), 0), len(levels) - 1)
        return peaked("happy", levels[i])

    sparse = changes
    dense = sorted(set(changes) | {i + f for i in range(len(levels) - 1) for f in extra})

    def averages(times: list[float]) -> dict[float, float]:
        sm = Smoother(cfg, LABELS)
        out = {}
        for t in times:
            sm.step(t, [obs(1, value(t))])
            s = sm.state(1)
            assert s is not None
            out[t] = s.probs["happy"]
        return out

    a, b = averages(sparse), averages(dense)
    for t in changes:
        assert a[t] == pytest.approx(b[t], abs=1e-9)
