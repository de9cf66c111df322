# Two commands do everything on a fresh machine:
#   make demo   both studies and the analysis on the embedded mini backend (CPU, minutes)
#   make test   the whole test suite (unit, integration, notebooks)
PY ?= python3
RESULTS ?= gg_results
APT_PACKAGES = chromium postgresql

.PHONY: setup system demo test bench clean

setup: .setup-done

.setup-done: requirements.txt requirements-dev.txt pyproject.toml
	@# a CPU torch first: letting pip resolve plain "torch" would pull a multi-GB CUDA build
	$(PY) -c "import torch" 2>/dev/null || $(PY) -m pip install -q torch==2.13.0
	$(PY) -m pip install -q -r requirements-dev.txt
	$(PY) -m pip install -q --no-deps -e .
	$(PY) -m ipykernel install --user --name python3 >/dev/null
	$(MAKE) --no-print-directory system
	touch .setup-done

# Debian packages: Chromium (kaleido PNG export, dashboard browser test), PostgreSQL (workers).
system:
	@missing=""; command -v chromium >/dev/null || missing="chromium"; \
	ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || missing="$$missing postgresql"; \
	if [ -n "$$missing" ]; then \
	  if [ "$$(id -u)" = 0 ]; then apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing >/dev/null; \
	  else echo "Please install the Debian packages:$$missing (sudo apt-get install$$missing)"; fi; \
	fi

demo: setup
	$(PY) -m gg_optuna_helpers demo --results-dir $(RESULTS)

# The real-repo tests keep one core busy (one torch thread) while the rest mostly wait on child
# processes and heartbeats, so the two groups run side by side; each prints its own summary.
REAL_REPO_TESTS = tests/test_real_repo.py
test: setup
	@$(PY) -m pytest -q -p no:cacheprovider $(REAL_REPO_TESTS) > .real-repo-tests.log 2>&1 & \
	real=$$!; $(PY) -m pytest -q -p no:cacheprovider --ignore=$(REAL_REPO_TESTS) tests; rest=$$?; \
	wait $$real; real_rc=$$?; echo "--- $(REAL_REPO_TESTS) (ran alongside) ---"; \
	cat .real-repo-tests.log; [ $$rest -eq 0 ] && [ $$real_rc -eq 0 ]

bench: setup
	$(PY) bench/run_all.py

clean:
	rm -rf $(RESULTS) .setup-done .pytest_cache .real-repo-tests.log
