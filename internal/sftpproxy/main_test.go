package sftpproxy

import (
	"testing"

	"go.uber.org/goleak"
)

// TestMain fails the package's tests if a goroutine outlives them: every
// Relay must return with its goroutines done (STYLE.md §3).
func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }
