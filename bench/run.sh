#!/usr/bin/env bash
# run.sh: whole-system benchmarks of Sluice against direct ssh and ProxyJump
# on loopback. See docs/benchmarks.md. Flags go to the Go program, e.g.
#   bench/run.sh --quick
#   bench/run.sh --bulk 512MiB --keystrokes 500 --rounds 2
#   SLUICE_CPUPROFILE=/tmp/sluice.pprof bench/run.sh --quick --only bulk
set -euo pipefail
cd "$(dirname "$0")/.."
exec go run ./bench "$@"
