"""Cue planning (events to cues) and presentation (what plays now), on a scripted clock."""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import cast

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from fer_audio.config import CUE_KEYS, AudioConfig, Config, CueConfig, SmoothingConfig
from fer_audio.cues import MAX_REMEMBERED_FACES, Cue, CueError, CuePlanner, CuePresenter
from fer_audio.resources import LABELS, SOUNDS_DIR
from fer_audio.smoothing import Smoother
from fer_audio.types import Event, EventKind, Observation

# -- helpers ----------------------------------------------------------------


def earcon(key: str) -> Path:
    return SOUNDS_DIR / f"{key}.wav"


def mapping(**modes: str) -> dict[str, CueConfig]:
    """Every cue key as an earcon with a word, except the modes given."""
    return {
        key: CueConfig.model_validate(
            {"mode": modes.get(key, "earcon"), "earcon": earcon(key), "text": f"word {key}", "gain_db": -i})
        for i, key in enumerate(CUE_KEYS)
    }


def expr(label: str, t: float = 1.0, track: int = 1, x: float = 0.0, size: float = 0.3) -> Event:
    return Event(t=t, track=track, kind="expression", label=label, confidence=0.8, x=x, size=size)


def face(kind: str, t: float = 1.0, track: int = 1, x: float = 0.0, size: float = 0.3) -> Event:
    return Event(t=t, track=track, kind=cast(EventKind, kind), label=None, confidence=1.0, x=x, size=size)


def audio(**kw: object) -> AudioConfig:
    return AudioConfig.model_validate({"output": "silent", **kw})


def cue(key: str = "happy", event_t: float = 0.0, track: int = 1) -> Cue:
    return Cue(key=key, mode="earcon", earcon=earcon(key), text="", gain_db=0.0, pan=0.0,
               event_t=event_t, track=track)


# -- the value object ------------------------------------------------------


@pytest.mark.parametrize(
    ("mode", "sound", "text", "pan"),
    [("earcon", True, "", -1.0), ("speech", False, "smiling", 1.0), ("both", True, "smiling", 0.0)],
)
def test_cue_accepts_each_mode(mode: str, sound: bool, text: str, pan: float) -> None:
    path = earcon("happy") if sound else None
    cue = Cue("happy", mode, path, text, -3.0, pan, 0.5, 2)
    # Built as given, nothing dropped or defaulted: what the player will read.
    assert (cue.key, cue.mode, cue.earcon, cue.text, cue.gain_db, cue.pan, cue.event_t, cue.track) == \
        ("happy", mode, path, text, -3.0, pan, 0.5, 2)


@pytest.mark.parametrize(
    ("fields", "words"),
    [
        ({"mode": "silent"}, "mode 'silent' is not one of"),
        ({"mode": "loud"}, "mode 'loud'"),
        ({"pan": 1.01}, "pan 1.01 is outside -1..1"),
        ({"pan": -1.5}, "outside -1..1"),
        ({"pan": math.nan}, "outside -1..1"),
        ({"mode": "earcon", "earcon": None}, "needs an earcon file"),
        ({"mode": "both", "earcon": None, "text": "smiling"}, "needs an earcon file"),
        ({"mode": "speech", "text": ""}, "needs text to speak"),
        ({"mode": "both", "text": "   "}, "needs text to speak"),
        ({"gain_db": math.inf}, "gain_db"),
        ({"event_t": math.nan}, "event_t"),
    ],
)
def test_cue_validation_errors(fields: dict[str, object], words: str) -> None:
    base: dict[str, object] = {"key": "happy", "mode": "earcon", "earcon": earcon("happy"), "text": "",
                               "gain_db": 0.0, "pan": 0.0, "event_t": 0.0, "track": 1}
    with pytest.raises(CueError, match=words) as err:
        Cue(**{**base, **fields})  # type: ignore[arg-type]
    message = str(err.value)
    assert message.startswith("cue 'happy': ") and "\n" not in message
    assert isinstance(err.value, ValueError)


def test_cue_is_immutable() -> None:
    c = cue()
    with pytest.raises(AttributeError):
        c.pan = 0.5  # type: ignore[misc]


# -- planning ------------------------------------------------------------------


def test_mapping_per_mode() -> None:
    cues = mapping(happy="earcon", sad="speech", surprise="both", neutral="silent")
    planner = CuePlanner(cues, audio(verbosity="all"))
    events = [expr(lb, t=2.0 + i, track=i) for i, lb in enumerate(["happy", "sad", "surprise", "neutral"])]
    got = {c.key: c for c in planner.plan(events)}

    assert set(got) == {"happy", "sad", "surprise"}  # silent gives nothing
    assert (got["happy"].mode, got["happy"].earcon, got["happy"].text) == ("earcon", earcon("happy"), "")
    assert (got["sad"].mode, got["sad"].earcon, got["sad"].text) == ("speech", None, cues["sad"].text)
    assert (got["surprise"].mode, got["surprise"].earcon, got["surprise"].text) == (
        "both", earcon("surprise"), cues["surprise"].text)
    for ev in events[:3]:
        c = got[ev.label or ""]
        assert (c.event_t, c.track, c.gain_db) == (ev.t, ev.track, cues[c.key].gain_db)


def test_default_mapping_follows_the_config() -> None:
    cfg = Config()
    planner = CuePlanner(cfg.cues, audio(verbosity="all"))
    events = [expr(k, track=i) if k in LABELS else face(k, track=i) for i, k in enumerate(CUE_KEYS)]
    keys = {c.key for c in planner.plan(events)}
    assert keys == {k for k, c in cfg.cues.items() if c.mode != "silent"}
    assert keys  # the defaults do say something


def test_missing_mapping_entry_is_silent() -> None:
    cues = mapping()
    del cues["fear"]
    planner = CuePlanner(cues, audio())
    assert [c.key for c in planner.plan([expr("fear"), expr("happy", track=2)])] == ["happy"]


def test_verbosity_all_and_changes_only() -> None:
    events = [face("face_appeared", track=1), expr("happy", track=1), face("face_lost", track=2)]
    everything = CuePlanner(mapping(), audio(verbosity="all")).plan(events)
    changes = CuePlanner(mapping(), audio(verbosity="changes-only")).plan(events)
    assert sorted(c.key for c in everything) == sorted(["face_appeared", "happy", "face_lost"])
    assert [c.key for c in changes] == ["happy"]


def test_verbosity_main_face_only_uses_remembered_sizes() -> None:
    planner = CuePlanner(mapping(), audio(verbosity="main-face-only"))
    # Sizes are learnt from every event, even ones this verbosity does not voice.
    arrivals = [face("face_appeared", track=1, size=0.5), face("face_appeared", track=2, size=0.2)]
    assert planner.plan(arrivals) == []
    assert planner.main_face() == 1
    assert planner.plan([expr("sad", track=2, size=0.2)]) == []  # not the main face
    assert [c.track for c in planner.plan([expr("happy", track=1, size=0.5)])] == [1]

    # The big face leaves: the remaining one becomes the main face.
    assert planner.plan([face("face_lost", track=1, size=0.5), expr("sad", track=2, size=0.2)])[0].track == 2
    assert planner.main_face() == 2
    # A face that grows (walks closer) takes over.
    planner.plan([face("face_appeared", track=3, size=0.1)])
    assert [c.track for c in planner.plan([expr("angry", track=3, size=0.6)])] == [3]
    assert planner.main_face() == 3


def test_size_memory_is_bounded() -> None:
    planner = CuePlanner(mapping(), audio(verbosity="main-face-only"))
    planner.plan([face("face_appeared", track=0, size=0.9)])
    # Faces that never report face_lost (say, after an upstream reset) must not pile up forever.
    planner.plan([face("face_appeared", track=k, size=0.1) for k in range(1, MAX_REMEMBERED_FACES + 1)])
    assert planner.main_face() == 1
    planner.reset()
    assert planner.main_face() is None

def test_plan_orders_by_face_size() -> None:
    planner = CuePlanner(mapping(), audio(verbosity="all"))
    events = [expr("happy", track=5, size=0.1), face("face_appeared", track=2, size=0.4),
              expr("sad", track=2, size=0.4), expr("fear", track=9, size=0.2)]
    got = planner.plan(events)
    assert [(c.track, c.key) for c in got] == [(2, "face_appeared"), (2, "sad"), (9, "fear"), (5, "happy")]
    assert planner.plan(list(reversed(events[2:]))) == [got[1], got[2]]  # the input order does not matter


@pytest.mark.parametrize("width", [0.0, 0.35, 0.8, 1.0])
def test_pan_is_scaled_by_pan_width(width: float) -> None:
    planner = CuePlanner(mapping(), audio(pan_width=width))
    for x in np.linspace(-1.0, 1.0, 9):
        (c,) = planner.plan([expr("happy", x=float(x))])
        assert c.pan == pytest.approx(x * width)
    (edge,) = planner.plan([expr("happy", x=1.3)])  # a box poking past the frame edge
    assert edge.pan == pytest.approx(width)


@settings(max_examples=100, deadline=None)
@given(x=st.floats(-1e6, 1e6), width=st.floats(0.0, 1.0))
def test_property_pan_stays_within_width(x: float, width: float) -> None:
    (c,) = CuePlanner(mapping(), audio(pan_width=width)).plan([expr("happy", x=x)])
    assert -width <= c.pan <= width
    assert math.copysign(1.0, c.pan) == math.copysign(1.0, x) or c.pan == 0.0


def test_reconfigure_changes_the_mapping() -> None:
    planner = CuePlanner(mapping(happy="earcon"), audio(verbosity="changes-only", pan_width=1.0))
    assert planner.plan([expr("happy", x=0.5)])[0].mode == "earcon"
    planner.reconfigure(mapping(happy="speech"), audio(verbosity="all", pan_width=0.5))
    (c, *rest) = planner.plan([expr("happy", x=0.5), face("face_appeared", track=2)])
    assert (c.mode, c.text, c.pan) == ("speech", "word happy", 0.25)
    assert [r.key for r in rest] == ["face_appeared"]
    planner.reconfigure(mapping(happy="silent"), audio())
    assert planner.plan([expr("happy")]) == []


@pytest.mark.parametrize(
    ("entry", "words"),
    [
        # The config schema refuses these at load time; model_construct skips that
        # check to prove the planner still defends itself against such an entry.
        (CueConfig.model_construct(mode="earcon", earcon=None, text="hi", gain_db=0.0),
         "cues.happy: mode 'earcon' needs an earcon file"),
        (CueConfig.model_construct(mode="both", earcon=None, text="hi", gain_db=0.0),
         "cues.happy: mode 'both' needs an earcon file"),
        (CueConfig.model_construct(mode="speech", earcon=None, text="", gain_db=0.0),
         "cues.happy: mode 'speech' needs text to speak"),
    ],
)
def test_bad_mapping_is_refused_and_the_old_one_kept(entry: CueConfig, words: str) -> None:
    planner = CuePlanner(mapping(), audio())
    before = planner.plan([expr("happy")])
    with pytest.raises(CueError, match=words):
        planner.reconfigure({**mapping(), "happy": entry}, audio())
    assert planner.plan([expr("happy")]) == before
    with pytest.raises(CueError, match=words):
        CuePlanner({**mapping(), "happy": entry}, audio())


@settings(max_examples=100, deadline=None)
@given(
    mode=st.sampled_from(["earcon", "speech", "both", "silent"]),
    has_earcon=st.booleans(),
    text=st.text(max_size=20),
    gain=st.floats(-40.0, 12.0),
)
def test_property_mapping_entry_plays_iff_playable(
    mode: str, has_earcon: bool, text: str, gain: float
) -> None:
    sound = earcon("happy") if has_earcon else None
    needs_sound, needs_words = mode in ("earcon", "both"), mode in ("speech", "both")
    playable = (has_earcon or not needs_sound) and (bool(text.strip()) or not needs_words)
    fields = {"mode": mode, "earcon": sound, "text": text, "gain_db": gain}
    # The schema and the planner must agree on what is playable.
    try:
        CueConfig.model_validate(fields)
        assert playable
    except ValidationError:
        assert not playable
    entry = CueConfig.model_construct(**fields)
    try:
        planner = CuePlanner({"happy": entry}, audio())
    except CueError:
        assert not playable
        return
    assert playable
    got = planner.plan([expr("happy")])
    if mode == "silent":
        assert got == []
    else:
        (c,) = got
        assert (c.mode, c.gain_db) == (mode, gain)
        assert (c.earcon is not None) == (mode in ("earcon", "both"))
        assert bool(c.text) == (mode in ("speech", "both"))


# -- presentation --------------------------------------------------------------


def test_stale_boundary() -> None:
    a = audio(max_delay_s=0.5, min_interval_s=0.0)
    on_time = CuePresenter(a)
    assert on_time.present([cue(event_t=1.0)], now=1.5) == [cue(event_t=1.0)]  # exactly max_delay_s: plays
    late = CuePresenter(a)
    assert late.present([cue(event_t=1.0)], now=math.nextafter(1.5, 2.0)) == []  # a hair later: dropped
    assert (late.stats.dropped_stale, late.stats.played) == (1, 0)
    assert (on_time.stats.dropped_stale, on_time.stats.played) == (0, 1)


def test_stale_cue_does_not_use_up_the_slot() -> None:
    p = CuePresenter(audio(max_delay_s=0.5, min_interval_s=1.5))
    stale, fresh = cue(event_t=0.0, track=1), cue(event_t=9.9, track=2)
    assert p.present([stale, fresh], now=10.0) == [fresh]
    assert (p.stats.dropped_stale, p.stats.dropped_rate, p.stats.played) == (1, 0, 1)


def test_rate_limit_on_a_scripted_clock() -> None:
    a = audio(min_interval_s=1.5, max_delay_s=0.5)
    p = CuePresenter(a)
    frame, duration = 0.04, 6.0
    played_at, offered = [], 0
    for i in range(int(duration / frame)):
        now = i * frame
        burst = [cue("happy", now, track=1), cue("sad", now, track=2)]
        offered += len(burst)
        if p.present(burst, now):
            played_at.append(now)
    gaps = np.diff(played_at)
    assert np.all(gaps >= a.min_interval_s - 1e-9)
    assert np.all(gaps < a.min_interval_s + frame + 1e-9)  # the next slot is taken as soon as it opens
    period = math.ceil(a.min_interval_s / frame - 1e-9) * frame  # the interval, rounded up to whole frames
    assert len(played_at) == math.ceil(duration / period - 1e-9)
    s = p.stats
    assert s.played == len(played_at) and s.played + s.dropped_rate == offered and s.dropped_stale == 0


def test_rate_limit_boundary_and_clock_restart() -> None:
    p = CuePresenter(audio(min_interval_s=1.5, max_delay_s=10.0))
    assert p.present([cue(event_t=10.0)], now=10.0)
    assert not p.present([cue(event_t=11.0)], now=math.nextafter(11.5, 0.0))
    assert p.present([cue(event_t=11.5)], now=11.5)  # exactly min_interval_s later: plays
    # A looping file restarts its clock: cues must not stay muted until t=13 comes again.
    assert p.present([cue(event_t=0.0)], now=0.0)


def test_biggest_face_wins_the_slot() -> None:
    a = audio(verbosity="changes-only", min_interval_s=1.5)
    planner, presenter = CuePlanner(mapping(), a), CuePresenter(a)
    small = expr("happy", t=3.0, track=1, x=-0.6, size=0.1)
    big = expr("sad", t=3.0, track=2, x=0.5, size=0.45)
    for events in ([small, big], [big, small]):
        presenter.reset()
        played = presenter.present(planner.plan(events), now=3.05)
        assert [(c.track, c.key) for c in played] == [(2, "sad")]
        assert presenter.stats.dropped_rate == 1


def test_presenter_reconfigure_applies_to_the_next_cue() -> None:
    p = CuePresenter(audio(min_interval_s=5.0, max_delay_s=1.0))
    assert p.present([cue(event_t=0.0)], now=0.0)
    assert not p.present([cue(event_t=1.0)], now=1.0)
    p.reconfigure(audio(min_interval_s=0.5, max_delay_s=0.1))
    assert p.present([cue(event_t=2.0)], now=2.0)
    assert not p.present([cue(event_t=3.0)], now=3.2)  # the new max_delay_s applies too
    assert p.stats == type(p.stats)(played=2, dropped_stale=1, dropped_rate=1)


def test_presenter_rejects_a_bad_clock() -> None:
    with pytest.raises(ValueError, match="now nan is not a finite number"):
        CuePresenter(audio()).present([cue()], now=math.nan)


@settings(max_examples=100, deadline=None)
@given(
    min_interval=st.floats(0.0, 3.0),
    max_delay=st.floats(0.01, 2.0),
    steps=st.lists(st.tuples(st.floats(0.0, 1.0), st.lists(st.floats(0.0, 3.0), max_size=4)), max_size=40),
)
def test_property_presenter_invariants(
    min_interval: float, max_delay: float, steps: list[tuple[float, list[float]]]
) -> None:
    p = CuePresenter(audio(min_interval_s=min_interval, max_delay_s=max_delay))
    now, offered, plays = 0.0, 0, []
    for advance, ages in steps:
        now += advance
        batch = [cue(event_t=now - age, track=i) for i, age in enumerate(ages)]
        offered += len(batch)
        for c in p.present(batch, now):
            assert now - c.event_t <= max_delay
            plays.append(now)
    assert all(b - a >= min_interval for a, b in zip(plays, plays[1:], strict=False))
    s = p.stats
    assert s.played + s.dropped_rate + s.dropped_stale == offered
    assert s.played == len(plays)


# -- the two stages with the smoother --------------------------------------


def _run_chain(sizes: Sequence[float], latency: float) -> list[Cue]:
    """Two people smile at the same moment; cues are presented ``latency`` after each frame."""
    smoother = Smoother(SmoothingConfig(), LABELS)
    a = audio(verbosity="changes-only")
    planner, presenter = CuePlanner(Config().cues, a), CuePresenter(a)
    smile = np.full(len(LABELS), 0.1 / (len(LABELS) - 1))
    smile[LABELS.index("happy")] = 0.9
    flat = np.full(len(LABELS), 1.0 / len(LABELS))
    played: list[Cue] = []
    for i in range(100):
        t = i * 0.04
        p = smile if t >= 1.0 else flat
        frame = [Observation(track=k + 1, probs=p, x=-0.5 + k, size=s) for k, s in enumerate(sizes)]
        played += presenter.present(planner.plan(smoother.step(t, frame)), now=t + latency)
    return played


def test_chain_plays_the_main_face_once() -> None:
    played = _run_chain(sizes=[0.15, 0.4], latency=0.02)
    assert [(c.key, c.track) for c in played] == [("happy", 2)]
    assert played[0].pan == pytest.approx(0.5 * AudioConfig().pan_width)


def test_chain_drops_everything_when_too_late() -> None:
    late = AudioConfig().max_delay_s + 0.1
    assert _run_chain(sizes=[0.3], latency=late) == []
