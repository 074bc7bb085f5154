#!/usr/bin/env bash
# Shows and checks Sluice's patch set on golang.org/x/crypto.
#
#   scripts/xcrypto-fork.sh diff    unified diff of internal/tempfork/xcrypto against
#                                   the exact upstream version named in its UPSTREAM file
#   scripts/xcrypto-fork.sh test    upstream's own tests on the patched copy
#   scripts/xcrypto-fork.sh vuln    govulncheck of Sluice (the committed HEAD) as built
#                                   with the upstream version the fork came from (see
#                                   docs/xcrypto-fork.md); needs https://vuln.go.dev
#
# The procedure to move the fork to a new upstream version is in docs/xcrypto-fork.md.
set -euo pipefail
cd "$(dirname "$0")/.."
fork=internal/tempfork/xcrypto
version=$(sed -n 's/^version: *//p' "$fork/UPSTREAM")
# The directories copied from upstream; everything else in x/crypto is not used.
dirs=(bcrypt blowfish chacha20 chacha20poly1305 cryptobyte curve25519 internal/alias internal/poly1305 internal/testenv sha3 ssh)

upstream() {
	GOFLAGS=-mod=mod go mod download -json "golang.org/x/crypto@$version" | sed -n 's/^\t"Dir": "\(.*\)",$/\1/p'
}

case "${1:-diff}" in
diff)
	up=$(upstream)
	status=0
	for d in "${dirs[@]}"; do
		# diff exits 1 when the trees differ, which is expected; >1 is an
		# error (a directory missing on either side), kept whatever the
		# directories after it return.
		[ -d "$up/$d" ] && [ -d "$fork/$d" ] || { echo "xcrypto-fork: $d: missing in $( [ -d "$up/$d" ] && echo the fork || echo upstream)" >&2; status=2; continue; }
		rc=0
		diff -ruN "$up/$d" "$fork/$d" | sed "s|$up/|upstream/|; s|$fork/|fork/|" || rc=$?
		[ "$rc" -le 1 ] || status=$rc
	done
	[ "$status" -eq 0 ]
	;;
test)
	cd "$fork" && go test ./...
	;;
vuln)
	tmp=$(mktemp -d)
	trap 'rm -rf "$tmp"' EXIT
	git archive HEAD | tar -x -C "$tmp"
	cd "$tmp"
	go mod edit -dropreplace golang.org/x/crypto -require "golang.org/x/crypto@$version"
	GOFLAGS=-mod=mod go run golang.org/x/vuln/cmd/govulncheck@v1.2.0 ./...
	;;
*)
	echo "usage: $0 diff|test|vuln" >&2
	exit 2
	;;
esac
