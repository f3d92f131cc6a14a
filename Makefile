# Trunkline — every target installs what it needs first. Only Node/npm must pre-exist.
BUN := node_modules/.bin/bun
CONFIG ?= config.example.yaml

.PHONY: run test test-soak build bench typecheck deps system-deps clean cluster cluster-down

node_modules/.installed: package.json package-lock.json
	npm ci --no-audit --no-fund
	touch $@

deps: node_modules/.installed

system-deps:
	scripts/system-deps.sh

# The media worker is an entrypoint of its own: a compiled executable only holds the worker
# scripts it is built with.
build: deps
	$(BUN) build --compile --minify main.ts src/media-worker.ts --outfile dist/trunkline

run: build
	mkdir -p data
	./dist/trunkline serve --config $(CONFIG) --db data/trunkline.db

# PostgreSQL, Kamailio and three nodes on loopback (README "Cluster"); prints FRONT_SIP=, NODE1_API=...
# Ports and the like: see the header of scripts/cluster.sh.
cluster: build system-deps
	scripts/cluster.sh up

cluster-down:
	scripts/cluster.sh down

typecheck: deps
	$(BUN) x tsc --noEmit

# Interop tests start real peers (SIPp, Kamailio, baresip, Chromium, Firefox): 60 s per test. Bun 1.4.5 reads
# the per-test timeout only from the command line, not from bunfig.toml.
test: deps system-deps typecheck
	$(BUN) test --timeout 60000

# The whole suite SOAK_RUNS times on a fresh clone while stress-ng keeps one core busy; prints how
# often each test failed. Not part of CI.
SOAK_RUNS ?= 5
test-soak:
	scripts/soak.sh $(SOAK_RUNS)

bench: deps system-deps
	$(BUN) run bench/run.ts $(BENCH)

clean:
	rm -rf dist node_modules data
