#!/usr/bin/env bash
# Regenerates README's pictures from a fresh default run:
#   docs/figures/*.png                 python -m jaxsoftmax.report
#   docs/tensorboard-{custom-scalars,scalars,images,graphs}.png  a real TensorBoard in
#                                      headless Chromium
# Needs the plot extra, Debian's chromium and chromium-driver (apt-get install chromium
# chromium-driver) and selenium in $SHOT_PYTHON's environment (pip install selenium).
set -euo pipefail
cd "$(dirname "$0")/.."
python=${PYTHON:-.venv/bin/python}
work=$(mktemp -d)
trap 'kill "${server:-}" 2>/dev/null || true; rm -rf "$work"' EXIT

"$python" -m jaxsoftmax.train --quiet --logdir "$work/run"
"$python" -m jaxsoftmax.report "$work/run" --out docs/figures

port=$("$python" -c "import socket; s = socket.socket(); s.bind(('127.0.0.1', 0)); print(s.getsockname()[1])")
"$(dirname "$python")/tensorboard" --logdir "$work/run" --host 127.0.0.1 --port "$port" >"$work/tensorboard.log" 2>&1 &
server=$!
for _ in $(seq 120); do curl -sf -o /dev/null "http://127.0.0.1:$port/data/runs" && break; sleep 0.5; done
sleep 5  # let the server finish loading the event files

"${SHOT_PYTHON:-$python}" docs/screenshots.py "$port" docs
echo "wrote docs/figures/*.png and docs/tensorboard-*.png"
