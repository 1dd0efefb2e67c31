# The README's two commands: `make demo` and `make test`. Both set up .venv first.
.PHONY: setup demo test test-fast clean

setup:
	@scripts/setup.sh

demo: setup
	.venv/bin/peel run configs/default.yaml

test: setup
	.venv/bin/pytest -q

# Unit tests only (skips the end-to-end runs marked slow).
test-fast: setup
	.venv/bin/pytest -q -m "not slow and not browser and not deploy"

clean:
	rm -rf runs .pytest_cache
