"""Head pose from the detector's five landmarks: which way a face points, and is it facing you.

No model of its own. The nose tip sits between the eyes when a face looks at the camera and
slides sideways as the head turns, so the nose's offset from the eyes' midpoint, measured along
the eye line and divided by the eye distance, is a yaw measure that ignores distance, roll and
where the face is in the frame. On AFLW2000-3D (1,969 photographs with measured pose, YuNet at
160 px) it separates |yaw| <= 15 deg from >= 45 deg at a cut of 0.27 with 99.2 % / 99.3 % right
(README, "Who is facing you"). Past about 60 deg YuNet guesses the hidden eye and the ratio
grows without bound, so the angle below saturates there: compare the ratio, not the angle.

Pure functions on plain types; no I/O.
"""

from __future__ import annotations

import math

from fer_audio.types import Box, Head, Landmarks

# The ratio is about YAW_SCALE * sin(yaw): least squares on AFLW2000-3D faces with
# |yaw| < 50 deg gave 0.576 (mean error 4 deg at 0, 6 at 15, 10 at 30, 18 at 45).
YAW_SCALE = 0.576

# Eyes closer than this (pixels) give a ratio of noise: no pose is reported.
MIN_EYE_DISTANCE_PX = 2.0


def yaw_ratio(marks: Landmarks) -> float | None:
    """Signed nose offset along the eye line over the eye distance; positive when the face
    points toward the image's left (the nose left of the eyes' midpoint). None when the eyes
    are too close together to measure."""
    (rx, ry), (lx, ly) = marks.right_eye, marks.left_eye
    dx, dy = lx - rx, ly - ry
    eyes = math.hypot(dx, dy)
    if not math.isfinite(eyes) or eyes < MIN_EYE_DISTANCE_PX:
        return None
    nx, ny = marks.nose[0] - (rx + lx) / 2, marks.nose[1] - (ry + ly) / 2
    along = (nx * dx + ny * dy) / eyes  # towards the image-right eye, whatever the roll
    ratio = -along / eyes
    return ratio if math.isfinite(ratio) else None


def pitch_ratio(marks: Landmarks) -> float | None:
    """The nose's distance below the eye line over the mouth's (both across the eye line, so
    roll does not matter): about 0.5-0.6 facing the camera, larger looking down. None when
    the mouth is on the eye line."""
    (rx, ry), (lx, ly) = marks.right_eye, marks.left_eye
    dx, dy = lx - rx, ly - ry
    eyes = math.hypot(dx, dy)
    if not math.isfinite(eyes) or eyes < MIN_EYE_DISTANCE_PX:
        return None
    mx, my = (rx + lx) / 2, (ry + ly) / 2

    def below(p: tuple[float, float]) -> float:
        return ((p[1] - my) * dx - (p[0] - mx) * dy) / eyes

    mouth = below(((marks.mouth_right[0] + marks.mouth_left[0]) / 2, (marks.mouth_right[1] + marks.mouth_left[1]) / 2))
    if not math.isfinite(mouth) or abs(mouth) < MIN_EYE_DISTANCE_PX:
        return None
    return below(marks.nose) / mouth


def yaw_degrees(ratio: float) -> float:
    """An angle for people and logs, from the ratio; saturates at +-90 deg (see YAW_SCALE)."""
    return math.degrees(math.asin(max(-1.0, min(1.0, ratio / YAW_SCALE))))


def head_of(box: Box, facing_ratio: float) -> Head | None:
    """This frame's pose of one face; None without landmarks (Haar) or with degenerate ones."""
    marks = box.landmarks
    if marks is None:
        return None
    ratio, pitch = yaw_ratio(marks), pitch_ratio(marks)
    if ratio is None or pitch is None:
        return None
    return Head(
        yaw_ratio=ratio,
        yaw_deg=yaw_degrees(ratio),
        facing=abs(ratio) <= facing_ratio,
        nose=marks.nose,
        width=box.w,
        pitch_ratio=pitch,
    )
