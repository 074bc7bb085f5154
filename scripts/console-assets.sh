#!/usr/bin/env bash
# Reproduces the console's vendored player, internal/console/web/static/vendor,
# from asciinema-player on npm at a pinned version and integrity hash, and
# writes SHA256SUMS, which a Go test (TestVendoredAssets) checks offline in
# make test.
#
#   scripts/console-assets.sh           rewrite the vendored files
#   scripts/console-assets.sh --check   fetch again and fail unless the
#                                       committed files are byte-identical
set -euo pipefail
VERSION=3.18.0
INTEGRITY=sha512-5gpt2ipFcy4NKmgkv+c/QXnJ9zMicxqWROCOuJqgwwtiYKM8Qe9hnDOvfqke5bW6M2DW/seO3uQYkQ0xeUUVtw==
FILES=(asciinema-player.min.js asciinema-player.css)

root=$(cd "$(dirname "$0")/.." && pwd)
dest=$root/internal/console/web/static/vendor
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

(cd "$tmp" && npm pack --silent "asciinema-player@$VERSION" >/dev/null)
tgz=$tmp/asciinema-player-$VERSION.tgz
got="sha512-$(openssl dgst -sha512 -binary "$tgz" | base64 -w0)"
if [ "$got" != "$INTEGRITY" ]; then
  echo "console-assets: asciinema-player-$VERSION.tgz has integrity $got, want $INTEGRITY" >&2
  exit 1
fi
tar -xzf "$tgz" -C "$tmp"
out=$tmp/out
mkdir -p "$out"
for f in "${FILES[@]}"; do
  cp "$tmp/package/dist/bundle/$f" "$out/$f"
done
cp "$tmp/package/LICENSE" "$out/LICENSE"
(cd "$out" && sha256sum "${FILES[@]}" LICENSE > SHA256SUMS && echo "asciinema-player $VERSION" > VERSION)

if [ "${1:-}" = "--check" ]; then
  if ! diff -r "$out" "$dest"; then
    echo "console-assets: $dest differs from asciinema-player $VERSION; run scripts/console-assets.sh" >&2
    exit 1
  fi
  echo "console-assets: $dest is asciinema-player $VERSION"
  exit 0
fi
rm -rf "$dest"
mkdir -p "$dest"
cp "$out"/* "$dest"/
echo "console-assets: wrote $dest from asciinema-player $VERSION"
