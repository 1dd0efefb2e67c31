# The README's two commands: `make demo` and `make test`. Both set up .venv first.
.PHONY: setup demo test test-slow test-fast lint clean

# Installs into .venv with pip's progress; skipped while pyproject.toml and scripts/setup.sh are
# unchanged since the last finished install (a stamp in .venv), so `make demo` twice installs once.
setup:
	@scripts/setup.sh

demo: setup
	.venv/bin/peel run configs/default.yaml

# The default suite (unit, report-in-Chromium and loopback-deployment tests; a few minutes). The
# end-to-end runs marked slow are `make test-slow`; .ci/run runs both.
test: setup
	.venv/bin/pytest -q -m "not slow"

test-slow: setup
	.venv/bin/pytest -q -m slow

# Unit tests only (skips the end-to-end runs marked slow).
test-fast: setup
	.venv/bin/pytest -q -m "not slow and not browser and not deploy"

# Ruff over the whole tree, then mypy (strict on policedata/, tasks/, privacy/, federation/);
# both configured in pyproject.toml. .ci/run runs this before `make test`.
lint: setup
	.venv/bin/ruff check .
	.venv/bin/mypy

clean:
	rm -rf runs .pytest_cache
