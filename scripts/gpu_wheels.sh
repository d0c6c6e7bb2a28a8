#!/usr/bin/env bash
# Wheels for the lent GPU machine, which has no internet: bash scripts/gpu_wheels.sh  (here, where pip reaches a
# registry) fills .whl/ (git-ignored) with the packages scripts/gpu_check.sh needs that the device image lacks;
# the device call then carries them:  command "bash scripts/gpu_check.sh", carry [".whl"], timeout_s 600.
# gpu_check.sh installs them there (pip --no-index --target, then PYTHONPATH) when its imports fail.
#
# The device image (Python 3.12, torch 2.11, timm, transformers, pandas, pyarrow, scikit-learn, matplotlib, jinja2,
# markdown, pyyaml, tqdm, huggingface_hub, ...; see the device tool's KINDS.md) lacks open_clip, open_clip_train's
# braceexpand/webdataset, medmnist, datasets, typst and the notebook stack (papermill, ipykernel, ...). Versions:
# those this project's tests ran with. Left out as optional at run time (a papermill kernel ran without them):
# jedi/parso (IPython completion), debugpy (ipykernel's debugger), the widget front-end extensions. Together about 50 MB, under the 64 MiB a device call carries. When
# pyproject.toml gains a dependency, scripts/gpu_check.sh names it as missing there: add it to PKGS.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ -n "${MEDLIB_PYTHON:-}" ]; then PY="$MEDLIB_PYTHON"; elif [ -x .venv/bin/python ]; then PY=.venv/bin/python; else PY=python3; fi
PYVER="${GPU_PYTHON_VERSION:-3.12}"   # the device image's python3
PKGS=(
  open-clip-torch==3.3.0 ftfy==6.3.1 wcwidth==0.9.4 braceexpand==0.1.7 webdataset==1.0.2
  medmnist==3.0.2 fire==0.7.1 termcolor==3.3.0
  datasets==5.2.0 dill==0.4.1 multiprocess==0.70.19 httpx2==2.16.2 httpcore2==2.16.2 truststore==0.10.5
  typst==0.15.2 tzdata==2026.6 pydantic==2.14.4 pydantic-core==2.50.5 annotated-types==0.8.0 typing-inspection==0.4.5
  papermill==2.7.0 tenacity==9.2.1 entrypoints==0.4.2 nbclient==0.11.0 nbformat==5.11.1 fastjsonschema==2.22.3
  jsonschema==4.26.0 jsonschema-specifications==2025.9.1 referencing==0.37.0 rpds-py==2026.9.1
  jupyter-client==8.10.0 jupyter-core==5.9.1 platformdirs==4.14.8 traitlets==5.16.1 pyzmq==27.3.0 tornado==6.6.1
  ipykernel==7.4.0 comm==0.2.3 matplotlib-inline==0.2.2 nest-asyncio2==1.7.4
  ipython==9.18.1 ipython-pygments-lexers==1.1.1 pexpect==4.9.0 ptyprocess==0.7.0
  prompt-toolkit==3.0.53 stack-data==0.6.3 asttokens==3.0.2 executing==2.3.0 pure-eval==0.2.4
  ipywidgets==8.1.9
)
mkdir -p .whl
norm() { echo "$1" | tr 'A-Z-' 'a-z_'; }   # a package name as wheel files spell it (lower case, _ for -)
lower() { echo "$1" | tr 'A-Z' 'a-z'; }
# one version of each package (two stop the install there): drop wheels that PKGS no longer names
for f in .whl/*.whl; do
  [ -e "$f" ] || continue
  keep=0; base=$(lower "$(basename "$f")")
  for pkg in "${PKGS[@]}"; do
    case "$base" in "$(norm "${pkg%%==*}")-${pkg##*==}-"*) keep=1; break ;; esac
  done
  [ "$keep" = 1 ] || { echo "gpu_wheels: removing $f (not in PKGS)"; rm -f "$f"; }
done
PLAT=()
for p in manylinux_2_28_x86_64 manylinux_2_27_x86_64 manylinux_2_17_x86_64 manylinux2014_x86_64 manylinux1_x86_64 \
         manylinux_2_24_x86_64 manylinux_2_31_x86_64 manylinux_2_34_x86_64 manylinux_2_35_x86_64; do
  PLAT+=(--platform "$p")
done
# one pip call per package: a version missing for Python $PYVER names itself
for pkg in "${PKGS[@]}"; do
  name=${pkg%%==*}
  if ls .whl/ | tr 'A-Z' 'a-z' | grep -q "^$(norm "$name")-${pkg##*==}-"; then continue; fi
  "$PY" -m pip download -q --no-deps --only-binary=:all: --python-version "$PYVER" --implementation cp \
    "${PLAT[@]}" -d .whl "$pkg" || { echo "gpu_wheels: no wheel of $pkg for Python $PYVER. Fix: pick a version with one (pip index versions $name) and edit PKGS in $0" >&2; exit 2; }
done
echo "gpu_wheels: $(ls .whl/*.whl | wc -l) wheels, $(du -sh .whl | cut -f1) in .whl/ (carry [\".whl\"] in the device call)"
