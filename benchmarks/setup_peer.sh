#!/bin/sh
# Install the `fer` package (the comparison peer of throughput.py) into its own venv.
#
# fer declares facenet-pytorch (and so PyTorch) as a dependency; its Haar path and
# its Keras emotion model need only TensorFlow and OpenCV, so the declared
# dependencies are installed by hand and fer itself with --no-deps. Keeping it in
# benchmarks/.venv-peer means fer-audio's own environment gains nothing.
set -eu
here=$(cd "$(dirname "$0")" && pwd)
venv="$here/.venv-peer"
python="${PYTHON:-python3}"
if [ ! -x "$venv/bin/python" ]; then
    "$python" -m venv "$venv"
fi
"$venv/bin/pip" install --quiet --upgrade pip
"$venv/bin/pip" install --quiet tensorflow-cpu 'opencv-python-headless<5' pandas pillow requests tqdm \
    'moviepy<2' ffmpeg-python matplotlib
"$venv/bin/pip" install --quiet --no-deps fer
"$venv/bin/python" -c "import fer, sys; print('fer', getattr(fer, '__version__', '?'), 'ready in', sys.prefix)"
