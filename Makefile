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

install: deps
	$(PIP) install -q -e '.[test]'

demo: install
	$(PYTHON) scripts/demo.py

test: install
	$(PYTHON) -m pytest -q

bench: install
	$(PYTHON) benchmarks/run.py

clean:
	rm -rf build dist *.egg-info .pytest_cache demo-run
