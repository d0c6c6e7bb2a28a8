# make test   -- create .venv on first use and run the test suite
# make smoke  -- ./run_all.sh --profile smoke
# make rehearse -- ./run_all.sh --profile full --rehearse (offline; full architectures at 224 px, random
#                weights, fixture data, capped steps; writes reports/full-rehearsal/projection.csv)
# make gpu-check -- on a CUDA machine: engine vs open_clip_train.main images/s, MFU, then the rehearsal on the GPU
#                (scripts/gpu_check.sh; bounded to 540 s; results in $OUT or reports/gpu-check/); ARGS="--cpu-dry-run" tests it on CPU;
#                offline GPU machine: bash scripts/gpu_wheels.sh first (where pip works) and bring .whl/ along
# make bench  -- developer benchmarks (tools/bench.py): make bench ARGS="preprocess" or ARGS="train --arch ViT-B-32"
# make lab    -- JupyterLab at the repository root (notebooks/ open, reports/ and the profiles browsable) with the
#                `medclip` kernel registered for this environment;
#                extra arguments pass through: make lab ARGS="--no-browser --port 8899" (headless);
#                as root, --allow-root is added (with a note); its kernels run this checkout's medlib
#                (PYTHONPATH, MEDLIB_ROOT), also where another checkout shares the environment
# make report  -- regenerate the report of PROFILE (a name or a YAML path) from its finished outputs alone:
#                report.{md,html,pdf,typ} and report-appendix.* (edit and recompile the paper: docs/report.md)
# make report-preview -- docs/report-first-page.png: the first page of reports/$(PROFILE)/report.pdf (default smoke),
#                and docs/report-figure.png: its forest plot of paired differences
# make data    -- download the real PneumoniaMNIST (28 px) to data/medmnist/ (needs internet once)
# make layout-doc -- rewrite docs/layout.md (every medlib module and its first docstring sentence)
# make clean-reports PROFILE=smoke
SHELL := /bin/bash
PROFILE ?= smoke
ARGS ?=

.PHONY: test smoke full rehearse gpu-check bench lab kernel report report-preview data layout-doc clean-reports

test:
	@source scripts/env.sh && "$$PY" -m pytest -q -n 2 -p no:cacheprovider

smoke:
	./run_all.sh --profile smoke

full:
	./run_all.sh --profile full

rehearse:
	./run_all.sh --profile full --rehearse $(ARGS)

gpu-check:
	bash scripts/gpu_check.sh $(ARGS)

bench:
	@source scripts/env.sh && "$$PY" -m tools.bench $(ARGS)

kernel:
	@source scripts/env.sh && "$$PY" -c "from medlib.run.runner import ensure_kernel; print('kernel:', ensure_kernel())"

lab: kernel
	@source scripts/env.sh && root_flag=""; \
	if [ "$$(id -u)" = 0 ]; then echo "make lab: running as root: adding --allow-root (Jupyter refuses root without it)"; root_flag=--allow-root; fi; \
	export PYTHONPATH="$(CURDIR)$${PYTHONPATH:+:$$PYTHONPATH}" MEDLIB_ROOT="$(CURDIR)"; \
	exec "$$PY" -m jupyter lab --ServerApp.root_dir="$(CURDIR)" --LabApp.default_url=/lab/tree/notebooks $$root_flag $(ARGS)

report:
	@./run_all.sh --profile "$(PROFILE)" --report-only

report-preview:
	@source scripts/env.sh && "$$PY" -m medlib.report.preview --profile $(PROFILE) --out docs/report-first-page.png \
		--figure docs/report-figure.png

data:
	@mkdir -p data/medmnist && source scripts/env.sh && "$$PY" -c "import medmnist; medmnist.PneumoniaMNIST(split='test', download=True, root='data/medmnist')" && ls -l data/medmnist/pneumoniamnist.npz

layout-doc:
	@source scripts/env.sh && "$$PY" scripts/layout_doc.py

clean-reports:
	rm -rf reports/$(PROFILE) runs/$(PROFILE)
