package daemon_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/rosterhq/roster/daemon"
	"github.com/rosterhq/roster/session"
)

func TestNewBadToken(t *testing.T) {
	for _, tok := range []string{"", " ", "fifteen-bytes-x", " sixteen-bytes-xx", "sixteen-bytes-xx\n", "\tsixteen-bytes-xx"} {
		_, err := daemon.New(daemon.Options{Token: tok})
		if !errors.Is(err, daemon.ErrBadToken) {
			t.Errorf("New with token %q: %v, want ErrBadToken", tok, err)
		}
	}
	srv, err := daemon.New(daemon.Options{Token: "sixteen-bytes-xx"})
	if err != nil {
		t.Fatalf("New with a 16-byte token: %v", err)
	}
	_ = srv.Shutdown(context.Background())
}

func TestCreateSession(t *testing.T) {
	e := newEnv(t, nil)
	for _, tc := range []struct {
		name    string
		body    string
		code    int
		errText string // for a failure: a part of {"error"}
	}{
		{"empty body", "", http.StatusCreated, ""},
		{"empty object", "{}", http.StatusCreated, ""},
		{"null", "null", http.StatusCreated, ""},
		{"config", `{"preset":"chrome-latest","timeout":5000,"headers":{"X-Team":"a"}}`, http.StatusCreated, ""},
		{"negative timeout", `{"timeout":-1}`, http.StatusBadRequest, "invalid session config: timeout -1 ms: must not be negative"},
		{"too many redirects", `{"maxRedirects":1000}`, http.StatusBadRequest, "maxRedirects 1000: want 0 to 100"},
		{"bad proxy scheme", `{"proxy":"ftp://x"}`, http.StatusBadRequest, `scheme "ftp" is not http, https or socks5`},
		{"unknown preset", `{"preset":"netscape-4"}`, http.StatusBadRequest, "netscape-4"},
		{"malformed JSON", `{"preset":`, http.StatusBadRequest, "invalid session config"},
		{"not an object", `[1,2]`, http.StatusBadRequest, "invalid session config"},
		{"unknown field", `{"nope":1}`, http.StatusBadRequest, `unknown field "nope"`},
		{"trailing data", `{} {}`, http.StatusBadRequest, "data after the JSON object"},
		{"wrong type", `{"timeout":"5s"}`, http.StatusBadRequest, "invalid session config"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			before := e.srv.Manager().SessionCount()
			code, b := e.call(http.MethodPost, "/v1/sessions", tc.body)
			if code != tc.code {
				t.Fatalf("status %d, want %d; body %s", code, tc.code, b)
			}
			if tc.code == http.StatusCreated {
				var out struct{ ID string }
				if err := json.Unmarshal(b, &out); err != nil || out.ID == "" {
					t.Fatalf("body %s: want {\"id\": ...} (%v)", b, err)
				}
				if _, err := e.srv.Manager().GetSession(out.ID); err != nil {
					t.Fatalf("created %s, then GetSession: %v", out.ID, err)
				}
				return
			}
			if msg := errorText(t, b); !strings.Contains(msg, tc.errText) {
				t.Fatalf("error %q, want it to contain %q", msg, tc.errText)
			}
			if n := e.srv.Manager().SessionCount(); n != before {
				t.Fatalf("a failed create left %d sessions, had %d", n, before)
			}
		})
	}
}

func TestCreateSessionConfigApplied(t *testing.T) {
	e := newEnv(t, nil)
	id := e.create(`{"preset":"chrome-latest","timeout":5000}`)
	s, err := e.srv.Manager().GetSession(id)
	if err != nil {
		t.Fatal(err)
	}
	if c := s.Config(); c == nil || c.Timeout != 5000 || c.Preset != "chrome-latest" {
		t.Fatalf("config %+v, want timeout 5000 and preset chrome-latest", c)
	}
}

func TestBodyLimits(t *testing.T) {
	e := newEnv(t, nil)
	// Whitespace around "{}" is a valid config of any length.
	padded := func(n int) []byte {
		b := bytes.Repeat([]byte(" "), n)
		copy(b, "{}")
		return b
	}
	for _, tc := range []struct {
		name string
		path string
		size int
		code int
	}{
		{"create at the limit", "/v1/sessions", daemon.MaxBodyBytes, http.StatusCreated},
		{"create over the limit", "/v1/sessions", daemon.MaxBodyBytes + 1, http.StatusRequestEntityTooLarge},
		{"create far over the limit", "/v1/sessions", 4 * daemon.MaxBodyBytes, http.StatusRequestEntityTooLarge},
		{"restore over the limit", "/v1/sessions/restore", daemon.MaxBodyBytes + 1, http.StatusRequestEntityTooLarge},
	} {
		t.Run(tc.name, func(t *testing.T) {
			code, b, _ := e.api(http.MethodPost, tc.path, "Bearer "+token, bytes.NewReader(padded(tc.size)))
			if code != tc.code {
				t.Fatalf("status %d, want %d; body %.200s", code, tc.code, b)
			}
			if code == http.StatusRequestEntityTooLarge {
				if msg := errorText(t, b); !strings.Contains(msg, "1048576") {
					t.Fatalf("error %q: want the limit in it", msg)
				}
			}
		})
	}
}

func TestCreateAtCap(t *testing.T) {
	e := newEnv(t, nil, session.WithMaxSessions(2))
	a := e.create("")
	e.create("")
	code, b := e.call(http.MethodPost, "/v1/sessions", "")
	if code != http.StatusTooManyRequests {
		t.Fatalf("third create: status %d, want 429; body %s", code, b)
	}
	if msg := errorText(t, b); !strings.Contains(msg, "maximum sessions limit reached (2)") {
		t.Fatalf("error %q", msg)
	}
	// A restore at the cap is refused the same way.
	e.srv.Manager().SetMaxSessions(3)
	c := e.create("")
	_, state := e.call(http.MethodGet, "/v1/sessions/"+c+"/state", "")
	if code, _ := e.call(http.MethodDelete, "/v1/sessions/"+c, ""); code != http.StatusNoContent {
		t.Fatalf("DELETE: %d", code)
	}
	e.srv.Manager().SetMaxSessions(2)
	if code, b := e.call(http.MethodPost, "/v1/sessions/restore", string(state)); code != http.StatusTooManyRequests {
		t.Fatalf("restore at the cap: %d %s", code, b)
	}
	if got := e.srv.Manager().Stats().Rejected; got != 2 {
		t.Fatalf("Rejected = %d, want 2", got)
	}
	// Freeing a slot makes room again.
	if code, _ := e.call(http.MethodDelete, "/v1/sessions/"+a, ""); code != http.StatusNoContent {
		t.Fatalf("DELETE: %d", code)
	}
	e.create("")
}

func TestSessionsListGetDelete(t *testing.T) {
	e := newEnv(t, nil)
	code, b := e.call(http.MethodGet, "/v1/sessions", "")
	if code != http.StatusOK || !strings.Contains(string(b), `"sessions": []`) {
		t.Fatalf("empty list: %d %s; want an empty array, not null", code, b)
	}
	a := e.create("")
	e.clock.Advance(time.Second) // the list is oldest first
	bID := e.create(`{"preset":"chrome-latest"}`)

	code, b = e.call(http.MethodGet, "/v1/sessions", "")
	if code != http.StatusOK {
		t.Fatalf("GET /v1/sessions: %d %s", code, b)
	}
	var list struct {
		Sessions []session.SessionStats `json:"sessions"`
		Stats    session.ManagerStats   `json:"stats"`
	}
	if err := json.Unmarshal(b, &list); err != nil {
		t.Fatal(err)
	}
	if len(list.Sessions) != 2 || list.Sessions[0].ID != a || list.Sessions[1].ID != bID {
		t.Fatalf("list %+v, want %s then %s", list.Sessions, a, bID)
	}
	if list.Stats.Active != 2 || list.Stats.Created != 2 {
		t.Fatalf("stats %+v", list.Stats)
	}

	code, b = e.call(http.MethodGet, "/v1/sessions/"+a, "")
	var st session.SessionStats
	if code != http.StatusOK || json.Unmarshal(b, &st) != nil || st.ID != a || !st.Active || st.Preset != "chrome-latest" {
		t.Fatalf("GET /v1/sessions/%s: %d %s", a, code, b)
	}

	for _, step := range []struct {
		method, path string
		code         int
		errText      string
	}{
		{http.MethodDelete, "/v1/sessions/" + a, http.StatusNoContent, ""},
		{http.MethodDelete, "/v1/sessions/" + a, http.StatusNotFound, "session not found"},
		{http.MethodGet, "/v1/sessions/" + a, http.StatusNotFound, "session not found"},
		{http.MethodGet, "/v1/sessions/" + a + "/state", http.StatusNotFound, "session not found"},
		{http.MethodGet, "/v1/sessions/" + bID, http.StatusOK, ""},
		{http.MethodGet, "/v1/sessions/a%20b", http.StatusBadRequest, "invalid session ID"},
		{http.MethodDelete, "/v1/sessions/a%20b", http.StatusBadRequest, "invalid session ID"},
		{http.MethodGet, "/v1/nothing", http.StatusNotFound, "no such endpoint"},
		{http.MethodPut, "/v1/sessions/" + bID, http.StatusMethodNotAllowed, "method PUT not allowed"},
	} {
		code, b := e.call(step.method, step.path, "")
		if code != step.code {
			t.Fatalf("%s %s: %d, want %d; body %s", step.method, step.path, code, step.code, b)
		}
		if step.code == http.StatusNoContent && len(b) != 0 {
			t.Fatalf("%s %s: 204 with body %q", step.method, step.path, b)
		}
		if step.errText != "" {
			if msg := errorText(t, b); !strings.Contains(msg, step.errText) {
				t.Fatalf("%s %s: error %q, want %q", step.method, step.path, msg, step.errText)
			}
		}
	}
	if n := e.srv.Manager().SessionCount(); n != 1 {
		t.Fatalf("SessionCount = %d, want 1", n)
	}
}

func TestStateAndRestore(t *testing.T) {
	e := newEnv(t, nil)
	id := e.create(`{"headers":{"X-Team":"blue"}}`)
	c := e.proxyClient(id, token)
	if got := cookiesVia(t, c, e.backend.URL+"/cookies/set?who=a&n=1"); got["who"] != "a" || got["n"] != "1" {
		t.Fatalf("cookies after set: %v", got)
	}

	code, state := e.call(http.MethodGet, "/v1/sessions/"+id+"/state", "")
	if code != http.StatusOK {
		t.Fatalf("GET state: %d %s", code, state)
	}
	// Two requests so far: /cookies/set and the redirect the session
	// followed to /cookies.
	var st session.SessionState
	if err := json.Unmarshal(state, &st); err != nil {
		t.Fatal(err)
	}
	if st.ID != id || len(st.Cookies) != 2 || st.Config == nil || st.Config.Headers["X-Team"] != "blue" || st.RequestCount != 2 {
		t.Fatalf("state %s", state)
	}

	if code, b := e.call(http.MethodPost, "/v1/sessions/restore", string(state)); code != http.StatusConflict {
		t.Fatalf("restore while it exists: %d %s, want 409", code, b)
	}
	if code, _ := e.call(http.MethodDelete, "/v1/sessions/"+id, ""); code != http.StatusNoContent {
		t.Fatalf("DELETE: %d", code)
	}
	if code, _, _ := get(t, c, e.backend.URL+"/cookies", nil); code != http.StatusNotFound {
		t.Fatalf("proxy to a deleted session: %d, want 404", code)
	}
	code, b := e.call(http.MethodPost, "/v1/sessions/restore", string(state))
	if code != http.StatusCreated {
		t.Fatalf("restore: %d %s", code, b)
	}
	var out struct{ ID string }
	if err := json.Unmarshal(b, &out); err != nil || out.ID != id {
		t.Fatalf("restore gave %s, want id %s", b, id)
	}
	if got := cookiesVia(t, c, e.backend.URL+"/cookies"); len(got) != 2 || got["who"] != "a" || got["n"] != "1" {
		t.Fatalf("cookies after restore: %v", got)
	}
	if s := e.stats(id); s.RequestCount != 3 {
		t.Fatalf("RequestCount after restore and one request = %d, want 3", s.RequestCount)
	}
}

func TestRestoreGarbage(t *testing.T) {
	e := newEnv(t, nil)
	for _, tc := range []struct {
		name, body, errText string
	}{
		{"empty", "", "invalid session state"},
		{"not JSON", "garbage", "invalid session state"},
		{"no version", `{"id":"abc"}`, "no version"},
		{"future version", `{"version":999,"id":"abc"}`, "version 999"},
		{"bad id", `{"version":1,"id":"a b"}`, "invalid session state"},
		{"unknown field", `{"version":1,"id":"abc","x":1}`, "invalid session state"},
		{"bad config", `{"version":1,"id":"abc","config":{"timeout":-1}}`, "timeout"},
		{"trailing", `{"version":1,"id":"abc"} x`, "invalid session state"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			code, b := e.call(http.MethodPost, "/v1/sessions/restore", tc.body)
			if code != http.StatusBadRequest {
				t.Fatalf("status %d, want 400; body %s", code, b)
			}
			if msg := errorText(t, b); !strings.Contains(msg, tc.errText) {
				t.Fatalf("error %q, want %q", msg, tc.errText)
			}
		})
	}
	if n := e.srv.Manager().SessionCount(); n != 0 {
		t.Fatalf("SessionCount = %d after bad restores", n)
	}
}

func TestHealthz(t *testing.T) {
	e := newEnv(t, nil)
	e.create("")
	for _, auth := range []string{"", "Bearer wrong"} {
		code, b, h := e.api(http.MethodGet, "/healthz", auth, nil)
		var out struct {
			Status   string `json:"status"`
			Sessions int    `json:"sessions"`
		}
		if code != http.StatusOK || json.Unmarshal(b, &out) != nil || out.Status != "ok" || out.Sessions != 1 {
			t.Fatalf("healthz with %q: %d %s", auth, code, b)
		}
		if ct := h.Get("Content-Type"); ct != "application/json" {
			t.Fatalf("Content-Type %q", ct)
		}
	}
}

func TestAPIAuth(t *testing.T) {
	e := newEnv(t, nil)
	id := e.create("")
	endpoints := []struct{ method, path string }{
		{http.MethodPost, "/v1/sessions"},
		{http.MethodGet, "/v1/sessions"},
		{http.MethodGet, "/v1/sessions/" + id},
		{http.MethodDelete, "/v1/sessions/" + id},
		{http.MethodGet, "/v1/sessions/" + id + "/state"},
		{http.MethodPost, "/v1/sessions/restore"},
		{http.MethodGet, "/metrics"},
	}
	auths := []string{"", "Bearer", "Bearer ", "Bearer wrong", "Bearer " + token + "0", "Bearer " + token[:len(token)-1], "Basic " + token, token, "Bearer" + token}
	for _, ep := range endpoints {
		for _, auth := range auths {
			code, b, h := e.api(ep.method, ep.path, auth, strings.NewReader("{}"))
			if code != http.StatusUnauthorized {
				t.Errorf("%s %s with Authorization %q: %d, want 401", ep.method, ep.path, auth, code)
				continue
			}
			if h.Get("WWW-Authenticate") == "" {
				t.Errorf("%s %s: 401 without WWW-Authenticate", ep.method, ep.path)
			}
			if msg := errorText(t, b); !strings.Contains(msg, "token") {
				t.Errorf("%s %s: error %q", ep.method, ep.path, msg)
			}
		}
	}
	if n := e.srv.Manager().SessionCount(); n != 1 {
		t.Fatalf("SessionCount = %d: an unauthorised call changed the registry", n)
	}
	// The scheme is case-insensitive and spaces around the token are fine.
	for _, auth := range []string{"Bearer " + token, "bearer " + token, "BEARER  " + token + " "} {
		if code, b, _ := e.api(http.MethodGet, "/v1/sessions", auth, nil); code != http.StatusOK {
			t.Errorf("Authorization %q: %d %s", auth, code, b)
		}
	}
}

func TestMetrics(t *testing.T) {
	e := newEnv(t, nil, session.WithMaxSessions(2))
	id := e.create("")
	e.create("")
	if code, _ := e.call(http.MethodPost, "/v1/sessions", ""); code != http.StatusTooManyRequests {
		t.Fatalf("create at the cap: %d", code)
	}
	c := e.proxyClient(id, token)
	if code, b, _ := get(t, c, e.backend.URL+"/get", nil); code != http.StatusOK {
		t.Fatalf("proxy: %d %s", code, b)
	}
	if code, _, _ := get(t, c, e.backend.URL+"/status/503", nil); code != http.StatusServiceUnavailable {
		t.Fatalf("proxy /status/503: %d", code)
	}
	if code, _, _ := get(t, e.proxyClient("NOSUCHSESSION", token), e.backend.URL+"/get", nil); code != http.StatusNotFound {
		t.Fatalf("unknown session: %d", code)
	}
	e.srv.Manager().Sweep()

	m := e.metrics()
	for name, want := range map[string]string{
		"roster_sessions_active":                   "2",
		"roster_sessions_created_total":            "2",
		"roster_sessions_closed_total":             "0",
		"roster_sessions_evicted_total":            "0",
		"roster_sessions_rejected_total":           "1",
		"roster_requests_in_flight":                "0",
		`roster_proxy_requests_total{class="2xx"}`: "1",
		`roster_proxy_requests_total{class="4xx"}`: "1",
		`roster_proxy_requests_total{class="5xx"}`: "1",
		`roster_proxy_requests_total{class="1xx"}`: "0",
		"roster_sweep_duration_seconds_count":      "1",
	} {
		if got, ok := m[name]; !ok || got != want {
			t.Errorf("%s = %q (listed: %v), want %s", name, got, ok, want)
		}
	}
	if _, ok := m[`roster_sweep_duration_seconds_bucket{le="+Inf"}`]; !ok {
		t.Errorf("roster_sweep_duration_seconds is not a histogram: %v", m)
	}
}

// The in-flight gauge counts a request while it runs.
func TestMetricsInFlight(t *testing.T) {
	release := make(chan struct{})
	arrived := make(chan struct{}, 1)
	e := newEnv(t, map[string]http.HandlerFunc{"/hold": func(w http.ResponseWriter, r *http.Request) {
		arrived <- struct{}{}
		select {
		case <-release:
		case <-r.Context().Done():
		}
	}})
	id := e.create("")
	done := make(chan int, 1)
	go func() {
		resp, err := e.proxyClient(id, token).Get(e.backend.URL + "/hold")
		if err != nil {
			done <- 0
			return
		}
		resp.Body.Close()
		done <- resp.StatusCode
	}()
	select {
	case <-arrived:
	case <-time.After(10 * time.Second):
		close(release)
		t.Fatal("the request never reached the backend")
	}
	got := e.metrics()["roster_requests_in_flight"]
	close(release)
	if code := <-done; code != http.StatusOK {
		t.Fatalf("held request: %d", code)
	}
	if got != "1" {
		t.Fatalf("roster_requests_in_flight = %q during a request, want 1", got)
	}
	waitFor(t, "in flight back to 0", func() bool { return e.srv.Manager().Stats().InFlight == 0 })
}

func TestEvictionOverAPI(t *testing.T) {
	e := newEnv(t, nil, session.WithSessionTimeout(time.Minute))
	id := e.create("")
	keep := e.create("")
	c := e.proxyClient(id, token)
	if code, b, _ := get(t, c, e.backend.URL+"/get", nil); code != http.StatusOK {
		t.Fatalf("proxy: %d %s", code, b)
	}

	e.clock.Advance(45 * time.Second)
	if n := e.srv.Manager().Sweep(); n != 0 {
		t.Fatalf("Sweep before the timeout evicted %d", n)
	}
	// keep is used now; id is not.
	if code, _, _ := get(t, e.proxyClient(keep, token), e.backend.URL+"/get", nil); code != http.StatusOK {
		t.Fatal("proxy through keep failed")
	}
	e.clock.Advance(30 * time.Second)
	if n := e.srv.Manager().Sweep(); n != 1 {
		t.Fatalf("Sweep past the timeout evicted %d, want 1", n)
	}

	code, b := e.call(http.MethodGet, "/v1/sessions/"+id, "")
	if code != http.StatusNotFound || !strings.Contains(errorText(t, b), id) {
		t.Fatalf("GET evicted session: %d %s, want 404 naming it", code, b)
	}
	code, pb, h := get(t, c, e.backend.URL+"/get", nil)
	if code != http.StatusNotFound || !strings.Contains(string(pb), id) || !strings.HasPrefix(h.Get("Content-Type"), "text/plain") {
		t.Fatalf("proxy through evicted session: %d %q (%s), want 404 text naming it", code, pb, h.Get("Content-Type"))
	}
	if code, _ := e.call(http.MethodGet, "/v1/sessions/"+keep, ""); code != http.StatusOK {
		t.Fatalf("the used session is gone: %d", code)
	}
	if got := e.metrics()["roster_sessions_evicted_total"]; got != "1" {
		t.Fatalf("roster_sessions_evicted_total = %q, want 1", got)
	}
}

// Reading a session's stats or state over the API is not a use of the
// session: it must neither reset its idle time nor keep it from eviction.
func TestAPIReadsDoNotTouch(t *testing.T) {
	e := newEnv(t, nil, session.WithSessionTimeout(time.Minute))
	id := e.create("")
	e.clock.Advance(40 * time.Second)

	code, b := e.call(http.MethodGet, "/v1/sessions/"+id, "")
	var st session.SessionStats
	if code != http.StatusOK || json.Unmarshal(b, &st) != nil {
		t.Fatalf("GET: %d %s", code, b)
	}
	if st.IdleTime != 40*time.Second {
		t.Errorf("GET /v1/sessions/{id} reports idleTime %v after 40 s idle, want 40s", st.IdleTime)
	}
	if code, _ := e.call(http.MethodGet, "/v1/sessions/"+id+"/state", ""); code != http.StatusOK {
		t.Fatalf("GET state: %d", code)
	}
	e.clock.Advance(30 * time.Second) // 70 s since its last real use
	if n := e.srv.Manager().Sweep(); n != 1 {
		t.Errorf("Sweep 70 s after the last use (timeout 1m) evicted %d, want 1: the API reads counted as uses", n)
	}
}
