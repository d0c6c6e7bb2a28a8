#!/usr/bin/env bash
# Reproduce every figure and table: run notebooks/NN_*.ipynb headless through papermill for one profile,
# then write the report.  ./run_all.sh [--profile full|smoke|PATH.yaml] [--only NN] [--from NN] [--data-dir DIR] [--gpus N]
#   full  (default): one GPU, internet on first use (MedMNIST at 224 px, ViT-B-32 openai, BiomedCLIP)
#   smoke: CPU, offline, minutes; a tiny random-init model -- tests the pipeline, NOT results
# Outputs: reports/<profile>/ (manifest, metrics, predictions, figures, tables, executed notebooks, report)
set -euo pipefail
export MEDLIB_CALLER_CWD="$PWD"   # relative --data-dir / profile paths are relative to where you typed the command
cd "$(dirname "$0")"
source scripts/env.sh   # creates .venv on first use, or reuses an active env where medlib imports
exec "$PY" -m medlib.run "$@"
