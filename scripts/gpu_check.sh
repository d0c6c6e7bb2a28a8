#!/usr/bin/env bash
# The GPU check of issue 11, as one command:  bash scripts/gpu_check.sh   (make gpu-check)
#   a. training throughput of the engine (python -m tools.bench train, contrastive, ViT-B-32, random weights,
#      bf16) and of open_clip's own script (python -m open_clip_train.main, CSV of the same images as JPEG
#      files, same model, batch and precision) on the same GPU; their ratio; the engine's MFU
#   b. the full-profile rehearsal on the GPU (./run_all.sh --profile full --rehearse --device cuda), last, with
#      what is left of the time budget, so a slow rehearsal cannot cost (a)'s numbers
#   c. summary.md (GPU, both images/s, ratio, MFU, the rehearsal's exit code, wall time and projection)
# A GPU machine without internet: run `bash scripts/gpu_wheels.sh` where pip works, bring .whl/ along (and
# data/medmnist/pneumoniamnist.npz, for the rehearsal's real PneumoniaMNIST images); the check installs them.
# Everything goes to $OUT if set, else reports/gpu-check/. Each step runs under its own `timeout`; the whole
# check stays within --budget seconds (default 540: a 600 s device call with room to copy results back).
#
# Options:
#   --cpu-dry-run        test this script on CPU: tiny model (medclip-tiny, 28 px), a few steps, both trainers,
#                        no rehearsal; minutes. Its numbers are labelled CPU DRY RUN: they are not GPU results.
#   --skip-rehearsal     only (a) and (c)
#   --rehearsal-only     only (b) and (c) (e.g. a second device call after a first one that ran (a))
#   --peak-tflops T      the GPU's dense bf16 peak for the MFU, where the table in tools/gpu_check.py lacks it
#   --budget S           total seconds (default 540)
# Environment: MEDLIB_PYTHON (the Python to use), GPU_CHECK_BATCH (128), GPU_CHECK_STEPS (150),
#   GPU_CHECK_EPOCHS (5), GPU_CHECK_WORKERS (min(cores - 2, 12)), GPU_CHECK_IMAGES (2048).
set -uo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD

DRY=0; SKIP_REH=0; ONLY_REH=0; PEAK=""; BUDGET=540
while [ $# -gt 0 ]; do
  case "$1" in
    --cpu-dry-run) DRY=1 ;;
    --skip-rehearsal) SKIP_REH=1 ;;
    --rehearsal-only) ONLY_REH=1 ;;
    --peak-tflops) PEAK="$2"; shift ;;
    --budget) BUDGET="$2"; shift ;;
    -h|--help) sed -n '2,22p' "$0"; exit 0 ;;
    *) echo "gpu_check: unknown option $1. Fix: see bash scripts/gpu_check.sh --help" >&2; exit 2 ;;
  esac
  shift
done

T0=$(date +%s)
elapsed() { echo $(( $(date +%s) - T0 )); }
left() { echo $(( BUDGET - $(elapsed) )); }

# ---- which Python, and can it run the check? --------------------------------------------------------------
if [ -n "${MEDLIB_PYTHON:-}" ]; then PY="$MEDLIB_PYTHON"
elif [ -x .venv/bin/python ]; then PY=.venv/bin/python
else PY="$(command -v python3 || command -v python)"; fi
export MEDLIB_PYTHON="$PY" PYTHONPATH="$ROOT${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1
export HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1   # nothing here downloads; offline machines must not wait on the hub
NEED='import open_clip, open_clip_train.main, braceexpand, webdataset, papermill, ipykernel, medmnist, datasets, typst'
if ! "$PY" -c "$NEED" >/dev/null 2>&1 && ls .whl/*.whl >/dev/null 2>&1; then
  # the lent GPU machine has no internet: packages its image lacks travel as wheels (scripts/gpu_wheels.sh)
  SITE="${TMPDIR:-/tmp}/gpu-check-site"
  echo "gpu_check: installing $(ls .whl/*.whl | wc -l) carried wheels from .whl/ into $SITE ..."
  if "$PY" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target "$SITE" .whl/*.whl; then
    export PYTHONPATH="$ROOT:$SITE${PYTHONPATH#"$ROOT"}"
  else
    echo "gpu_check: installing .whl/ failed (going on without it). Fix: rebuild it with bash scripts/gpu_wheels.sh, GPU_PYTHON_VERSION = this machine's python3 version" >&2
  fi
fi
if ! "$PY" -c 'import torch, open_clip' >/dev/null 2>&1; then
  echo "gpu_check: $PY cannot import torch and open_clip. Fix: in a Python with torch, pip install -e '.[gpu-check,notebooks]'; on a machine without internet, bash scripts/gpu_wheels.sh here and carry .whl/ (or set MEDLIB_PYTHON=/path/to/a/python that has them)" >&2
  exit 2
fi
if [ "$DRY" = 0 ] && ! "$PY" -c 'import torch, sys; sys.exit(0 if torch.cuda.is_available() else 1)' 2>/dev/null; then
  echo "gpu_check: no CUDA device visible to $PY. Fix: run on a GPU machine, or test this script with --cpu-dry-run" >&2
  exit 2
fi
# every distribution pyproject.toml asks for (dependencies, the notebooks and gpu-check extras) that is missing
MISSING=$("$PY" - <<'PY' 2>/dev/null
import importlib.metadata as md, re, tomllib
p = tomllib.load(open("pyproject.toml", "rb"))["project"]
reqs = p["dependencies"] + p["optional-dependencies"]["notebooks"] + p["optional-dependencies"]["gpu-check"]
missing = []  # jupyterlab: only `make lab` needs it
for r in reqs:
    name = re.split(r"[<>=!~;\[ ]", r, maxsplit=1)[0]
    if name == "jupyterlab":
        continue
    try:
        md.version(name)
    except md.PackageNotFoundError:
        missing.append(name)
print(" ".join(missing))
PY
)
[ -z "$MISSING" ] || echo "gpu_check: $PY lacks $MISSING (steps that import them will fail). Fix: pip install -e '.[gpu-check,notebooks]'; offline: add them to scripts/gpu_wheels.sh, rerun it where pip works, carry .whl/" >&2
OC_OK=1; OC_FIX=""
if ! "$PY" -c 'import open_clip_train.main, braceexpand, webdataset' >/dev/null 2>&1; then
  OC_OK=0; OC_FIX="open_clip's script cannot start ($PY lacks open_clip_train, braceexpand or webdataset). Fix: pip install -e '.[gpu-check]' (offline: scripts/gpu_wheels.sh)"
fi
REH_OK=1; REH_FIX=""
if ! "$PY" -c 'import papermill, ipykernel' >/dev/null 2>&1; then
  REH_OK=0; REH_FIX="the rehearsal needs papermill and ipykernel. Fix: pip install -e '.[notebooks]' (offline: scripts/gpu_wheels.sh)"
fi

# At most 8 files in $OUT (what a device call brings back): summary.md, engine.json, openclip.json, steps.tsv,
# projection.csv, and every log packed in logs.tar.gz.
OUT="${OUT:-reports/gpu-check}"
mkdir -p "$OUT"
OUT="$(cd "$OUT" && pwd)"
WORK="$(mktemp -d "${TMPDIR:-/tmp}/gpu-check.XXXXXX")"
trap 'rm -rf "$WORK"' EXIT
LOGS="$WORK/logs"; mkdir -p "$LOGS"
STEPS="$OUT/steps.tsv"
if [ "$ONLY_REH" = 1 ]; then
  [ -f "$OUT/logs.tar.gz" ] && tar xzf "$OUT/logs.tar.gz" -C "$WORK"  # keep the earlier call's logs
else
  : > "$STEPS"; rm -f "$OUT"/engine.json "$OUT"/openclip.json "$OUT"/projection.csv "$OUT"/summary.md
fi
pack_logs() { tar czf "$OUT/logs.tar.gz.tmp" -C "$WORK" logs && mv "$OUT/logs.tar.gz.tmp" "$OUT/logs.tar.gz"; }

if [ "$DRY" = 1 ]; then
  DEVICE=cpu ARCH=medclip-tiny SIZE=28 N=64 BATCH=16 STEPS_N=12 WARMUP=2 EPOCHS=2 WORKERS=1
  ENGINE_PREC=fp32 OC_PREC=fp32 SKIP_REH=1
  echo "gpu_check: CPU DRY RUN (tiny model, a few steps; tests the script, NOT a GPU result)"
else
  DEVICE=cuda ARCH=ViT-B-32 SIZE=224 N="${GPU_CHECK_IMAGES:-2048}" BATCH="${GPU_CHECK_BATCH:-128}"
  STEPS_N="${GPU_CHECK_STEPS:-150}" WARMUP=5 EPOCHS="${GPU_CHECK_EPOCHS:-5}"
  CORES=$(nproc); WORKERS="${GPU_CHECK_WORKERS:-$(( CORES > 14 ? 12 : (CORES > 3 ? CORES - 2 : 1) ))}"
  ENGINE_PREC=bf16 OC_PREC=amp_bf16
fi
echo "gpu_check: output $OUT; budget ${BUDGET}s; python $PY"

# step NAME SECONDS LOG CMD...: run CMD under `timeout` (SECONDS, or what is left of the budget if less), its output
# in LOG; record "NAME rc seconds command" in steps.tsv
step() {
  local name=$1 limit=$2 log=$3; shift 3
  local budget_left=$(( $(left) - 5 ))
  [ "$limit" -le "$budget_left" ] || limit=$budget_left   # never past the budget
  if [ "$limit" -lt 10 ]; then
    echo "gpu_check: $name skipped: ${limit}s left of the ${BUDGET}s budget"
    printf '%s\t%d\t%.1f\n' "$name" 124 0 >> "$STEPS"; return 124
  fi
  echo "gpu_check: $name (at most ${limit}s) ..."
  local s0 rc dt; s0=$(date +%s.%N)
  echo "\$ $*" > "$log"
  timeout -k 10 "$limit" "$@" >> "$log" 2>&1; rc=$?
  dt=$(awk -v a="$s0" -v b="$(date +%s.%N)" 'BEGIN { printf "%.1f", b - a }')
  printf '%s\t%d\t%.1f\t%s\n' "$name" "$rc" "$dt" "$*" >> "$STEPS"
  echo "gpu_check: $name: exit $rc after ${dt%.*}s ($(basename "$log"))"
  [ "$rc" = 0 ] || tail -n 3 "$log" | sed 's/^/    /'
  return $rc
}

summary() {
  local args=(--out "$OUT" --env "$LOGS/env.txt"); [ -n "$PEAK" ] && args+=(--peak-tflops "$PEAK"); [ "$DRY" = 1 ] && args+=(--cpu-dry-run)
  "$PY" -m tools.gpu_check summary "${args[@]}" > "$WORK/summary.txt" 2>&1 || cat "$WORK/summary.txt" >&2
}

{
  echo "date: $(date -u +%FT%TZ)"; echo "host cores: $(nproc)"
  "$PY" -c 'import torch, open_clip; print("torch", torch.__version__, "cuda", torch.version.cuda, "open_clip", open_clip.__version__); print("torch sees:", torch.cuda.get_device_name() if torch.cuda.is_available() else "cpu")'
  echo "shared memory: $(df -h /dev/shm 2>/dev/null | awk 'NR==2 {print $2 " total, " $4 " free"}')"
  command -v nvidia-smi >/dev/null && nvidia-smi --query-gpu=name,memory.total,clocks.max.sm,power.limit --format=csv
} > "$LOGS/env.txt" 2>&1

# ---- (a) the two trainers, same images, same GPU ------------------------------------------------------------
if [ "$ONLY_REH" = 0 ]; then
  step data 60 "$LOGS/data.log" "$PY" -m tools.bench_openclip data --out "$WORK/data" --n "$N" --size "$SIZE"
  step engine 150 "$LOGS/engine.log" "$PY" -m tools.bench train --arch "$ARCH" --device "$DEVICE" --mode contrastive \
    --batch-size "$BATCH" --steps "$STEPS_N" --warmup "$WARMUP" --pool "$N" --size "$SIZE" --precision "$ENGINE_PREC" \
    --json "$OUT/engine.json"
  if [ "$OC_OK" = 1 ]; then
    step openclip 180 "$LOGS/openclip.log" "$PY" -m tools.bench_openclip run --csv "$WORK/data/train.csv" \
      --arch "$ARCH" --batch-size "$BATCH" --epochs "$EPOCHS" --precision "$OC_PREC" --workers "$WORKERS" \
      --timeout 165 --json "$OUT/openclip.json" --log "$LOGS/openclip-train.log"
    if [ ! -s "$OUT/openclip.json" ] && [ "$WORKERS" -gt 2 ] && [ "$(left)" -gt 300 ]; then
      # e.g. data-loader workers killed for want of shared memory (/dev/shm, in env.txt): once more with 2
      cp "$LOGS/openclip.log" "$LOGS/openclip-first-try.log"
      step openclip 150 "$LOGS/openclip.log" "$PY" -m tools.bench_openclip run --csv "$WORK/data/train.csv" \
        --arch "$ARCH" --batch-size "$BATCH" --epochs "$EPOCHS" --precision "$OC_PREC" --workers 2 \
        --timeout 135 --json "$OUT/openclip.json" --log "$LOGS/openclip-train.log"
    fi
  else
    echo "gpu_check: $OC_FIX" | tee "$LOGS/openclip.log" >&2; printf 'openclip\t2\t0\n' >> "$STEPS"
  fi
  summary; pack_logs  # (a)'s numbers are on disk before the rehearsal starts
fi

# ---- (b) the full-profile rehearsal on the GPU, with what is left ------------------------------------------
if [ "$SKIP_REH" = 0 ]; then
  rm -f "$OUT/projection.csv"
  if [ "$REH_OK" = 0 ]; then
    echo "gpu_check: $REH_FIX" | tee "$LOGS/rehearsal.log" >&2; printf 'rehearsal\t2\t0\n' >> "$STEPS"
  else
    touch "$WORK/rehearsal-start"
    step rehearsal $(( $(left) - 40 )) "$LOGS/rehearsal.log" ./run_all.sh --profile full --rehearse --device "$DEVICE"
    PROJ=reports/full-rehearsal/projection.csv
    if [ ! "$PROJ" -nt "$WORK/rehearsal-start" ] && [ "$(left)" -gt 25 ]; then
      # a rehearsal cut short: the projection of the notebooks it finished
      step projection $(( $(left) - 10 )) "$LOGS/projection.log" "$PY" -m medlib.run.projection --profile full
    fi
    [ "$PROJ" -nt "$WORK/rehearsal-start" ] && cp "$PROJ" "$OUT/projection.csv"
  fi
fi

printf 'total\t0\t%d\n' "$(elapsed)" >> "$STEPS"
summary; pack_logs
cat "$OUT/summary.md"
echo "gpu_check: done in $(elapsed)s; results in $OUT (logs: logs.tar.gz)"
