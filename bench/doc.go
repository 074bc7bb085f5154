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
// With SLUICE_CPUPROFILE=FILE the gateway runs in a child process of this
// program (the same code as `sluice serve`) that writes a CPU profile to FILE
// when it stops. The hook lives here only, never in the product.
package main
