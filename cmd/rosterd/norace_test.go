//go:build !race

package main

// raceEnabled: the test binary runs with the race detector, so the binary
// it builds does too, reusing the packages go test has compiled.
const raceEnabled = false
