"""`fer-audio analyze PHOTO...` on the committed photos: JSON lines, plain lines, bad files."""

from __future__ import annotations

import io
import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from fer_audio.analyze import Analyzer, PhotoError, analyze, read_photo, summary
from fer_audio.config import Config
from fer_audio.resources import LABELS
from tests.media import FACES_DIR, PHOTOS


@pytest.fixture(scope="module")
def analyzer() -> Analyzer:
    return Analyzer(Config())


def test_json_has_one_line_per_face_with_every_field(analyzer: Analyzer) -> None:
    out, err = io.StringIO(), io.StringIO()
    photos = [FACES_DIR / p for p in PHOTOS]
    assert analyze(Config(), photos, True, out, err, analyzer) == 0
    rows = [json.loads(line) for line in out.getvalue().splitlines()]
    per_image = {str(p): sum(1 for r in rows if r["image"] == str(p)) for p in photos}
    assert all(n >= 1 for n in per_image.values()), per_image
    assert per_image[str(FACES_DIR / "kit_with_rose.jpg")] == 2  # two people in that one
    for r in rows:
        assert set(r) == {"image", "box", "expression", "probabilities", "yaw", "facing"}
        assert len(r["box"]) == 4 and r["box"][2] > 0 and r["box"][3] > 0
        assert list(r["probabilities"]) == list(LABELS)
        assert sum(r["probabilities"].values()) == pytest.approx(1.0, abs=1e-3)
        assert r["expression"] == max(r["probabilities"], key=r["probabilities"].get)
        assert isinstance(r["yaw"], float) and -90 <= r["yaw"] <= 90
        assert r["facing"] is True  # everyone in these photos looks at the camera
    assert err.getvalue() == ""


def test_plain_output_is_one_line_per_photo(analyzer: Analyzer) -> None:
    out = io.StringIO()
    photos = [FACES_DIR / "kit_with_rose.jpg", FACES_DIR / "obama.jpg"]
    assert analyze(Config(), photos, False, out, io.StringIO(), analyzer) == 0
    lines = out.getvalue().splitlines()
    assert len(lines) == 2
    assert lines[0].startswith(f"{photos[0]}: 2 faces: ") and lines[0].count("facing you") == 2
    assert lines[1].startswith(f"{photos[1]}: 1 face: centre, ")


def test_summary_words() -> None:
    assert summary("x.jpg", [], 100) == "x.jpg: no faces found"


def test_a_bad_file_is_named_on_one_line_and_the_others_still_run(analyzer: Analyzer, tmp_path: Path) -> None:
    text = tmp_path / "notes.jpg"
    text.write_text("not a picture")
    empty = tmp_path / "empty.png"
    empty.write_bytes(b"")
    out, err = io.StringIO(), io.StringIO()
    code = analyze(Config(), [tmp_path / "missing.jpg", text, empty, tmp_path, FACES_DIR / "obama.jpg"],
                   False, out, err, analyzer)
    assert code == 2
    lines = err.getvalue().splitlines()
    assert len(lines) == 4
    assert "missing.jpg: no such file" in lines[0]
    assert "notes.jpg: not a picture" in lines[1]
    assert "empty.png: not a picture" in lines[2]
    assert "is a folder" in lines[3]
    assert out.getvalue().count("\n") == 1 and "obama.jpg: 1 face" in out.getvalue()
    with pytest.raises(PhotoError):
        read_photo(text)


def test_it_opens_no_socket(analyzer: Analyzer, monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError("analyze opened a socket")

    monkeypatch.setattr(socket, "socket", refuse)
    out = io.StringIO()
    assert analyze(Config(), [FACES_DIR / "biden.jpg"], True, out, io.StringIO(), Analyzer(Config())) == 0
    assert out.getvalue()


def test_cli_writes_nothing_and_exits_by_the_rules(tmp_path: Path) -> None:
    env = {**os.environ, "XDG_RUNTIME_DIR": str(tmp_path / "run"), "HOME": str(tmp_path / "home")}
    work = tmp_path / "cwd"
    work.mkdir()
    root = Path(__file__).resolve().parent.parent
    env["PYTHONPATH"] = str(root)
    ok = subprocess.run([sys.executable, "-m", "fer_audio", "-q", "analyze", "--json",
                         str(FACES_DIR / "obama.jpg")], cwd=work, env=env, capture_output=True,
                        text=True, timeout=120)
    assert ok.returncode == 0, ok.stderr
    assert json.loads(ok.stdout.splitlines()[0])["image"].endswith("obama.jpg")
    bad = subprocess.run([sys.executable, "-m", "fer_audio", "-q", "analyze", str(work / "nope.png")],
                         cwd=work, env=env, capture_output=True, text=True, timeout=120)
    assert bad.returncode == 2
    assert [ln for ln in bad.stderr.splitlines() if "nope.png" in ln] == [
        f"fer-audio analyze: {work / 'nope.png'}: no such file"]
    # Nothing written anywhere it could write: its folder, the home, the runtime folder.
    assert list(work.iterdir()) == []
    assert not (tmp_path / "run").exists() and not (tmp_path / "home").exists()
