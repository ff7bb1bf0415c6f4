"""The mixer: pan law, gains, overlap, the limiter, placement; and the resampler it relies on."""

from __future__ import annotations

import math
import threading

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fer_audio.mixer import LIMIT_THRESHOLD, Mixer, Voice, db_to_gain, pan_gains, soft_limit
from fer_audio.sound import Sound, resample

RATE = 48000


def tone(freq: float = 440.0, seconds: float = 0.1, amp: float = 0.5, rate: int = RATE) -> Sound:
    t = np.arange(int(seconds * rate)) / rate
    return Sound((amp * np.sin(2 * np.pi * freq * t)).astype(np.float32), rate)


def test_sound_validates_itself() -> None:
    with pytest.raises(ValueError, match="1-D float32"):
        Sound(np.zeros((10, 2), np.float32), RATE)
    with pytest.raises(ValueError, match="1-D float32"):
        Sound(np.zeros(10, np.float64), RATE)
    with pytest.raises(ValueError, match="rate"):
        Sound(np.zeros(10, np.float32), 0)
    s = tone(seconds=0.25)
    assert s.frames == 12000 and s.duration_s == pytest.approx(0.25)
    with pytest.raises(ValueError):
        s.data[0] = 1.0  # shared by every voice: read-only


def test_pan_law_is_constant_power() -> None:
    left, right = pan_gains(0.0)
    assert left == pytest.approx(right) == pytest.approx(1 / math.sqrt(2))
    for p in np.linspace(-1, 1, 21):
        lg, rg = pan_gains(float(p))
        assert lg**2 + rg**2 == pytest.approx(1.0)
    assert pan_gains(-1.0) == pytest.approx((1.0, 0.0))
    assert pan_gains(1.0) == pytest.approx((0.0, 1.0))
    assert pan_gains(-5.0) == pan_gains(-1.0)  # clamped, never louder
    assert pan_gains(float("nan")) == pan_gains(0.0)


def test_centre_gives_equal_power_and_hard_pan_silences_the_far_side() -> None:
    s = tone(seconds=0.05, amp=0.4)
    for pan, expect in ((0.0, "equal"), (-1.0, "left"), (1.0, "right")):
        m = Mixer(RATE)
        m.add(s, pan=pan)
        out = m.render(s.frames)
        e_left, e_right = float(np.sum(out[:, 0] ** 2)), float(np.sum(out[:, 1] ** 2))
        total = float(np.sum(s.data.astype(np.float64) ** 2))
        assert e_left + e_right == pytest.approx(total, rel=1e-4)  # power is kept wherever it is panned
        if expect == "equal":
            assert e_left == pytest.approx(e_right, rel=1e-6)
        elif expect == "left":
            assert e_right == 0.0 and e_left > 0
        else:
            assert e_left == 0.0 and e_right > 0


def test_single_cue_at_normal_level_passes_unchanged() -> None:
    s = tone(amp=0.5)  # the bundled earcons peak at -6 dBFS
    m = Mixer(RATE)
    m.add(s, gain_db=0.0, pan=-1.0)
    out = m.render(s.frames)
    np.testing.assert_array_equal(out[:, 0], s.data)
    assert not out[:, 1].any()


def test_gain_and_master_gain_multiply() -> None:
    s = tone(amp=0.2)
    m = Mixer(RATE, master_db=-12.0)
    m.add(s, gain_db=-6.0, pan=-1.0)
    out = m.render(s.frames)
    np.testing.assert_allclose(out[:, 0], s.data * db_to_gain(-18.0), atol=1e-7)
    m.master_db = 0.0
    assert m.master_db == pytest.approx(0.0)


def test_overlapping_voices_sum_then_limit_within_full_scale() -> None:
    a, b = tone(300, amp=0.3), tone(500, amp=0.3)
    m = Mixer(RATE)
    m.add(a, pan=-1.0)
    m.add(b, pan=-1.0)
    out = m.render(a.frames)
    np.testing.assert_allclose(out[:, 0], a.data + b.data, atol=1e-6)  # 0.6 peak: below the knee, exact sum
    loud = Mixer(RATE)
    for f in (300, 410, 520, 630, 740):
        loud.add(tone(f, amp=0.7), gain_db=12.0, pan=-1.0)
    out = loud.render(RATE // 10)
    assert np.abs(out).max() <= 1.0
    assert np.abs(out).max() > LIMIT_THRESHOLD  # it was loud; it was bent, not muted


@settings(max_examples=60, deadline=None)
@given(st.lists(st.floats(-1e6, 1e6, allow_nan=False), min_size=1, max_size=200))
def test_soft_limit_bounds_and_is_monotonic(values: list[float]) -> None:
    x = np.array(values, dtype=np.float32)
    y = soft_limit(x.copy())
    assert np.all(np.abs(y) <= 1.0)
    below = np.abs(x) <= LIMIT_THRESHOLD
    np.testing.assert_array_equal(y[below], x[below])
    order = np.argsort(x, kind="stable")
    assert np.all(np.diff(y[order]) >= -1e-7)  # louder in, never quieter out


def test_soft_limit_clears_nan_and_inf() -> None:
    y = soft_limit(np.array([np.nan, np.inf, -np.inf, 0.1], np.float32))
    assert np.all(np.isfinite(y)) and np.all(np.abs(y) <= 1.0)
    assert y[0] == 0.0 and y[3] == pytest.approx(0.1)


def test_voices_start_where_asked_and_finished_ones_are_dropped() -> None:
    s = tone(seconds=0.01)
    m = Mixer(RATE)
    assert m.add(s, start_sample=1000, pan=-1.0) == 1000
    out = m.render(2000)
    assert not out[:1000].any()
    np.testing.assert_array_equal(out[1000 : 1000 + s.frames, 0], s.data)
    assert m.active == 0 and m.frame == 2000
    # A start in the past plays from the next rendered frame, whole, not truncated.
    assert m.add(s, start_sample=5, pan=-1.0) == 2000
    np.testing.assert_array_equal(m.render(s.frames)[:, 0], s.data)


def test_add_group_keeps_spacing_and_queue_waits_for_what_plays() -> None:
    a, b = tone(seconds=0.02), tone(seconds=0.03)
    m = Mixer(RATE)
    base = m.add_group([Voice(a, 0.0, 0.0, 0), Voice(b, 0.0, 0.0, a.frames + 100)], base=50)
    assert base == 50
    assert m.busy_until() == 50 + a.frames + 100 + b.frames
    queued = m.add_group([Voice(a)], base=60, queue=True, gap_frames=10)
    assert queued == 50 + a.frames + 100 + b.frames + 10


def test_mixer_rejects_a_sound_at_another_rate() -> None:
    with pytest.raises(ValueError, match="22050 Hz"):
        Mixer(RATE).add(tone(rate=22050))


def test_voice_cap_drops_the_oldest() -> None:
    m = Mixer(RATE, max_voices=3)
    for i in range(5):
        m.add(tone(seconds=1.0), start_sample=i * 10)
    assert m.active == 3


def test_render_is_safe_against_concurrent_adds() -> None:
    """A PortAudio callback renders while the frame loop adds: no voice lost, no exception."""
    s = tone(seconds=0.002, amp=0.01)
    m = Mixer(RATE, max_voices=10_000)
    errors: list[BaseException] = []
    done = threading.Event()

    def callback_thread() -> None:
        try:
            while not done.is_set():
                m.render(64)
        except BaseException as exc:  # pragma: no cover - the assertion reports it
            errors.append(exc)

    th = threading.Thread(target=callback_thread)
    th.start()
    starts = [m.add(s) for _ in range(2000)]
    done.set()
    th.join()
    assert not errors
    assert starts == sorted(starts)  # placed on one monotonic timeline


@pytest.mark.parametrize(("src", "dst"), [(22050, 48000), (44100, 48000), (96000, 48000), (48000, 16000)])
def test_resample_keeps_a_tone_clean(src: int, dst: int) -> None:
    freq = 1000.0
    x = np.sin(2 * np.pi * freq * np.arange(src // 2) / src)
    y = resample(x, src, dst)
    assert len(y) == round(len(x) * dst / src)
    t = np.arange(len(y)) / dst
    ideal = np.sin(2 * np.pi * freq * t)
    mid = slice(len(y) // 4, 3 * len(y) // 4)  # away from the zero-padded edges
    err = np.sqrt(np.mean((y[mid] - ideal[mid]) ** 2))
    assert err < 1e-3  # better than -60 dB


def test_resample_removes_what_the_new_rate_cannot_hold() -> None:
    src, dst = 48000, 16000
    x = np.sin(2 * np.pi * 12000 * np.arange(src) / src)  # above the 8 kHz Nyquist of 16 kHz
    y = resample(x, src, dst)
    assert np.sqrt(np.mean(y[len(y) // 4 : -len(y) // 4] ** 2)) < 1e-3  # aliasing suppressed by > 57 dB
    assert resample(x, src, src).dtype == np.float32
