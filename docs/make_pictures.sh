#!/usr/bin/env bash
# Regenerates README's pictures from a fresh default run:
#   docs/figures/*.png                 python -m jaxsoftmax.report
#   docs/tensorboard-{scalars,graphs}.png  a real TensorBoard in headless Chromium
# Needs the plot extra and Debian's chromium (apt-get install chromium).
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

shot() {  # shot URL-FRAGMENT OUTPUT
  chromium --headless --no-sandbox --disable-gpu --disable-quic --no-first-run \
    --disable-background-networking --disable-component-update --disable-sync \
    --user-data-dir="$work/chromium-$(basename "$2")" --hide-scrollbars --window-size=1600,1000 \
    --virtual-time-budget=20000 --screenshot="$2" "http://127.0.0.1:$port/$1" >/dev/null 2>&1
}
shot "#scalars&regexInput=test&tagFilter=%5E(accuracy%7Closs)%24&_smoothingWeight=0" docs/tensorboard-scalars.png
shot "#graphs&run=." docs/tensorboard-graphs.png
echo "wrote docs/figures/*.png and docs/tensorboard-{scalars,graphs}.png"
