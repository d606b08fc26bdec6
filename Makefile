# `make demo` and `make test` work from a clean clone on a fresh machine.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
APT_PACKAGES := mariadb-server mariadb-client openssh-server openssh-client

.PHONY: demo test lint typecheck unit system-packages venv bench clean lock

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip uv
	$(BIN)/uv pip install --quiet --python $(BIN)/python -e '.[dev]'
	touch $(STAMP)

venv: $(STAMP)

# Debian packages the integration tests start on 127.0.0.1 (a real MariaDB and OpenSSH sshd).
system-packages:
	@missing=""; for p in $(APT_PACKAGES); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then \
	  echo "installing$$missing"; \
	  SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
	  $$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq --no-install-recommends $$missing >/dev/null; \
	fi

demo: $(STAMP)
	$(BIN)/kajitori demo

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/hadolint Dockerfile
	$(BIN)/cfn-lint deploy/cloudformation/kajitori.yaml deploy/dynamodb-table.yaml

typecheck: $(STAMP)
	$(BIN)/mypy

unit: $(STAMP)
	$(BIN)/pytest -q tests/unit

test: system-packages $(STAMP) lint typecheck
	$(BIN)/pytest -q -p no:cacheprovider

# The image's dependencies (Dockerfile): uv.lock, and requirements.lock exported from it.
lock: $(STAMP)
	$(BIN)/uv lock
	$(BIN)/uv export --format requirements-txt --no-emit-project --no-dev --frozen -o requirements.lock

bench: $(STAMP)
	$(BIN)/python bench/limits_fanout.py

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache
