#!/bin/sh
# Every benchmark in sequence with its final settings; results in benchmarks/results/.
#
#   benchmarks/run_all.sh                      # ~30 min on a 2-core laptop, 10 of them the memory run
#   MEMORY_MINUTES=0 benchmarks/run_all.sh     # skip the memory run
#   SMOKE=1 benchmarks/run_all.sh              # every script for a few seconds, results in /tmp (checks the scripts)
#
# Run it on an otherwise idle machine: every result file records the load before it
# started and says "distorted" when something else was using the CPU. The 1-hour soak
# is not part of this (python benchmarks/soak.py).
set -eu
cd "$(dirname "$0")/.."
py=.venv/bin/python
[ -x "$py" ] || py=python3
memory_minutes=${MEMORY_MINUTES:-10}

if [ "${SMOKE:-0}" = 1 ]; then
    FER_AUDIO_BENCH_RESULTS=${FER_AUDIO_BENCH_RESULTS:-$(mktemp -d /tmp/fer-audio-bench-smoke-XXXXXX)}
    export FER_AUDIO_BENCH_RESULTS
    stages_args="--min-s 0.1"; throughput_args="--rounds 1 --seconds 1"; clip_args="--seconds 8"
    profile_args="--seconds 3"; startup_args="--starts 1 --minutes 0.1 --interval 3"; cpu_args="--seconds 2"
else
    stages_args=""; throughput_args="--rounds 3"; clip_args=""
    profile_args=""; startup_args="--starts 5 --minutes $memory_minutes"; cpu_args="--detect-every 1,3 --threads 1,2"
fi
results=${FER_AUDIO_BENCH_RESULTS:-benchmarks/results}
mkdir -p "$results"

if [ ! -x benchmarks/.venv-peer/bin/python ]; then
    echo "installing the fer package into benchmarks/.venv-peer (once)"
    benchmarks/setup_peer.sh
fi
for clip in faces1 faces3 faces6 latency held talk_swap talk_wobble; do
    if [ ! -f "benchmarks/clips/$clip.mp4" ]; then
        echo "benchmarks/clips/$clip.mp4 missing; build with:" \
             "$py benchmarks/make_clips.py --data ../shared/data/fer2013.npz bench" >&2
        exit 2
    fi
done

step() {
    echo
    echo "== $* =="
    "$py" "$@"
}

# shellcheck disable=SC2086  # the argument lists are meant to split
step benchmarks/stages.py $stages_args
# shellcheck disable=SC2086
step benchmarks/throughput.py $throughput_args
# shellcheck disable=SC2086
step benchmarks/latency.py --rates 15,30 $clip_args
# shellcheck disable=SC2086
step benchmarks/steadiness.py $clip_args
# shellcheck disable=SC2086
step benchmarks/tradeoff.py $clip_args
# shellcheck disable=SC2086
step benchmarks/cue_precision.py $clip_args
# shellcheck disable=SC2086
step benchmarks/cpu_load.py $cpu_args
# shellcheck disable=SC2086
step benchmarks/profile_pipeline.py $profile_args
# shellcheck disable=SC2086
step benchmarks/startup_memory.py $startup_args

echo
echo "== plots =="
if "$py" -c "import matplotlib" 2>/dev/null; then
    "$py" benchmarks/plot.py --results "$results"
else
    benchmarks/.venv-peer/bin/python benchmarks/plot.py --results "$results"
fi
echo
echo "done: results in $results/"
