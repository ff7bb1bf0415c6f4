"""Attention (facing / looked_away) and gesture events beside the smoother, on scripted frames.

Expected times come from the config (dwell, cooldown), never typed in.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable

import numpy as np
import pytest

from fer_audio.config import AttentionConfig, AudioConfig, Config, GestureConfig, SmoothingConfig
from fer_audio.cues import CuePlanner
from fer_audio.resources import LABELS
from fer_audio.smoothing import Smoother
from fer_audio.social import SocialSmoother
from fer_audio.types import Event, Head, Observation

N = len(LABELS)
FPS = 15.0
DT = 1.0 / FPS
WIDTH = 100.0  # face box width in pixels


def happy(p: float = 0.9) -> np.ndarray:
    v = np.full(N, (1.0 - p) / (N - 1))
    v[LABELS.index("happy")] = p
    return v


def head(ratio: float, nose_y: float = 120.0, pitch: float = 0.55, nose_x: float = 200.0) -> Head:
    return Head(yaw_ratio=ratio, yaw_deg=math.degrees(math.asin(max(-1, min(1, ratio / 0.576)))),
                facing=abs(ratio) <= 0.27, nose=(nose_x, nose_y), width=WIDTH, pitch_ratio=pitch)


def social(att: AttentionConfig | None = None, gest: GestureConfig | None = None,
           sm: SmoothingConfig | None = None) -> SocialSmoother:
    return SocialSmoother(Smoother(sm or SmoothingConfig(), LABELS), att or AttentionConfig(),
                          gest or GestureConfig())


def run(s: SocialSmoother | Smoother, seconds: float, ratio: Callable[[float], float | None],
        probs: Callable[[float], np.ndarray] = lambda t: happy(), t0: float = 0.0) -> list[Event]:
    """One track, frames at FPS; ``ratio`` None means a frame without landmarks."""
    events: list[Event] = []
    for i in range(round(seconds * FPS)):
        t = t0 + i * DT
        r = ratio(t)
        events.extend(s.step(t, [Observation(1, probs(t), 0.0, 0.3, None if r is None else head(r))]))
    return events


def kinds(events: Iterable[Event], *wanted: str) -> list[Event]:
    return [e for e in events if e.kind in wanted]


def test_expression_and_presence_events_are_the_inner_smoothers_own() -> None:
    def ratio(t: float) -> float:
        return 0.0 if t < 2 else 0.6

    plain = run(Smoother(SmoothingConfig(), LABELS), 4.0, ratio)
    wrapped = run(social(), 4.0, ratio)
    inner = kinds(wrapped, "face_appeared", "expression", "face_lost")
    assert [(e.t, e.kind, e.label, e.confidence) for e in inner] == [
        (e.t, e.kind, e.label, e.confidence) for e in plain]
    assert inner and all(e.facing is True and e.yaw is not None for e in inner)


def test_turning_to_face_you_is_one_event_after_the_dwell() -> None:
    cfg = AttentionConfig()
    turn = 2.0
    events = run(social(cfg), 5.0, lambda t: 0.6 if t < turn - 1e-9 else 0.05)
    facing = kinds(events, "facing")
    assert len(facing) == 1
    assert facing[0].t == pytest.approx(turn + cfg.facing_dwell_s, abs=DT + 1e-9)
    assert facing[0].t >= turn + cfg.facing_dwell_s - 1e-9
    assert facing[0].facing is True
    assert not kinds(events, "looked_away")


def test_first_frame_sets_the_state_silently() -> None:
    assert not kinds(run(social(), 3.0, lambda t: 0.0), "facing", "looked_away")
    assert not kinds(run(social(), 3.0, lambda t: 0.8), "facing", "looked_away")
    ev = run(social(), 3.0, lambda t: 0.8)
    assert all(e.facing is False for e in ev)


def test_looking_away_needs_its_own_dwell_and_a_glance_says_nothing() -> None:
    cfg = AttentionConfig()
    glance = cfg.away_dwell_s * 0.6
    events = run(social(cfg), 4.0, lambda t: 0.7 if 1.0 <= t < 1.0 + glance else 0.0)
    assert not kinds(events, "looked_away", "facing")
    away = run(social(cfg), 4.0, lambda t: 0.7 if t >= 1.0 - 1e-9 else 0.0)
    la = kinds(away, "looked_away")
    assert len(la) == 1 and la[0].facing is False
    assert la[0].t >= 1.0 + cfg.away_dwell_s - 1e-9


def test_hysteresis_between_the_two_ratios() -> None:
    cfg = AttentionConfig()
    middle = (cfg.facing_ratio + cfg.away_ratio) / 2
    # Facing, then sitting in the band: still facing.
    stay = run(social(cfg), 4.0, lambda t: 0.0 if t < 1 else middle)
    assert not kinds(stay, "looked_away") and stay[-1].facing is True
    # Away, then the band: not facing yet.
    never = run(social(cfg), 4.0, lambda t: 0.7 if t < 1 else middle)
    assert not kinds(never, "facing") and never[-1].facing is False


def test_cooldown_per_person_and_kind() -> None:
    cfg = AttentionConfig(cooldown_s=10.0)
    # Turn back and forth every 2 s: facing is cued once within the cooldown.
    events = run(social(cfg), 9.0, lambda t: 0.7 if int(t // 2) % 2 == 0 else 0.0)
    assert len(kinds(events, "facing")) == 1
    assert len(kinds(events, "looked_away")) == 1
    free = run(social(AttentionConfig(cooldown_s=0.0)), 9.0, lambda t: 0.7 if int(t // 2) % 2 == 0 else 0.0)
    assert len(kinds(free, "facing")) == 2


def test_nothing_before_the_face_is_announced() -> None:
    sm = SmoothingConfig(appear_after_s=3.0)
    events = run(social(sm=sm), 2.5, lambda t: 0.7 if t < 0.5 else 0.0)
    assert events == []


def test_without_landmarks_there_is_no_pose_and_no_attention_event() -> None:
    events = run(social(), 3.0, lambda t: None)
    assert events and all(e.yaw is None and e.facing is None for e in events)


def test_face_lost_forgets_the_person() -> None:
    s = social()
    run(s, 2.0, lambda t: 0.0)
    assert s.facing(1) is True
    lost = s.step(2.0 + SmoothingConfig().lost_after_s + 0.01, [])
    assert [e.kind for e in lost] == ["face_lost"] and lost[0].facing is True
    assert s.facing(1) is None


def test_a_shake_and_a_nod_come_out_as_events() -> None:
    def shaking(t: float) -> float:
        return 0.2 * math.sin(2 * math.pi * 1.5 * t) if t >= 1.0 else 0.0

    ev = run(social(), 4.0, shaking)
    shakes = kinds(ev, "shake")
    assert shakes and all(e.confidence == 1.0 for e in shakes)
    assert not kinds(ev, "nod")

    s = social()
    out: list[Event] = []
    for i in range(round(4 * FPS)):
        t = i * DT
        dy = 15.0 * math.sin(2 * math.pi * 1.5 * t) if t >= 1.0 else 0.0
        h = head(0.0, nose_y=120.0 + dy, pitch=0.55 + dy / WIDTH)
        out.extend(s.step(t, [Observation(1, happy(), 0.0, 0.3, h)]))
    assert kinds(out, "nod") and not kinds(out, "shake")


def test_reconfigure_social_changes_thresholds_and_keeps_state() -> None:
    s = social()
    run(s, 1.0, lambda t: 0.0)
    s.reconfigure_social(AttentionConfig(facing_ratio=0.01, away_ratio=0.02), GestureConfig(enabled=False))
    events = run(s, 2.0, lambda t: 0.1, t0=1.0)
    assert kinds(events, "looked_away"), "0.1 is now outside the facing band"
    events = run(s, 3.0, lambda t: 0.5 + 0.3 * math.sin(2 * math.pi * 1.5 * t), t0=3.0)
    assert not kinds(events, "shake", "nod", "face_appeared")


def test_bad_attention_config_is_refused() -> None:
    with pytest.raises(ValueError, match="away_ratio"):
        AttentionConfig(facing_ratio=0.4, away_ratio=0.3)


# -- planning: verbosity and "smiling at you" ------------------------------


def _event(kind: str, facing: bool | None = None, label: str | None = None) -> Event:
    return Event(1.0, 1, kind, label, 1.0, 0.0, 0.3, yaw=0.0, facing=facing)  # type: ignore[arg-type]


def test_default_mapping_plays_facing_nod_shake_and_keeps_looked_away_silent() -> None:
    cfg = Config()
    planner = CuePlanner(cfg.cues, cfg.audio)
    planned = planner.plan([_event("facing"), _event("nod"), _event("shake"), _event("looked_away")])
    assert [c.key for c in planned] == ["facing", "nod", "shake"]
    assert all(c.mode == "earcon" and c.earcon is not None and c.earcon.is_file() for c in planned)
    # Face presence stays out at the default verbosity, as before.
    assert planner.plan([_event("face_appeared")]) == []


def test_smiling_at_you_only_in_speech_when_chosen_and_facing() -> None:
    cfg = Config()
    cues = {**cfg.cues, "happy": cfg.cues["happy"].model_copy(update={"mode": "speech"})}
    on = AudioConfig(output="silent", say_facing=True)
    planner = CuePlanner(cues, on)
    assert planner.plan([_event("expression", True, "happy")])[0].text == "smiling at you"
    assert planner.plan([_event("expression", False, "happy")])[0].text == "smiling"
    assert planner.plan([_event("expression", None, "happy")])[0].text == "smiling"
    off = CuePlanner(cues, AudioConfig(output="silent"))
    assert off.plan([_event("expression", True, "happy")])[0].text == "smiling"
    earcon_only = CuePlanner(cfg.cues, on).plan([_event("expression", True, "happy")])[0]
    assert earcon_only.text == "" and earcon_only.mode == "earcon"
