//go:build !race

package gateway

// raceEnabled is set when the race detector runs (see race_test.go).
const raceEnabled = false
