# Sourced by run_all.sh and the Makefile: pick the Python to use, creating .venv on first use.
# Reuses an active conda or virtualenv (or $MEDLIB_PYTHON) where `import medlib` already works.
# Idempotent: a second call does nothing but check.
_medlib_imports() { "$1" -c 'import medlib, open_clip, papermill' >/dev/null 2>&1; }
PY=""
if [ -n "${MEDLIB_PYTHON:-}" ]; then
  PY="$MEDLIB_PYTHON"
elif [ -x .venv/bin/python ] && _medlib_imports .venv/bin/python; then
  PY=.venv/bin/python
elif [ -n "${VIRTUAL_ENV:-}${CONDA_PREFIX:-}" ] && command -v python >/dev/null && _medlib_imports python; then
  PY=python
else
  BASE_PY="${MEDLIB_BASE_PYTHON:-$(command -v python3.11 || command -v python3)}"
  echo "medclip: setting up .venv with $BASE_PY (first use; a few minutes) ..." >&2
  [ -x .venv/bin/python ] || "$BASE_PY" -m venv .venv
  .venv/bin/python -m pip install -q --upgrade pip >&2
  # torch pinned to the releases this project is tested with (they install from local disk on the project's
  # machines; elsewhere pip downloads them once).
  .venv/bin/python -m pip install -q "torch==2.14.1" "torchvision==0.29.1" >&2
  .venv/bin/python -m pip install -q -e ".[dev,notebooks]" >&2
  PY=.venv/bin/python
fi
export PY
