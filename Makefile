# alliance-outcomes — the whole set-up is `make run` and `make test`.
PY        ?= python3
VENV      := .venv
BIN       := $(VENV)/bin
UV_VERSION := 0.13.8
# The Python of pyproject.toml's requires-python (requirements.lock is resolved for it).
PYTHON_VERSION := 3.11
CONFIG    ?= config/config.yaml
CORES     ?= 2
SNAKEMAKE := $(BIN)/snakemake --cores $(CORES) --config configpath=$(CONFIG) \
  --workflow-profile workflow/profiles/default --show-failed-logs
SCREENSHOT := $(BIN)/python -m alliance.render.browser

.PHONY: install run report test lint format lock clean demo validate power bench test-cluster

$(BIN)/.installed: requirements.lock pyproject.toml Makefile
	@found=$$($(PY) -c 'import sys; print("%d.%d" % sys.version_info[:2])') || exit 1; \
	if [ "$$found" != "$(PYTHON_VERSION)" ]; then \
	  echo "alliance-outcomes needs Python $(PYTHON_VERSION) (pyproject.toml requires-python;" \
	    "requirements.lock is resolved for it), but $(PY) is Python $$found. Install Python" \
	    "$(PYTHON_VERSION) and run: make PY=python$(PYTHON_VERSION) $(or $(MAKECMDGOALS),install)" >&2; \
	  exit 1; \
	fi
	$(PY) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check uv==$(UV_VERSION)
	$(BIN)/uv pip sync --quiet --compile-bytecode --python $(BIN)/python requirements.lock
	$(BIN)/uv pip install --quiet --python $(BIN)/python --no-deps -e .
	touch $@

install: $(BIN)/.installed

# The report is rebuilt only when a job ran since it was made: provenance.json, the pipeline's
# last step, is rewritten whenever any job reruns (a no-op `make run` stays under 5 s). A run with
# no report yet (a fresh one) writes it from the same Snakemake process (--report-after-run): a
# second `snakemake --report` would start Python and parse the workflow again (~1.5 s).
run: install
	@out=$$($(BIN)/alliance output --configfile $(CONFIG)) || exit 1; \
	if [ ! -e "$$out/report.html" ]; then \
	  $(SNAKEMAKE) --report "$$out/report.html" --report-after-run || exit 1; \
	else \
	  $(SNAKEMAKE) || exit 1; \
	  if [ "$$out/report.html" -nt "$$out/provenance.json" ] && \
	     [ "$$out/report_screenshot.png" -nt "$$out/report.html" ]; then \
	    echo "$$out/report.html is up to date (nothing ran)"; exit 0; \
	  fi; \
	  $(SNAKEMAKE) --report "$$out/report.html" || exit 1; \
	fi; \
	$(SCREENSHOT) "$$out/report.html" "$$out/report_screenshot.png"

# The Snakemake report and its screenshot, in the config's results folder (`output`).
report: install
	@out=$$($(BIN)/alliance output --configfile $(CONFIG)) || exit 1; \
	set -x; \
	$(SNAKEMAKE) --report "$$out/report.html" && \
	$(SCREENSHOT) "$$out/report.html" "$$out/report_screenshot.png"

# Parameter-recovery study (config/validate.yaml: 500 simulated trials in 10 shards, every default
# model scored against the simulator's truth; 480-patient trials). Measured 51 min CPU in all (~6 s
# per replicate with every default model incl. the RI-CLPM; fit_unidentified: false fits only the
# identified terms): ~26 min on 2 free cores. Then copies the verdicts and the page to docs/.
validate: install
	$(SNAKEMAKE) results/validation/recovery.csv
	cp results/validation/recovery_verdicts.csv docs/recovery.csv
	cp results/validation/recovery.md docs/recovery.md

# Power and sample size (config/power.yaml: a design grid x replicates, calibrated from the
# finished analysis in results/ -- run `make run` first). The default grid (6 cells x 100
# replicates, 5 tested terms) took 6.8-11.5 min on 2 cores shared with other jobs (470-550 s CPU
# in the shards: ~5 min on 2 free cores). Writes results/power/ (power.csv, power.md, figures/)
# and its own Snakemake report, results/power/report.html.
power: install
	@out=$$($(BIN)/alliance output --configfile $(CONFIG)) || exit 1; \
	set -x; \
	$(SNAKEMAKE) "$$out/power/power.csv" && \
	$(SNAKEMAKE) --report "$$out/power/report.html" "$$out/power/power.csv"

# Benchmarks: per-stage time and memory on the demo and simulated 10k / 120k / 600k-row trials.
bench: install
	$(BIN)/python -m alliance.studies.bench --out results/bench

# A real single-node SLURM (Debian slurm-wlm + munge) running the demo DAG through the executor plugin.
test-cluster: install
	bash tests/cluster/run.sh

test: install
	$(BIN)/python -m pytest -q

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/snakefmt --check Snakefile workflow/rules
	$(BIN)/snakemake --lint --config configpath=$(CONFIG)

format: install
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .
	$(BIN)/snakefmt Snakefile workflow/rules

# Regenerate the lock after editing pyproject.toml (needs the venv's uv).
lock: install
	$(BIN)/uv pip compile pyproject.toml --extra dev --python-version 3.11 \
	  --python-platform x86_64-unknown-linux-gnu -o requirements.lock
	$(BIN)/python -m alliance.envfile requirements.lock > environment.yml

# Regenerate the bundled demo trial (deterministic).
demo: install
	$(BIN)/alliance simulate --out data/demo --seed 20261127 --patients 480 --therapists 40
	$(BIN)/alliance simulate --out data/demo_wide --seed 20261127 --patients 480 --therapists 40 \
	  --format sav --layout wide

clean:
	rm -rf results .snakemake
