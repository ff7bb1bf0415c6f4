#!/bin/sh
# Ship a training run as the product's model, every step that the card and README need, in order.
#
#   training/ship.sh RUN_DIR NAME [FER2013_NPZ]      e.g. training/ship.sh ~/fer-audio-runs/resnet18h_e120 fer_resnet18h
#
# Only when the run's best checkpoint beats the shipped model on PublicTest (the export prints
# it; this script stops if it does not). Steps: export (calibration, .tflite, int8 when it costs
# at most 0.5 points), crop study (margin chosen on PublicTest), per-expression thresholds,
# robustness and the real-photo probe, and last the one PrivateTest read for this model. The old
# model's files are removed from models/ only after all of that succeeded. Then: edit
# models/MODEL_CARD.md and the README's tables from card.json, re-run benchmarks/tradeoff.py and
# benchmarks/cue_precision.py, `make test`.
set -eu
run=$1
name=$2
data=${3:-../shared/data/fer2013.npz}
real=${REAL:-$(dirname "$data")/realfaces96.npz}
py=${PYTHON:-.venv/bin/python}

old_public=$($py -c "import json; print(json.load(open('models/card.json'))['metrics']['public']['accuracy'])")
old_name=$($py -c "import json; print(json.load(open('models/card.json'))['name'])")
new_public=$($py -c "
import json, sys
h = [l.split(',') for l in open('$run/history.csv').read().splitlines()]
col = h[0].index('val_accuracy')
print(max(float(r[col]) for r in h[1:]))")
$py -c "import sys; sys.exit(0 if $new_public > $old_public else 1)" || {
    echo "ship.sh: $run: best PublicTest $new_public does not beat the shipped $old_name ($old_public)" >&2
    exit 1
}
backup=$(mktemp -d)
cp -p models/card.json "$backup/"
trap 'echo "ship.sh: failed; the previous card is in $backup" >&2' EXIT

$py -m training.export --run "$run" --data "$data" --out models --name "$name"
$py -m training.crop_gap --data "$data" --write-card
$py -m training.thresholds --model models/card.json --data "$data" --write-card
if [ -f "$real" ]; then
    $py -m training.robustness --model models/card.json --data "$data" --real "$real" --write-card
else
    $py -m training.robustness --model models/card.json --data "$data" --write-card
fi
$py -m training.evaluate --model models/card.json --data "$data" --split private --write-card \
    --plot models/confusion_matrix.png
if [ "$old_name" != "$name" ]; then
    rm -f "models/$old_name.keras" "models/$old_name.tflite" "models/${old_name}_history.csv"
fi
trap - EXIT
rm -r "$backup"
echo "ship.sh: $name shipped; now edit models/MODEL_CARD.md and README.md from models/card.json"
