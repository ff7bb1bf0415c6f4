#!/usr/bin/env bash
# The wheel as a user gets it: build it, install it into a fresh virtual environment
# outside the checkout, and run `fer-audio demo` and `fer-audio check-config` from an
# empty folder. Fails if the wheel misses anything the service needs at run time.
#   packaging/check_wheel.sh [PIP] [PYTHON]   (make test runs it with the project's venv pip)
set -euo pipefail
cd "$(dirname "$0")/.."
PIP=${1:-pip}
PYTHON=${2:-python3}
tmp=$(mktemp -d "${TMPDIR:-/tmp}/fer-audio-wheel.XXXXXX")
# build/ is setuptools' scratch copy; a stale one would put deleted modules into the wheel.
trap 'rm -rf "$tmp" build' EXIT
rm -rf build
"$PIP" wheel --no-deps -q -w "$tmp/dist" .
wheel=$(echo "$tmp"/dist/fer_audio-*.whl)
echo "wheel: $(basename "$wheel"), $(du -k "$wheel" | cut -f1) KiB"

"$PYTHON" -m venv "$tmp/venv"
"$tmp/venv/bin/pip" install -q "$wheel"

mkdir "$tmp/empty" "$tmp/xdg"
cd "$tmp/empty"
# Nothing from the checkout may help: no data override, no path, no user config.
unset FER_AUDIO_DATA PYTHONPATH
export XDG_CONFIG_HOME="$tmp/xdg"
where=$("$tmp/venv/bin/python" -c 'import fer_audio.resources as r; print(r.DATA_ROOT)')
case "$where" in
    "$tmp/venv/"*) ;;
    *) echo "check_wheel: fer_audio data found at $where, not in the fresh venv" >&2; exit 1 ;;
esac

"$tmp/venv/bin/fer-audio" -q demo --out-dir out
"$tmp/venv/bin/python" - <<'EOF'
import json
import soundfile
info = soundfile.info("out/fer-audio-demo.wav")
events = [json.loads(line) for line in open("out/fer-audio-demo-events.jsonl", encoding="utf-8")]
assert info.duration > 5 and events, (info.duration, len(events))
print(f"demo from the wheel: {info.duration:.1f} s WAV, {len(events)} events")
EOF

# The generated example, and one naming bundled files by their relative names.
"$tmp/venv/bin/python" -c 'from importlib.resources import files; print(files("fer_audio").joinpath("config.example.toml").read_text(), end="")' > example.toml
"$tmp/venv/bin/fer-audio" check-config example.toml
cat > bundled.toml <<'EOF'
[detector]
model = "models/face_detection_yunet_2026may.onnx"
[model]
card = "models/card.json"
[cues.happy]
mode = "both"
earcon = "sounds/happy.wav"
EOF
"$tmp/venv/bin/fer-audio" check-config bundled.toml
echo "check_wheel: OK"
