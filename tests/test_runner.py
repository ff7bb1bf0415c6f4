"""One run builder for the demo, the service and the benchmarks: same order, same end.

The order test uses recording stand-ins (no I/O to fake, only the calls to
see); the WAV test runs the real demo clip through both commands.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import soundfile

from fer_audio.config import Config
from fer_audio.pipeline import Stages
from fer_audio.resources import DEMO_CLIP
from fer_audio.runner import Run


class _Closing:
    """Notes when it is closed (and with what), and can be told to fail closing."""

    def __init__(self, name: str, log: list[tuple[str, Any]], fail: bool = False, live: bool = False) -> None:
        self.name, self.log, self.fail, self.is_live = name, log, fail, live

    def describe(self) -> str:
        return self.name

    def close(self, end_t: float | None = None) -> None:
        self.log.append((self.name, end_t))
        if self.fail:
            raise OSError(f"{self.name} would not close")


def _stages(log: list[tuple[str, Any]], *, source_fails: bool = False, live: bool = False) -> Stages:
    return Stages(source=_Closing("source", log, fail=source_fails, live=live), detector=None, tracker=None,
                  model=None, smoother=None, planner=None, presenter=None, audio=_Closing("audio", log))


def test_closes_source_then_audio_up_to_the_last_frame_then_events(tmp_path: Path) -> None:
    log: list[tuple[str, Any]] = []
    events = tmp_path / "events.jsonl"
    with Run(Config(), events_out=events, keep_events=True, build=lambda cfg: _stages(log)) as run:
        run.pipe.stats.source_seconds = 12.5
        assert run.source_name == "source" and run.kept is not None
        assert not events.read_text()  # opened (and empty) while the run is on
    assert log == [("source", None), ("audio", 12.5)]
    run.close()  # twice is fine and closes nothing again
    assert log == [("source", None), ("audio", 12.5)]


def test_a_stage_that_fails_to_close_does_not_keep_the_others_open(caplog: pytest.LogCaptureFixture) -> None:
    log: list[tuple[str, Any]] = []
    with Run(Config(), build=lambda cfg: _stages(log, source_fails=True)):
        pass
    assert log == [("source", None), ("audio", None)]  # no frame: no end time
    assert "closing the source: source would not close" in caplog.text


def test_a_live_run_keeps_no_events() -> None:
    with Run(Config(), keep_events=True, build=lambda cfg: _stages([], live=True)) as run:
        assert run.kept is None


def test_stages_are_closed_when_the_event_file_cannot_be_opened(tmp_path: Path) -> None:
    log: list[tuple[str, Any]] = []
    with pytest.raises(OSError):
        Run(Config(), events_out=tmp_path / "no" / "such" / "e.jsonl", build=lambda cfg: _stages(log)).open()
    assert log == [("source", None), ("audio", None)]


@pytest.mark.slow
def test_demo_and_service_write_the_same_wav(tmp_path: Path) -> None:
    """`demo` runs the clip directly, `run` as the service; the WAVs must be the same, to the sample."""
    runtime = tmp_path / "xdg-run"
    runtime.mkdir(mode=0o700)
    env = {**os.environ, "XDG_RUNTIME_DIR": str(runtime), "XDG_CONFIG_HOME": str(tmp_path / "xdg-config")}
    demo_dir = tmp_path / "demo"
    service_wav = tmp_path / "service.wav"
    for args in (["demo", "--out-dir", str(demo_dir)],
                 ["run", "--source", str(DEMO_CLIP), "--audio-out", str(service_wav)]):
        proc = subprocess.run([sys.executable, "-m", "fer_audio", "-q", *args], capture_output=True, text=True,
                              timeout=300, env=env)
        assert proc.returncode == 0, proc.stderr
    demo, rate = soundfile.read(str(demo_dir / "fer-audio-demo.wav"), dtype="int16")
    service, service_rate = soundfile.read(str(service_wav), dtype="int16")
    assert rate == service_rate
    # The clip's last frame is at 479/15 s; both WAVs run at least that far ...
    assert len(demo) >= round(479 / 15 * rate)
    # ... and end at the same sample, with the same cues in them.
    assert len(service) == len(demo)
    assert np.array_equal(service, demo)


def test_a_run_reports_the_output_underruns_its_player_counted(tmp_path: Path) -> None:
    """Underruns (a CPU too busy to feed the sound card) reach the run's stats, for the summary and the log."""
    from fakes import RecordingSink, RecordingTts
    from media import panning_frames, write_video

    from fer_audio.audio import AudioOut
    from fer_audio.pipeline import Pipeline, build_stages

    clip = write_video(tmp_path / "face.mp4", panning_frames(8), 15.0)
    cfg = Config()
    cfg = cfg.model_copy(update={"source": cfg.source.model_copy(update={"uri": str(clip)})})
    for counted in (0, 3):
        audio = AudioOut(cfg.audio, cfg.speech, cfg.cues, sink=RecordingSink(underflows=counted), tts=RecordingTts())
        stages = build_stages(cfg, audio=audio)
        try:
            stats = Pipeline(cfg, stages).run()
        finally:
            stages.source.close()
            audio.close()
        assert stats.end_reason == "end of source" and stats.analysed == 8
        assert stats.underruns == counted


@pytest.mark.parametrize(("counted", "said"), [(0, None), (1, "audio output underran once: "),
                                                (4, "audio output underran 4 times: ")])
def test_the_run_summary_says_when_the_output_underran(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                                       monkeypatch: pytest.MonkeyPatch, counted: int,
                                                       said: str | None) -> None:
    from media import panning_frames, write_video

    from fer_audio import sinks
    from fer_audio.cli import run_pipeline

    monkeypatch.setattr(sinks.SilentSink, "underflows", counted)  # what a starved device would have counted
    clip = write_video(tmp_path / "face.mp4", panning_frames(4), 15.0)
    cfg = Config()
    cfg = cfg.model_copy(update={"source": cfg.source.model_copy(update={"uri": str(clip)}),
                                 "audio": cfg.audio.model_copy(update={"output": "silent", "startup_sound": False})})
    assert run_pipeline(cfg, None, print_timeline=False) == 0
    out = capsys.readouterr().out
    if said is None:
        assert "underran" not in out
    else:
        assert said in out and "a cue may have had a gap" in out
