#!/usr/bin/env bash
# Keeps Sluice's fork of golang.org/x/crypto: a whole copy of one upstream
# release in internal/tempfork/xcrypto with the patches in
# internal/tempfork/xcrypto-patches applied in order (docs/xcrypto-fork.md).
#
#   scripts/xcrypto-fork.sh update VERSION  replace the copy with upstream VERSION, apply
#                                           every patch (stops at the first that does not
#                                           apply), record VERSION in UPSTREAM, run the
#                                           tests of the patched ssh packages
#   scripts/xcrypto-fork.sh verify          the copy is exactly UPSTREAM's version plus the
#                                           patches (no change made outside a patch)
#   scripts/xcrypto-fork.sh test            verify, then upstream's ssh tests and the patch
#                                           tests on the copy
#   scripts/xcrypto-fork.sh check-stale     fails when the module proxy serves a newer
#                                           x/crypto than UPSTREAM; when the proxy cannot be
#                                           asked it says so and passes, unless
#                                           SLUICE_INTEROP=require. XCRYPTO_UPSTREAM names
#                                           another UPSTREAM file (the staleness test's fake)
#   scripts/xcrypto-fork.sh diff            unified diff of the copy against upstream
#   scripts/xcrypto-fork.sh vuln            govulncheck of Sluice (the committed HEAD) built
#                                           with the upstream version the fork came from;
#                                           needs https://vuln.go.dev
#
# Every command stops at the first error.
set -euo pipefail
cd "$(dirname "$0")/.."
fork=internal/tempfork/xcrypto
patches=internal/tempfork/xcrypto-patches
upstream_file=${XCRYPTO_UPSTREAM:-$fork/UPSTREAM}

die() {
	echo "xcrypto-fork: $*" >&2
	exit 1
}

version() {
	local v
	v=$(sed -n 's/^version: *//p' "$upstream_file")
	[ -n "$v" ] || die "$upstream_file has no 'version:' line"
	echo "$v"
}

# upstream_dir VERSION prints the module cache folder of x/crypto VERSION,
# downloading it through the module proxy.
upstream_dir() {
	local json dir
	json=$(GOFLAGS=-mod=mod go mod download -json "golang.org/x/crypto@$1") || die "go mod download golang.org/x/crypto@$1 failed"
	dir=$(sed -n 's/^\t"Dir": "\(.*\)",$/\1/p' <<<"$json")
	[ -d "$dir" ] || die "no module folder for golang.org/x/crypto@$1"
	echo "$dir"
}

# patched VERSION DEST makes DEST a copy of upstream VERSION with every
# patch applied; it stops at a patch that does not apply cleanly.
patched() {
	local up p
	up=$(upstream_dir "$1")
	rm -rf "$2"
	cp -R "$up" "$2"
	chmod -R u+w "$2"
	for p in "$patches"/*.patch; do
		[ -e "$p" ] || continue
		patch -d "$2" -p1 --forward --no-backup-if-mismatch --reject-file=- -s <"$p" ||
			die "$(basename "$p") does not apply to golang.org/x/crypto@$1: resolve it by hand (docs/xcrypto-fork.md)"
	done
}

cmd=${1:-}
case "$cmd" in
update)
	[ $# -eq 2 ] || die "usage: $0 update VERSION"
	new=$2
	tmp=$(mktemp -d)
	trap 'rm -rf "$tmp"' EXIT
	patched "$new" "$tmp/xcrypto"
	cp "$fork/UPSTREAM" "$tmp/xcrypto/UPSTREAM"
	sed -i "s/^version: .*/version: $new/" "$tmp/xcrypto/UPSTREAM"
	rm -rf "$fork"
	mv "$tmp/xcrypto" "$fork"
	(cd "$fork" && go test ./ssh/...)
	echo "xcrypto-fork: now at golang.org/x/crypto@$new; next: go mod edit -require golang.org/x/crypto@$new && go mod tidy, make test, the benchmarks (docs/xcrypto-fork.md)"
	;;
verify)
	tmp=$(mktemp -d)
	trap 'rm -rf "$tmp"' EXIT
	v=$(version)
	patched "$v" "$tmp/xcrypto"
	cp "$fork/UPSTREAM" "$tmp/xcrypto/UPSTREAM"
	diff -r "$tmp/xcrypto" "$fork" >"$tmp/diff" || {
		cat "$tmp/diff" >&2
		die "$fork is not golang.org/x/crypto@$v plus $patches: make every change a patch"
	}
	echo "xcrypto-fork: $fork is golang.org/x/crypto@$v plus $(ls "$patches"/*.patch | wc -l) patches"
	;;
test)
	"$0" verify
	cd "$fork" && go test ./ssh/...
	;;
check-stale)
	v=$(version)
	tmp=$(mktemp -d)
	trap 'rm -rf "$tmp"' EXIT
	# Outside any module, so that the replace directive plays no part.
	if ! latest=$(cd "$tmp" && GOFLAGS= GO111MODULE=on go list -m -f '{{.Version}}' golang.org/x/crypto@latest 2>"$tmp/err"); then
		msg="cannot ask the module proxy ($(go env GOPROXY)) for the newest golang.org/x/crypto: $(tr '\n' ' ' <"$tmp/err")"
		if [ "${SLUICE_INTEROP:-}" = require ]; then
			die "$msg"
		fi
		echo "xcrypto-fork: staleness NOT checked: $msg (SLUICE_INTEROP=require makes this an error)"
		exit 0
	fi
	if [ "$latest" = "$v" ]; then
		echo "xcrypto-fork: $v is the newest golang.org/x/crypto"
		exit 0
	fi
	if [ "$(printf '%s\n%s\n' "$v" "$latest" | sort -V | tail -n1)" = "$latest" ]; then
		die "the module proxy serves golang.org/x/crypto $latest, the fork is at $v ($upstream_file): run scripts/xcrypto-fork.sh update $latest (docs/xcrypto-fork.md)"
	fi
	echo "xcrypto-fork: $v is newer than the proxy's latest $latest"
	;;
diff)
	up=$(upstream_dir "$(version)")
	rc=0
	diff -ruN -x UPSTREAM "$up" "$fork" | sed "s|$up/|upstream/|; s|$fork/|fork/|" || rc=$?
	# diff exits 1 when the trees differ, as they do; more is an error.
	[ "$rc" -le 1 ] || die "diff failed"
	;;
vuln)
	v=$(version)
	tmp=$(mktemp -d)
	trap 'rm -rf "$tmp"' EXIT
	git archive HEAD | tar -x -C "$tmp"
	cd "$tmp"
	go mod edit -dropreplace golang.org/x/crypto -require "golang.org/x/crypto@$v"
	GOFLAGS=-mod=mod go run golang.org/x/vuln/cmd/govulncheck@v1.2.0 ./...
	;;
*)
	echo "usage: $0 update VERSION|verify|test|check-stale|diff|vuln" >&2
	exit 2
	;;
esac
