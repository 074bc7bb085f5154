# The one test command (README): installs the test peers, checks the tree
# (lint), then runs every test with the race detector. Interop tests fail
# instead of skipping. Then the x/crypto fork's own tests, and the data path
# built without the fork (nofork).
.PHONY: test deps lint vet build nofork

# Linters, pinned so that CI is reproducible; installed from the Go module
# proxy into GOBIN (default: $(go env GOPATH)/bin).
STATICCHECK_VERSION := v0.8.2
DEADCODE_VERSION := v0.53.0
GOBIN ?= $(shell go env GOPATH)/bin

# -parallel 4: the parallel tests mostly wait on sshd, clients and
# timers, not the CPU; four at a time on a 2-core machine, with a smaller
# leak test and fewer exit-status rounds, took the gateway package from
# 594 s to 404 s (docs/benchmarks.md, "CI time").
test: deps lint
	@set -e; if [ "$$(id -u)" = 0 ] && [ -z "$${SLUICE_PG_DSN:-}" ]; then eval "$$(./scripts/pg-test-env.sh)"; fi; \
	SLUICE_INTEROP=require go test -race -parallel 4 -timeout 45m ./...
	./scripts/xcrypto-fork.sh test
	$(MAKE) nofork

# The packages on the data path, built and tested against upstream
# x/crypto: go.mod's replace of golang.org/x/crypto dropped, on a copy of
# go.mod and go.sum (-modfile), so the tree is left as it is. Test code that
# depends on a patch reads the build tag upstream_xcrypto. No -race: the
# run above had it on the same code; this one checks the build and the
# behaviour against upstream, so the fork stays droppable in one step
# (docs/xcrypto-fork.md).
NOFORK_TESTS := ./sshsession/... ./internal/sshproxy/... ./internal/sftpproxy/... ./internal/scpproxy/...
# The gateway's end-to-end tests of the data path (not the whole suite,
# which the race run above covers): exec, shells, SFTP, scp, recordings,
# forwards and hostile peers against upstream x/crypto.
NOFORK_GATEWAY := TestExec|TestInteractiveShell|TestSFTP|TestSCP|TestRsync|TestRecordLargeDownload|TestForwardLocal|TestHostile|TestExitStatus
nofork:
	@set -e; tmp=$$(mktemp -d); trap 'rm -rf "$$tmp"' EXIT; \
	cp go.mod go.sum "$$tmp/"; \
	go mod edit -dropreplace golang.org/x/crypto "$$tmp/go.mod"; \
	echo "nofork: golang.org/x/crypto $$(go mod edit -json "$$tmp/go.mod" | sed -n '/"golang.org\/x\/crypto"/{n;s/.*"Version": "\(.*\)".*/\1/p}') from the module proxy"; \
	GOFLAGS=-mod=mod go build -modfile="$$tmp/go.mod" ./...; \
	GOFLAGS=-mod=mod go vet -tags upstream_xcrypto -modfile="$$tmp/go.mod" ./...; \
	SLUICE_INTEROP=require GOFLAGS=-mod=mod go test -timeout 30m -tags upstream_xcrypto -modfile="$$tmp/go.mod" $(NOFORK_TESTS); \
	SLUICE_INTEROP=require GOFLAGS=-mod=mod go test -timeout 30m -tags upstream_xcrypto -modfile="$$tmp/go.mod" -run '$(NOFORK_GATEWAY)' ./internal/gateway/

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
	gofmt -l $$(git ls-files '*.go' | grep -v '^internal/tempfork/xcrypto/') | (! grep .)
	go vet ./...

deps:
	./scripts/install-test-deps.sh

build:
	go build -o sluice ./cmd/sluice
