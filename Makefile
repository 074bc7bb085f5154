# The one test command (README): installs the test peers, then runs every
# test with the race detector. Interop tests fail instead of skipping.
.PHONY: test deps vet fuzz build

test: deps
	@set -e; if [ "$$(id -u)" = 0 ] && [ -z "$${SLUICE_PG_DSN:-}" ]; then eval "$$(./scripts/pg-test-env.sh)"; fi; \
	SLUICE_INTEROP=require go test -race -timeout 45m ./...
	./scripts/xcrypto-fork.sh test

vet:
	gofmt -l $$(git ls-files '*.go' | grep -v '^internal/tempfork/') | (! grep .)
	go vet ./...

deps:
	./scripts/install-test-deps.sh

build:
	go build -o sluice ./cmd/sluice
