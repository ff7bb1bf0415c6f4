#!/bin/sh
# Ship a training run as the product's model, every step that the card and README need, in order.
#
#   training/ship.sh RUN_DIR NAME [FER2013_NPZ]      e.g. training/ship.sh ~/fer-audio-runs/resnet18h_e120 fer_resnet18h
#   SHIP=float32 training/ship.sh ...                 which .tflite ships (training.export --ship; default auto)
#   MEMBERS="RUN_S2" training/ship.sh ...             other seeds' runs the predictor may average in (--member)
#   PRIOR_RUNS="RUN1 RUN2" training/ship.sh ...       runs that RUN_DIR continued (--init-from), oldest first:
#                                                     their epochs join the card's curve (training.export --prior-run)
#   PRIOR_RUNS="$(python -m training.export --unpack-phases models/card.json --out ~/fer-audio-runs/shipped)" ...
#                                                     a run that went on from models/NAME.keras on a fresh machine:
#                                                     the phases the shipped card records are its prior runs; the
#                                                     last of them holds the shipped network, so it can be RUN_DIR
#                                                     itself with MEMBERS (the shipped model beside another seed)
#
# Only when the model that will run beats the shipped one on PublicTest: the run's best trained
# network is checked first against the shipped trained network, and after the export what will
# run (the shipped .tflite variant, flip-averaged or an ensemble as the export chose) against what runs now
# (an int8 file can lose what the float network gained). Steps: export (calibration,
# .tflite, int8 when it costs at most 0.5 points), crop study (margin chosen on PublicTest),
# per-expression thresholds, robustness and the real-photo probe, and last the one PrivateTest
# read for this model (with the shipped predictor's own PublicTest and PrivateTest numbers beside
# the single model's when it flip-averages or is an ensemble). models/ is copied first and put back whole if any step fails or the new
# model does not beat the old, so a failed ship leaves nothing half-changed. Last, the card
# tables of models/MODEL_CARD.md and README.md are made anew (training.card_tables). Then: edit
# the prose numbers outside those tables, re-run benchmarks/tradeoff.py and
# benchmarks/cue_precision.py, `make test`.
set -eu
run=$1
name=$2
data=${3:-../shared/data/fer2013.npz}
real=${REAL:-$(dirname "$data")/realfaces96.npz}
py=${PYTHON:-.venv/bin/python}
ship=${SHIP:-auto}
prior=""
for r in ${PRIOR_RUNS:-}; do prior="$prior --prior-run $r"; done
for r in ${MEMBERS:-}; do prior="$prior --member $r"; done

# The PublicTest accuracy of what runs (training.card.shipped_public_accuracy); a card without one stops here.
shipped_public() {
    $py -c "
import sys
from training.card import read_card, shipped_public_accuracy
acc = shipped_public_accuracy(read_card(sys.argv[1]))
sys.exit('ship.sh: ' + sys.argv[1] + ' has no PublicTest accuracy') if acc is None else print(acc)" "$1"
}
old_public=$(shipped_public models/card.json)
old_name=$($py -c "import json; print(json.load(open('models/card.json'))['name'])")
# First gate, like with like: the run's best trained network against the shipped trained network
# (single model, float). The second gate, after the export, compares what runs with what runs.
old_network=$($py -c "import json; print(json.load(open('models/card.json'))['metrics']['public']['accuracy'])")
new_public=$($py -c "
h = [l.split(',') for l in open('$run/history.csv').read().splitlines()]
col = h[0].index('val_accuracy')
print(max(float(r[col]) for r in h[1:]))")
# With members the first network may be the shipped one again: only what runs is compared.
[ -n "${MEMBERS:-}" ] || $py -c "import sys; sys.exit(0 if $new_public > $old_network else 1)" || {
    echo "ship.sh: $run: best PublicTest $new_public does not beat the shipped $old_name's trained network ($old_network)" >&2
    exit 1
}
backup=$(mktemp -d)
cp -a models "$backup/models"
restore() {
    rm -rf models && cp -a "$backup/models" models && rm -r "$backup"
    echo "ship.sh: models/ restored to $old_name" >&2
}
trap 'echo "ship.sh: a step failed" >&2; restore' EXIT

# shellcheck disable=SC2086  # $prior is a list of options (--prior-run, --member)
$py -m training.export --run "$run" --data "$data" --out models --name "$name" --ship "$ship" $prior
shipped_new=$(shipped_public models/card.json)
variant=$($py -c "import json; print(json.load(open('models/card.json'))['export']['shipped'])")
$py -c "import sys; sys.exit(0 if $shipped_new > $old_public else 1)" || {
    echo "ship.sh: the $variant .tflite (as the service runs it) scores $shipped_new on PublicTest, not above the shipped $old_name ($old_public); try SHIP=float32 or a later epoch" >&2
    trap - EXIT
    restore
    exit 1
}
$py -m training.crop_gap --data "$data" --write-card
$py -m training.thresholds --model models/card.json --data "$data" --write-card
if [ -f "$real" ]; then
    $py -m training.robustness --model models/card.json --data "$data" --real "$real" --write-card
else
    $py -m training.robustness --model models/card.json --data "$data" --write-card
fi
$py -m training.evaluate --model models/card.json --data "$data" --split private --write-card \
    --plot models/confusion_matrix.png
if $py -c "import sys; from training.card import predictor_words, read_card; sys.exit(0 if predictor_words(read_card('models/card.json')) else 1)"; then
    # The shipped predictor's own numbers (flip-averaged, an ensemble) beside the single model's.
    $py -m training.evaluate --model models/card.json --data "$data" --split public --predictor --write-card
    $py -m training.evaluate --model models/card.json --data "$data" --split private --predictor --write-card
fi
if [ "$old_name" != "$name" ]; then
    rm -f "models/$old_name.keras" "models/$old_name.tflite" "models/${old_name}_history.csv" \
        "models/${old_name}"_m*.keras "models/${old_name}"_m*.tflite
fi
trap - EXIT
rm -r "$backup"
echo "ship.sh: $name shipped ($variant .tflite, PublicTest $shipped_new over $old_public)"
if [ -f README.md ] && [ -f models/MODEL_CARD.md ]; then
    $py -m training.card_tables --update models/MODEL_CARD.md README.md ||
        echo "ship.sh: the card tables were not updated; run python -m training.card_tables --update models/MODEL_CARD.md README.md" >&2
fi
echo "ship.sh: now edit the prose of models/MODEL_CARD.md and README.md (numbers outside the card tables), re-run benchmarks/tradeoff.py and benchmarks/cue_precision.py, make test"
