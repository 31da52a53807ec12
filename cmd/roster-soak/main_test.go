package main

import (
	"testing"
	"time"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// TestSoakShort runs the soak for two seconds, so that it cannot rot; `make
// soak` runs it for a minute.
func TestSoakShort(t *testing.T) {
	res, err := soak(config{duration: 2 * time.Second, workers: 8, maxSessions: 40, timeout: 100 * time.Millisecond})
	t.Log(res)
	if err != nil {
		t.Fatal(err)
	}
	if res.creates == 0 || res.requests == 0 || res.stats.Evicted == 0 || res.stats.Closed == 0 {
		t.Errorf("the load did not exercise everything: %s", res)
	}
}
