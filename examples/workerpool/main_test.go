package main

import (
	"bytes"
	"fmt"
	"strings"
	"testing"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func TestRun(t *testing.T) {
	var out bytes.Buffer
	if err := run(&out); err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(out.String()), "\n")
	if len(lines) != 11 {
		t.Fatalf("%d lines, want 10 workers and a summary:\n%s", len(lines), out.String())
	}
	for w, l := range lines[:10] {
		if !strings.Contains(l, fmt.Sprintf("server sees cookie worker=%d,", w)) || !strings.Contains(l, "3 requests") {
			t.Errorf("worker %d: %s", w, l)
		}
	}
	if want := "manager: 10 active, 10 created, cap 50, idle timeout 15m0s"; lines[10] != want {
		t.Errorf("summary %q, want %q", lines[10], want)
	}
}
