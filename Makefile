# make demo: set up .venv and run the main job on the shipped default model.
# make test: set up .venv and run the test suite.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
export ROS_AUTOMATIC_DISCOVERY_RANGE ?= LOCALHOST

.PHONY: demo test test-fast bench install clean

install: $(STAMP)

$(STAMP): requirements.txt setup.py setup.cfg
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r requirements.txt
	$(PY) -m pip install --quiet --no-deps --no-build-isolation -e .
	touch $(STAMP)

demo: $(STAMP)
	$(VENV)/bin/matseg demo --output demo_out

test: $(STAMP)
	$(PY) -m pytest -ra -q

test-fast: $(STAMP)
	$(PY) -m pytest -ra -q -m "not slow"

bench: $(STAMP)
	$(PY) bench/run_all.py

clean:
	rm -rf $(VENV) demo_out build install log *.egg-info
