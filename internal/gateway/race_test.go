//go:build race

package gateway

// raceEnabled is set when the race detector runs, which slows the gateway
// and the test's clients several times: load tests scale down then.
const raceEnabled = true
