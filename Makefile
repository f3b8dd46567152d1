# Two commands on a fresh clone:  make reproduce   and   make test
# Each creates .venv and installs the pinned environment first (only when
# pyproject.toml or constraints.txt changed since the last install).

PYTHON  ?= python3
VENV    ?= .venv
BIN     := $(VENV)/bin
STAMP   := $(VENV)/.installed
PROFILE ?= ci
PAPER   ?=
# pytest workers: notebooks run one kernel thread each, spread over the cores
JOBS    ?= 2
# datasets: $COMPANION_DATA if set; else the offline copies beside the checkout on this
# project's machines (as .ci/run does); else data/ (see data/README.md)
ifeq ($(origin COMPANION_DATA),undefined)
  ifneq ($(wildcard ../shared/data),)
    export COMPANION_DATA := $(abspath ../shared/data)
  endif
endif

.PHONY: help install reproduce test lab store report clean

help:
	@echo "make reproduce [PROFILE=ci|gpu|paper] [PAPER=slug]  run notebooks, write ledgers and results/REPORT.md"
	@echo "make test                                          unit tests + nbval over notebooks/"
	@echo "make lab                                           JupyterLab on notebooks/ with the project kernel"
	@echo "make store NB=notebooks/<paper>/NN_x.ipynb         re-execute one stored notebook at ci, in place"

install: $(STAMP)

$(STAMP): pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --disable-pip-version-check -c constraints.txt -e '.[test,lab]'
	$(BIN)/python -m ipykernel install --sys-prefix --name python3 --display-name "Python 3 (companion)" >/dev/null
	touch $(STAMP)

reproduce: $(STAMP)
	$(BIN)/companion reproduce --profile $(PROFILE) $(if $(PAPER),--paper $(PAPER))

test: $(STAMP)
	$(BIN)/python -m pytest -n $(JOBS) --dist loadscope

lab: $(STAMP)
	$(BIN)/jupyter lab notebooks/

store: $(STAMP)
	@test -n "$(NB)" || { echo "usage: make store NB=notebooks/<paper>/NN_topic.ipynb"; exit 2; }
	$(BIN)/companion run $(NB) --profile ci --out $(NB)

report: $(STAMP)
	$(BIN)/companion report

clean:  # the environment and regenerated outputs; committed results stay
	rm -rf $(VENV) .pytest_cache results/custom
	git clean -qfdX results/ci
