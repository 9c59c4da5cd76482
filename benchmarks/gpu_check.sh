#!/usr/bin/env bash
# The GPU check, in one script: on a machine with a CUDA GPU, it
#   1. installs jaxsoftmax and JAX for CUDA into a fresh virtual environment beside the
#      project (../jaxsoftmax-gpu-venv, or $GPU_CHECK_VENV), from PyPI, or from a folder
#      of wheels with --wheels DIR on a machine without internet;
#   2. checks that JAX sees the GPUs;
#   3. runs the test suite's GPU-relevant subset: the oracles (every model against a
#      per-model loop, float64 NumPy, both weight layouts), the layout probe, and the
#      sharding of models over all local devices;
#   4. runs benchmarks/throughput.py at K = 3, 30, 300, 1000, 10000 (the engine, with
#      the layout probe choosing its layout, and the bound of its two products), with
#      the GPU's matmul peak and memory copy bandwidth measured in the same run;
#   5. prints one JSON line: model-steps/s per K, the bandwidth and peak, each K's
#      fraction of the memory roofline (a step reads the weights twice, writes them
#      once, and reads the batch) and of the matmul peak, and the layout chosen per K.
# Everything it writes goes under OUT (its one argument); it takes under 5 minutes on an
# H100/H200-class GPU.
#
#   bash benchmarks/gpu_check.sh OUT                  # on the GPU machine
#   bash benchmarks/gpu_check.sh --wheels DIR OUT     # install from DIR only (no index)
#   bash benchmarks/gpu_check.sh --dry-run OUT        # here: the same steps on CPU JAX,
#                                                     # K <= 30, no install (the suite runs it)
set -euo pipefail

dry_run=0
wheels=""
out=""
while [ $# -gt 0 ]; do
  case "$1" in
    --dry-run) dry_run=1 ;;
    --wheels) [ $# -ge 2 ] || { echo "gpu_check.sh: error: --wheels needs a folder" >&2; exit 2; }
              wheels="$2"; shift ;;
    -h|--help) sed -n '2,22p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    -*) echo "gpu_check.sh: error: unknown option $1 (see --help)" >&2; exit 2 ;;
    *) [ -z "$out" ] || { echo "gpu_check.sh: error: give one OUT folder" >&2; exit 2; }
       out="$1" ;;
  esac
  shift
done
[ -n "$out" ] || { echo "gpu_check.sh: error: give the folder to write to (see --help)" >&2; exit 2; }
project="$(cd "$(dirname "$0")/.." && pwd)"
mkdir -p "$out"
out="$(cd "$out" && pwd)"
log="$out/gpu_check.log"
: > "$log"
step() { echo "gpu_check: $*" | tee -a "$log" >&2; }

if [ "$dry_run" = 1 ]; then
  python="${PYTHON:-python3}"
  models="3,30"
  platform="cpu"
  throughput_flags=(--quick --repeats 2 --matmul-size 512 --copy-bytes $((2**26)))
  summary_file="throughput-quick.json"
  export JAX_PLATFORMS=cpu
  step "dry run: the current Python's CPU JAX ($python); installing nothing"
else
  venv="${GPU_CHECK_VENV:-$project/../jaxsoftmax-gpu-venv}"
  step "1. a fresh virtual environment in $venv"
  if [ -e "$venv" ] && [ ! -e "$venv/.made-by-gpu-check" ]; then
    echo "gpu_check.sh: error: $venv exists and was not made by this script; remove it or set GPU_CHECK_VENV" >&2
    exit 2
  fi
  rm -rf "$venv"
  python3 -m venv "$venv"
  touch "$venv/.made-by-gpu-check"
  python="$venv/bin/python"
  jax_version="$("${PYTHON:-python3}" -c 'import jax; print(jax.__version__)' 2>/dev/null || true)"
  jax_cuda="jax[cuda12]${jax_version:+==$jax_version}"
  index=()
  [ -z "$wheels" ] || index=(--no-index --find-links "$wheels")
  "$python" -m pip install -q "${index[@]}" -e "$project[dev]" "$jax_cuda" >>"$log" 2>&1 \
    || { step "installing failed: see $log"; tail -20 "$log" >&2; exit 1; }
  models="3,30,300,1000,10000"
  platform="gpu"
  # 1000 steps at every K: the test evaluation that ends each timing stays a small part.
  throughput_flags=(--repeats 3 --matmul-size 8192 --copy-bytes $((2**31)) --engine-steps 1000)
  summary_file="throughput.json"
fi

step "2. the devices"
"$python" - "$platform" <<'EOF' 2>&1 | tee -a "$log" >&2
import sys, jax
devices = jax.devices()
print("devices:", ", ".join(f"{d.platform}:{d.device_kind}" for d in devices))
if devices[0].platform != sys.argv[1]:
    sys.exit(f"gpu_check.sh: error: JAX runs on {devices[0].platform}, not {sys.argv[1]}; "
             "is the CUDA driver visible (nvidia-smi)?")
EOF

step "3. the GPU-relevant tests"
cd "$project"
tests=(tests/test_model.py tests/test_engine.py tests/test_layout_probe.py tests/test_grid.py)
selection="float64 or alone or layout or probe or all_local_devices"
if [ "$dry_run" = 1 ]; then  # the step itself, on one oracle test: the suite runs the rest
  selection="class_major_objective_matches_float64"
fi
"$python" -m pytest -q -p no:cacheprovider "${tests[@]}" -k "$selection" \
  --junitxml "$out/tests.xml" >>"$log" 2>&1 \
  || { step "tests failed: see $log"; tail -20 "$log" >&2; exit 1; }
step "   passed: $(grep -o -m1 'errors="[0-9]*" failures="[0-9]*" skipped="[0-9]*" tests="[0-9]*"' "$out/tests.xml")"

step "4. throughput at K = $models"
# A cache of its own: the layout probe measures now, on this device, with this code.
XDG_CACHE_HOME="$out/cache" "$python" benchmarks/throughput.py --models "$models" --variants engine,products --no-peers \
  "${throughput_flags[@]}" --out "$out" >>"$log" 2>&1 \
  || { step "the benchmark failed: see $log"; tail -20 "$log" >&2; exit 1; }

step "5. summary ($out/gpu_check.json)"
"$python" - "$out" "$summary_file" <<'EOF'
import json, pathlib, subprocess, sys
out = pathlib.Path(sys.argv[1])
document = json.loads((out / sys.argv[2]).read_text())
try:
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True,
                            text=True, check=True).stdout.strip()
except (OSError, subprocess.CalledProcessError):
    commit = None
per_k = {}
for result in document["results"]:
    key = {"engine (vmap + scan)": "engine", "products only (bound)": "products"}[result["variant"]]
    entry = per_k.setdefault(str(result["models"]), {"layout": document["layouts"][str(result["models"])]})
    entry[f"{key}_model_steps_per_s"] = round(result["model_steps_per_s"])
    entry[f"{key}_fraction_of_memory_roofline"] = round(result["fraction_of_memory_roofline"], 4)
    entry[f"{key}_fraction_of_matmul_peak"] = round(result["fraction_of_peak"], 4)
summary = {
    "commit": commit,
    "device": document["machine"]["device"],
    "jax": document["versions"]["jax"],
    "copy_bandwidth_GB_per_s": round(document["copy_bandwidth_bytes_per_s"] / 1e9, 1),
    "matmul_peak_TFLOP_per_s": round(document["matmul_peak_flops"] / 1e12, 2),
    "K": per_k,
}
line = json.dumps(summary, separators=(",", ":"))
(out / "gpu_check.json").write_text(line + "\n")
print(line)
EOF
