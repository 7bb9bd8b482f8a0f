# The two commands: `make demo` and `make test` work on a fresh machine with nothing
# installed by hand; both create .venv and install the project first.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV   := .venv
STAMP  := $(VENV)/.installed-stamp
# The page and UI tests drive Debian's chromium through playwright (never a downloaded browser).
BROWSER_STAMP := $(VENV)/.browser-stamp
SUDO   := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
export MEDIAINTEL_HOME ?= $(CURDIR)/.mediaintel
export DAGSTER_HOME ?= $(MEDIAINTEL_HOME)/dagster

.PHONY: demo test bench bench-quick bench-gpu ui install clean

install: $(STAMP)

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/python -m pip install --quiet --upgrade pip
	$(VENV)/bin/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

demo: $(STAMP)
	$(VENV)/bin/mediaintel demo

$(BROWSER_STAMP): $(STAMP)
	command -v chromium >/dev/null 2>&1 || { $(SUDO) apt-get update -qq && \
		$(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; }
	touch $@

test: $(STAMP) $(BROWSER_STAMP)
	$(VENV)/bin/python -m pytest -q -ra

# The performance bench (docs/perf.md): the pipeline against a plain script, PySceneDetect and
# faster-whisper on a fixed corpus (built once under $(MEDIAINTEL_HOME)/bench); 25-35 min on 2 cores.
bench: $(STAMP)
	$(VENV)/bin/python -m mediaintel_dagster.bench.perf --out docs/perf.md

# The same on a small corpus (3 videos of 1 min, 1 audio, 2 short clips): about 5 min.
bench-quick: $(STAMP)
	$(VENV)/bin/python -m mediaintel_dagster.bench.perf --videos 3 --minutes 1 --audio 1 --short 2 --out $(MEDIAINTEL_HOME)/perf-quick.md

# On a machine with an NVIDIA GPU: float16 Whisper batched by 16, TransNetV2 on every frame,
# the corpus as `make bench` (docs/perf.md, "GPU").
bench-gpu: $(STAMP)
	$(VENV)/bin/python -m mediaintel_dagster.bench.perf --gpu --out docs/perf-gpu.md

# The Dagster UI on http://127.0.0.1:3000 over the same instance the CLI writes to.
ui: $(STAMP)
	mkdir -p $(DAGSTER_HOME) && $(VENV)/bin/python -c "from mediaintel_dagster.instance import ensure_dagster_home; ensure_dagster_home()"
	$(VENV)/bin/dagster dev -w workspace.yaml -h 127.0.0.1 -p 3000

clean:
	rm -rf $(VENV) .mediaintel .pytest_cache *.egg-info
