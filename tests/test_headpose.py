"""Head pose from five landmarks: geometry on made-up points, real faces in the committed photos,
and the measured photo set AFLW2000-3D when ../shared has it."""

from __future__ import annotations

import math
from pathlib import Path

import cv2
import numpy as np
import pytest

from fer_audio.config import AttentionConfig, Config
from fer_audio.detection import make_detector
from fer_audio.headpose import YAW_SCALE, head_of, pitch_ratio, yaw_degrees, yaw_ratio
from fer_audio.types import Box, Landmarks
from tests.media import PHOTOS, load_photo

AFLW = Path(__file__).resolve().parent.parent.parent / "shared" / "data" / "headpose" / "aflw2000_160.npz"


def marks(nose_dx: float = 0.0, roll_deg: float = 0.0, scale: float = 1.0,
          at: tuple[float, float] = (100.0, 100.0)) -> Landmarks:
    """A face 40 px between the eyes (times ``scale``), nose ``nose_dx`` eye distances to image-right."""
    pts = [(-20.0, 0.0), (20.0, 0.0), (40.0 * nose_dx, 25.0), (-15.0, 45.0), (15.0, 45.0)]
    c, s = math.cos(math.radians(roll_deg)), math.sin(math.radians(roll_deg))
    moved = [(at[0] + scale * (x * c - y * s), at[1] + scale * (x * s + y * c)) for x, y in pts]
    return Landmarks(*moved)


def test_frontal_is_zero_and_the_sign_follows_the_nose() -> None:
    assert yaw_ratio(marks()) == pytest.approx(0.0, abs=1e-12)
    # Nose to the image's left: the face points toward image-left: positive (AFLW's sign).
    assert yaw_ratio(marks(-0.3)) == pytest.approx(0.3)
    assert yaw_ratio(marks(0.3)) == pytest.approx(-0.3)


@pytest.mark.parametrize("roll", [-30.0, -10.0, 15.0, 40.0])
@pytest.mark.parametrize("scale", [0.5, 1.0, 3.0])
def test_roll_distance_and_place_do_not_change_the_measures(roll: float, scale: float) -> None:
    ref = marks(0.2)
    other = marks(0.2, roll_deg=roll, scale=scale, at=(400.0, 37.0))
    assert yaw_ratio(other) == pytest.approx(yaw_ratio(ref), abs=1e-9)
    assert pitch_ratio(other) == pytest.approx(pitch_ratio(ref), abs=1e-9)
    assert pitch_ratio(ref) == pytest.approx(25.0 / 45.0)


def test_degenerate_landmarks_give_no_pose() -> None:
    same = Landmarks((10, 10), (10.5, 10), (10, 20), (5, 30), (15, 30))
    assert yaw_ratio(same) is None and pitch_ratio(same) is None
    flat_mouth = Landmarks((0, 0), (40, 0), (20, 10), (0, 0.5), (40, 0.5))
    assert pitch_ratio(flat_mouth) is None
    nan = Landmarks((math.nan, 0), (40, 0), (20, 10), (0, 40), (40, 40))
    assert yaw_ratio(nan) is None
    assert head_of(Box(0, 0, 50, 50), 0.27) is None  # Haar: no landmarks


def test_degrees_saturate_and_keep_the_sign() -> None:
    assert yaw_degrees(0.0) == 0.0
    assert yaw_degrees(YAW_SCALE * math.sin(math.radians(30))) == pytest.approx(30.0)
    assert yaw_degrees(-5.0) == -90.0 and yaw_degrees(5.0) == 90.0


def test_head_of_uses_the_cut() -> None:
    box = Box(80, 80, 60, 70, 0.9, marks(-0.2))
    h = head_of(box, 0.27)
    assert h is not None and h.facing and h.yaw_deg > 0 and h.width == 60
    h2 = head_of(box, 0.1)
    assert h2 is not None and not h2.facing


@pytest.fixture(scope="module")
def detector() -> object:
    return make_detector(Config().detector)


@pytest.mark.parametrize("name", PHOTOS)
def test_people_looking_at_the_camera_in_the_committed_photos_face_you(name: str, detector: object) -> None:
    image = load_photo(name)
    boxes = detector.detect(image)  # type: ignore[attr-defined]
    assert boxes, name
    heads = [head_of(b, AttentionConfig().facing_ratio) for b in boxes]
    assert all(h is not None and h.facing for h in heads), [h and round(h.yaw_ratio, 3) for h in heads]


@pytest.mark.parametrize("name", ["alex-lacamoire.png", "obama.jpg", "biden.jpg"])
def test_a_mirrored_photo_turns_the_other_way(name: str, detector: object) -> None:
    image = load_photo(name)
    a = detector.detect(image)[0]  # type: ignore[attr-defined]
    b = detector.detect(np.ascontiguousarray(image[:, ::-1]))[0]  # type: ignore[attr-defined]
    ra, rb = yaw_ratio(a.landmarks), yaw_ratio(b.landmarks)
    assert ra is not None and rb is not None
    # YuNet is not exactly mirror-symmetric: measured |ra + rb| 0.00-0.08 on these photos,
    # against a facing cut of 0.27 and ~0.6 at 45 degrees.
    assert abs(ra + rb) < 0.15, (ra, rb)


@pytest.mark.slow
def test_facing_on_aflw2000_photos_meets_the_target() -> None:
    """The issue's bar, through `fer-audio analyze`'s own code: >= 95 % right at |yaw| <= 15 and >= 45."""
    if not AFLW.is_file():
        pytest.skip(f"{AFLW} not present (evaluation data in ../shared)")
    from fer_audio.analyze import Analyzer

    with np.load(AFLW) as d:
        images, yaw = d["images"], d["yaw_deg"]
    an = Analyzer(Config())
    right = {"near": [0, 0], "far": [0, 0]}
    found = 0
    for img, y in zip(images, yaw, strict=True):
        faces = an.faces(cv2.cvtColor(img, cv2.COLOR_GRAY2BGR), "aflw")
        if not faces:
            continue
        found += 1
        f = faces[0]
        if abs(y) <= 15:
            right["near"][0] += f.facing is True
            right["near"][1] += 1
        elif abs(y) >= 45:
            right["far"][0] += f.facing is False
            right["far"][1] += 1
    assert found >= 0.95 * len(images)
    near, far = right["near"][0] / right["near"][1], right["far"][0] / right["far"][1]
    assert near >= 0.95 and far >= 0.95, f"facing right {near:.3f} at |yaw|<=15, {far:.3f} at |yaw|>=45"
