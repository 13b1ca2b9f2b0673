# helpdesk: the two set-up commands of the README, and a few helpers.
PYTHON ?= python3
PIP ?= $(PYTHON) -m pip

.PHONY: install deps demo test bench clean

# Debian packages the real mail stack needs (Dovecot IMAP + LMTP, openssl for test TLS).
deps:
	@if ! command -v dovecot >/dev/null 2>&1 && [ ! -x /usr/sbin/dovecot ]; then \
		echo "installing dovecot (apt-get)"; \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
			dovecot-imapd dovecot-lmtpd openssl >/dev/null; \
	fi
	@# systemd-analyze checks the unit files in tests/test_service.py (skipped without it).
	@if ! command -v systemd-analyze >/dev/null 2>&1; then \
		echo "installing systemd-analyze (apt-get install systemd)"; \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq systemd >/dev/null \
			|| echo "systemd could not be installed: the unit-file test will be skipped"; \
	fi

install: deps
	$(PIP) install -q -e '.[test]'

demo: install
	$(PYTHON) scripts/demo.py

test: install
	$(PYTHON) -m pytest -q

# make bench [PROFILE=1] [BENCH_ARGS="--no-postgres ..."]: the table, benchmarks/out/results.json
bench: deps
	$(PIP) install -q -e '.[test,bench]'
	$(PYTHON) benchmarks/bench.py $(if $(PROFILE),--profile ingest) $(BENCH_ARGS)

clean:
	rm -rf build dist *.egg-info .pytest_cache demo-run
