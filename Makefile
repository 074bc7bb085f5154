# The one test command (README): installs the test peers, checks the tree
# (lint), then runs every test with the race detector. Interop tests fail
# instead of skipping.
.PHONY: test deps lint vet build

# Linters, pinned so that CI is reproducible; installed from the Go module
# proxy into GOBIN (default: $(go env GOPATH)/bin).
STATICCHECK_VERSION := v0.8.2
DEADCODE_VERSION := v0.53.0
GOBIN ?= $(shell go env GOPATH)/bin

test: deps lint
	@set -e; if [ "$$(id -u)" = 0 ] && [ -z "$${SLUICE_PG_DSN:-}" ]; then eval "$$(./scripts/pg-test-env.sh)"; fi; \
	SLUICE_INTEROP=require go test -race -timeout 45m ./...
	./scripts/xcrypto-fork.sh test

# lint fails on: unformatted files, go vet, staticcheck findings, a go.mod or
# go.sum that `go mod tidy` would change, and code no test or command
# reaches (deadcode -test). The fork under internal/tempfork is upstream's
# code and is left out of gofmt and deadcode.
lint: vet
	go mod tidy -diff
	GOBIN=$(GOBIN) go install honnef.co/go/tools/cmd/staticcheck@$(STATICCHECK_VERSION)
	GOBIN=$(GOBIN) go install golang.org/x/tools/cmd/deadcode@$(DEADCODE_VERSION)
	$(GOBIN)/staticcheck ./...
	@dead=$$($(GOBIN)/deadcode -test ./... | grep -v '^internal/tempfork/' || true); \
	if [ -n "$$dead" ]; then echo "deadcode: unreachable code:"; echo "$$dead"; exit 1; fi

vet:
	gofmt -l $$(git ls-files '*.go' | grep -v '^internal/tempfork/') | (! grep .)
	go vet ./...

deps:
	./scripts/install-test-deps.sh

build:
	go build -o sluice ./cmd/sluice
