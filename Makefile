# The two commands of the README. Each installs what is missing first (scripts/bootstrap.sh).
.PHONY: up test lint bench bootstrap

bootstrap:
	./scripts/bootstrap.sh

up: bootstrap
	.venv/bin/facmon up

test: bootstrap
	.venv/bin/ruff check .
	.venv/bin/python -m pytest -q $(PYTEST_ARGS)

lint: bootstrap
	.venv/bin/ruff check .
