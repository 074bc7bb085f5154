package main

import (
	"os"
	"testing"
)

// envRunMain makes the test binary run sluice itself (see sluiceProcess).
const envRunMain = "SLUICE_TEST_RUN_MAIN"

func TestMain(m *testing.M) {
	if os.Getenv(envRunMain) == "1" {
		os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
	}
	os.Exit(m.Run())
}
