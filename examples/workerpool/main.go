// Command workerpool is the worker-pool use case of roster's README: a
// Manager with a cap of 50 and a 15-minute idle timeout, ten sessions built
// up front, each handed by ID to its own worker goroutine, and a Shutdown
// that runs once however the program ends.
package main

import (
	"fmt"
	"io"
	"os"
	"os/signal"
	"sync"
	"time"

	"github.com/rosterhq/roster"
)

func main() {
	if err := run(os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "workerpool:", err)
		os.Exit(1)
	}
}

func run(out io.Writer) error {
	m := roster.NewManager()
	m.SetMaxSessions(50)
	m.SetSessionTimeout(15 * time.Minute)

	var shutdownOnce sync.Once
	shutdown := func() { shutdownOnce.Do(m.Shutdown) }
	defer shutdown()

	// Shut down on Ctrl-C too, without racing the deferred call.
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, os.Interrupt)
	done := make(chan struct{})
	defer func() { signal.Stop(sig); close(done) }()
	go func() {
		select {
		case <-sig:
			shutdown()
			os.Exit(130)
		case <-done:
		}
	}()

	ids := make([]string, 10)
	for i := range ids {
		id, err := m.CreateSession(nil)
		if err != nil {
			return err
		}
		ids[i] = id
	}

	var wg sync.WaitGroup
	report := make([]string, len(ids))
	for w, id := range ids {
		wg.Go(func() { report[w] = work(m, w, id) })
	}
	wg.Wait()
	for _, line := range report {
		fmt.Fprintln(out, line)
	}
	st := m.Stats()
	fmt.Fprintf(out, "manager: %d active, %d created, cap %d, idle timeout %v\n",
		st.Active, st.Created, m.MaxSessions(), m.SessionTimeout())
	return nil
}

// work is one worker: it fetches its session by ID, as a worker holding only
// the ID would, and uses it.
func work(m *roster.Manager, w int, id string) string {
	s, err := m.GetSession(id)
	if err != nil {
		return fmt.Sprintf("worker %d: %v", w, err)
	}
	for range 100 {
		if _, err := m.GetSession(id); err != nil {
			return fmt.Sprintf("worker %d: %v", w, err)
		}
	}
	s.Touch()
	st := s.Stats()
	return fmt.Sprintf("worker %d: session %s (%s), 101 lookups, idle %v", w, st.ID, st.Preset, st.IdleTime.Round(time.Millisecond))
}
