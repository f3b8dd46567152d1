# Two commands on a fresh clone:  make reproduce   and   make test
# Each creates .venv and installs the pinned environment first (only when
# pyproject.toml or constraints.txt changed since the last install).

PYTHON  ?= python3
VENV    ?= .venv
BIN     := $(VENV)/bin
STAMP   := $(VENV)/.installed
PROFILE ?= ci
PAPER   ?=
# extra options of `make lab`, e.g. LAB_ARGS="--allow-root --no-browser --port 8890"
LAB_ARGS ?=
# the project kernel's display name; stored notebooks carry it (companion.pipeline.notebooks)
KERNEL_DISPLAY_NAME := Python 3 (companion)
# pytest workers: notebooks run one kernel thread each, spread over the cores
JOBS    ?= 2
# Another CPU code path of the same machine: other reduction orders in ATen, MKL and OpenBLAS,
# so other last bits. `make test` re-runs every stored notebook under it (checked outputs must
# not move); what else perturbs was measured (README, "Verifying").
PERTURB ?= ATEN_CPU_CAPABILITY=default MKL_CBWR=COMPATIBLE OPENBLAS_CORETYPE=Sandybridge
# datasets: $COMPANION_DATA if set; else the offline copies beside the checkout on this
# project's machines (as .ci/run does); else data/ (see data/README.md)
ifeq ($(origin COMPANION_DATA),undefined)
  ifneq ($(wildcard ../shared/data),)
    export COMPANION_DATA := $(abspath ../shared/data)
  endif
endif

.PHONY: help install reproduce test perturbed smoke lab store report clean

help:
	@echo "make install                                       create .venv with the pinned environment and the project kernel"
	@echo "make reproduce [PROFILE=ci|gpu|paper] [PAPER=slug]  run notebooks, write ledgers and results/REPORT.md"
	@echo "make test                                          unit tests + nbval over notebooks/, then again on another CPU code path"
	@echo "make perturbed                                     only the second nbval pass (PERTURB=...)"
	@echo "make smoke                                         every gpu and paper profile's code path, shrunk, on this CPU"
	@echo "make lab [LAB_ARGS=...]                            JupyterLab on notebooks/ with the project kernel (as root: LAB_ARGS=--allow-root)"
	@echo "make store NB=notebooks/<paper>/NN_x.ipynb         re-execute one stored notebook at ci, in place"

install: $(STAMP)

$(STAMP): pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --disable-pip-version-check -c constraints.txt -e '.[test,lab,cluster]'
	$(BIN)/python -m ipykernel install --sys-prefix --name python3 --display-name "$(KERNEL_DISPLAY_NAME)" >/dev/null
	touch $(STAMP)

reproduce: $(STAMP)
	$(BIN)/companion reproduce --profile $(PROFILE) $(if $(PAPER),--paper $(PAPER))

test: $(STAMP)
	$(BIN)/python -m pytest -n $(JOBS) --dist loadscope
	$(MAKE) --no-print-directory perturbed

smoke: $(STAMP)  # every gpu and paper profile of every notebook, shrunk to about ci size, on this CPU
	$(BIN)/python -m pytest -n $(JOBS) -p no:cacheprovider -q -m smoke tests/test_smoke_profiles.py

perturbed: $(STAMP)  # the stored notebooks once more, on another CPU code path
	env $(PERTURB) $(BIN)/python -m pytest -n $(JOBS) --dist loadscope -p no:cacheprovider -q notebooks

lab: $(STAMP)
	$(BIN)/jupyter lab notebooks/ $(LAB_ARGS)

store: $(STAMP)
	@test -n "$(NB)" || { echo "usage: make store NB=notebooks/<paper>/NN_topic.ipynb"; exit 2; }
	$(BIN)/companion run $(NB) --profile ci --out $(NB)

report: $(STAMP)
	$(BIN)/companion report

clean:  # the environment and regenerated outputs; committed results stay
	rm -rf $(VENV) .pytest_cache results/custom
	git clean -qfdX results/ci
