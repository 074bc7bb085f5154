# The one test command (README): installs the test peers, then runs every
# test with the race detector. Interop tests fail instead of skipping.
.PHONY: test deps vet fuzz build

test: deps
	@set -e; if [ "$$(id -u)" = 0 ] && [ -z "$${SLUICE_PG_DSN:-}" ]; then eval "$$(./scripts/pg-test-env.sh)"; fi; \
	SLUICE_INTEROP=require go test -race -timeout 45m ./...

deps:
	./scripts/install-test-deps.sh

vet:
	gofmt -l . | (! grep .)
	go vet ./...

build:
	go build -o sluice ./cmd/sluice
