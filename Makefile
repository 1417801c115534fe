# Support Analytics: `make run` to try it, `make test` to test it. See README.md.
SHELL := /bin/bash
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
PY := $(VENV)/bin/python
PORT ?= 8000
DEMO_DATA ?= 1
DEMO_CONVERSATIONS ?= 20000
DEMO_DAYS ?= 90

.PHONY: run test lint format db db-stop postgres browser bench bench-floor bench-ratio bench-client venv venv-dev clean help

help:
	@echo "make run      start the app with demo data on http://127.0.0.1:$(PORT)"
	@echo "make test     run the test suite on PostgreSQL"
	@echo "make db       start the private PostgreSQL cluster, print its DATABASE_URL"
	@echo "make db-stop  stop it"
	@echo "make lint     ruff check + format check"
	@echo "make postgres install Debian's PostgreSQL if it is missing (as root)"
	@echo "make browser  install Debian's Chromium for the browser tests (as root)"
	@echo "make bench    the performance benchmark (SIZE=10000000 for ten million conversations)"
	@echo "make bench-floor  what the stack costs a single POST before our write"
	@echo "make bench-ratio  read times at 10M / at 1M conversations, measured side by side"
	@echo "make bench-client the bot-side client: log_conversation's time, and end to end through the server"

# Reinstall only when a requirements file changes.
$(VENV)/.installed-runtime: requirements.txt
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check -r requirements.txt
	@touch $@

$(VENV)/.installed-dev: requirements.txt requirements-dev.txt
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check -r requirements-dev.txt
	@touch $@ $(VENV)/.installed-runtime

venv: $(VENV)/.installed-runtime
venv-dev: $(VENV)/.installed-dev

# Starts the private cluster unless DATABASE_URL points elsewhere; the URL is the last line.
db: venv postgres
	@if [ -n "$$DATABASE_URL" ]; then echo "$$DATABASE_URL"; else $(PY) -m supportanalytics.localdb start; fi

db-stop:
	@$(PY) -m supportanalytics.localdb stop

# The scheduler's worker (alert evaluation every minute, digests: conversations/tasks.py) runs
# beside the server and stops with it. Ctrl-C reaches both; whichever way runserver ends, the
# trap sends the worker SIGINT (its graceful stop; ignored once it is stopping) and waits
# for its job to finish, so no worker outlives `make run`.
run: db
	$(PY) manage.py migrate --no-input
	@if [ "$(DEMO_DATA)" != "0" ]; then \
		$(PY) manage.py seed_demo --only-if-empty --conversations $(DEMO_CONVERSATIONS) --days $(DEMO_DAYS); fi
	$(PY) manage.py ensure_staff_user
	@echo "Dashboard and admin: http://127.0.0.1:$(PORT)/admin/  API docs: http://127.0.0.1:$(PORT)/api/docs/"
	@echo "Alerts and digests: a worker runs beside the server (manage.py procrastinate worker)"
	@$(PY) manage.py procrastinate worker & worker=$$!; \
		trap 'kill -INT $$worker 2>/dev/null; wait $$worker' EXIT; \
		$(PY) manage.py runserver 127.0.0.1:$(PORT)

# Without PostgreSQL's binaries (where localdb looks for them), root installs Debian's, as
# `browser` does for Chromium; anyone else gets localdb's error naming the command to run.
postgres: venv
	@if [ -z "$$DATABASE_URL" ] && [ "$$(id -u)" = "0" ] \
		&& ! $(PY) -m supportanalytics.localdb bindir >/dev/null 2>&1; then \
		echo "PostgreSQL is not installed: installing it from Debian" >&2; \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >/dev/null \
			|| { echo "Installing PostgreSQL failed" >&2; exit 1; }; \
	fi

# The browser tests drive Debian's Chromium through Playwright (never `playwright install`,
# which downloads its own browser build). Without root they are skipped, except under CI.
CHROMIUM := /usr/bin/chromium

browser:
	@if [ ! -x $(CHROMIUM) ]; then \
		if [ "$$(id -u)" = "0" ]; then \
			echo "Chromium is not installed: installing it from Debian"; \
			apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; \
		else \
			echo "No $(CHROMIUM): browser tests will be skipped (install it with: sudo apt-get install chromium)"; \
		fi; \
	fi

test: venv-dev db browser
	$(PY) -m pytest $(PYTEST_ARGS)

lint: venv-dev
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

format: venv-dev
	$(VENV)/bin/ruff check --fix .
	$(VENV)/bin/ruff format .

clean: db-stop
	rm -rf var $(VENV)

# Performance benchmark (not part of `make test`): SIZE=10000000 make bench
SIZE ?= 1000000
IMPORT_LINES ?= 1000000
bench: venv-dev db
	$(PY) benchmarks/bench.py --size $(SIZE) --import-lines $(IMPORT_LINES)

# What the stack costs a single POST before our write (needs the database `make bench` loads)
bench-floor: venv-dev db
	$(PY) benchmarks/floor.py --size $(SIZE)

# Read times at two sizes side by side (needs both bench databases: make bench, SIZE=10000000 make bench)
bench-ratio: venv-dev db
	$(PY) benchmarks/ratio.py

# The bot-side client (client/): log_conversation with the server down, from 1 and 4 threads,
# and conversations/s from the call to the database through gunicorn on a throwaway database
bench-client: venv-dev db
	$(PY) benchmarks/client_bench.py
