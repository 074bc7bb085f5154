// Package sshtest holds test helpers: key generation in temporary folders,
// an OpenSSH sshd harness on loopback, and the SLUICE_INTEROP switch that
// decides whether a missing external tool skips or fails a test.
package sshtest
