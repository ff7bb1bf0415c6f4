"""The BENCH_* switches of benchmarks/common.py: each reaches the config, and the result says it ran."""

from __future__ import annotations

import pytest
from benchkit import load_benchmark


def test_bench_ensemble_0_runs_the_first_network_alone_and_keeps_the_threads(monkeypatch: pytest.MonkeyPatch) -> None:
    common = load_benchmark("common")
    for key in ("BENCH_ENSEMBLE", "BENCH_THREADS", "BENCH_DETECT_EVERY"):
        monkeypatch.delenv(key, raising=False)
    plain = common.bench_config("clip.mp4")
    assert plain.model.ensemble is True and common.bench_env() == []
    monkeypatch.setenv("BENCH_THREADS", "2")
    monkeypatch.setenv("BENCH_ENSEMBLE", "0")
    cfg = common.bench_config("clip.mp4")
    assert cfg.model.ensemble is False and cfg.model.threads == 2 and cfg.detector.threads == 2
    assert common.bench_env() == ["BENCH_ENSEMBLE=0", "BENCH_THREADS=2"]
    assert common.Run("x").meta()["command"].startswith("BENCH_ENSEMBLE=0 BENCH_THREADS=2 ")
    monkeypatch.setenv("BENCH_ENSEMBLE", "1")
    assert common.bench_config("clip.mp4").model.ensemble is True
