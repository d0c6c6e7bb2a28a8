# make test   -- create .venv on first use and run the test suite
# make smoke  -- ./run_all.sh --profile smoke
# make lab    -- JupyterLab with the `medclip` kernel registered for this environment
# make clean-reports PROFILE=smoke
SHELL := /bin/bash
PROFILE ?= smoke

.PHONY: test smoke full lab kernel report clean-reports

test:
	@source scripts/env.sh && "$$PY" -m pytest -q -n 2 -p no:cacheprovider

smoke:
	./run_all.sh --profile smoke

full:
	./run_all.sh --profile full

kernel:
	@source scripts/env.sh && "$$PY" -c "from medlib.runner import ensure_kernel; print('kernel:', ensure_kernel())"

lab: kernel
	@source scripts/env.sh && "$$PY" -m jupyter lab notebooks/

report:
	@source scripts/env.sh && "$$PY" -m medlib.report --profile $(PROFILE)

clean-reports:
	rm -rf reports/$(PROFILE) runs/$(PROFILE)
