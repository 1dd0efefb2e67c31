# The README's two commands: `make demo` and `make test`. Both set up .venv first.
.PHONY: setup demo test test-fast lint clean

# Installs into .venv with pip's progress; skipped while pyproject.toml and scripts/setup.sh are
# unchanged since the last finished install (a stamp in .venv), so `make demo` twice installs once.
setup:
	@scripts/setup.sh

demo: setup
	.venv/bin/peel run configs/default.yaml

test: setup
	.venv/bin/pytest -q

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
