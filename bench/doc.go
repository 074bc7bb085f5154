// Command bench measures Sluice against a direct OpenSSH connection and an
// OpenSSH ProxyJump on loopback: bulk throughput, keystroke latency, session
// setup, Sluice's CPU per GiB relayed, SFTP and, optionally, the memory of
// idle proxied sessions. SFTP is also measured through Sluice to a subsystem
// it does not inspect, so that the SFTP proxy's cost is the ratio of the
// two (see unproxiedSubsystem); the sftp policy has a deny_paths glob that
// matches nothing the bench touches, so that every path is resolved through
// the server as under real path rules. It sets up everything in a temporary folder (two
// sshd, a built Sluice) and prints a Markdown table. Run it from the
// repository root, usually through bench/run.sh; docs/benchmarks.md has the
// commands and the figures.
//
// With --rtt (as root) it measures over a long network instead of
// loopback: the client, the gateway host (Sluice, the ProxyJump host, the
// router of the direct path) and the target in three network namespaces,
// joined by two links that each delay packets by a quarter of the round
// trip each way, so that the gateway splits the path in halves as a
// bastion does (wan.go). --sluice runs a prebuilt binary, to compare builds.
//
// With SLUICE_CPUPROFILE=FILE the gateway runs in a child process of this
// program (the same code as `sluice serve`) that writes a CPU profile to FILE
// when it stops. The hook lives here only, never in the product.
package main
