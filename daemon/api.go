package daemon

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/rosterhq/roster/protocol"
	"github.com/rosterhq/roster/session"
)

func (s *Server) routes() *http.ServeMux {
	mux := http.NewServeMux()
	version := Version()
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		writeJSON(w, http.StatusOK, map[string]any{"status": "ok", "sessions": s.m.SessionCount(), "version": version})
	})
	mux.Handle("GET /metrics", s.authed(promhttp.HandlerFor(s.gatherer, promhttp.HandlerOpts{}).ServeHTTP))
	mux.HandleFunc("POST /v1/sessions", s.authed(s.createSession))
	mux.HandleFunc("GET /v1/sessions", s.authed(s.listSessions))
	mux.HandleFunc("POST /v1/sessions/restore", s.authed(s.restoreSession))
	mux.HandleFunc("GET /v1/sessions/{id}", s.authed(s.getSession))
	mux.HandleFunc("DELETE /v1/sessions/{id}", s.authed(s.deleteSession))
	mux.HandleFunc("GET /v1/sessions/{id}/state", s.authed(s.sessionState))
	mux.HandleFunc("GET /v1/ca.pem", s.authed(s.caPEM))
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Connection", "close") // the body, if any, is not read
		defer closeAfter(w)
		if allow := allowed(mux, r); allow != "" {
			w.Header().Set("Allow", allow)
			writeError(w, http.StatusMethodNotAllowed, fmt.Sprintf("method %s not allowed on %s: use %s", r.Method, r.URL.Path, allow))
			return
		}
		writeError(w, http.StatusNotFound, fmt.Sprintf("no such endpoint: %s %s", r.Method, r.URL.Path))
	})
	return mux
}

// allowed returns the methods that mux routes for r's path to a handler
// other than the catch-all, comma-separated, or "" for none.
func allowed(mux *http.ServeMux, r *http.Request) string {
	var out []string
	for _, m := range []string{http.MethodGet, http.MethodHead, http.MethodPost, http.MethodPut, http.MethodPatch, http.MethodDelete} {
		probe := &http.Request{Method: m, URL: r.URL, Host: r.Host, Header: http.Header{}}
		if _, pattern := mux.Handler(probe); pattern != "/" && pattern != "" {
			out = append(out, m)
		}
	}
	return strings.Join(out, ", ")
}

// authed requires "Authorization: Bearer TOKEN".
func (s *Server) authed(h http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		scheme, token, _ := strings.Cut(r.Header.Get("Authorization"), " ")
		if !asciiEqualFold(scheme, "Bearer") || !s.tokenOK(strings.TrimSpace(token)) {
			w.Header().Set("WWW-Authenticate", `Bearer realm="rosterd"`)
			w.Header().Set("Connection", "close") // see closeAfter
			writeError(w, http.StatusUnauthorized, "missing or wrong token: send Authorization: Bearer TOKEN")
			closeAfter(w)
			return
		}
		h(w, r)
	}
}

func (s *Server) createSession(w http.ResponseWriter, r *http.Request) {
	body, ok := s.readBody(w, r)
	if !ok {
		return
	}
	cfg, err := protocol.Decode(body)
	if err != nil {
		writeError(w, http.StatusBadRequest, err.Error())
		return
	}
	if cfg != nil && s.isSelf(r.Context(), cfg.Proxy) {
		writeError(w, http.StatusBadRequest, fmt.Sprintf("proxy %q is this rosterd: every request would come back here", redactURL(cfg.Proxy)))
		return
	}
	id, err := s.m.CreateSession(cfg)
	if err != nil {
		writeError(w, statusOf(err), err.Error())
		return
	}
	writeJSON(w, http.StatusCreated, map[string]string{"id": id})
}

func (s *Server) listSessions(w http.ResponseWriter, _ *http.Request) {
	list := s.m.ListSessions()
	if list == nil {
		list = []session.SessionStats{}
	}
	writeJSON(w, http.StatusOK, map[string]any{"sessions": list, "stats": s.m.Stats()})
}

func (s *Server) getSession(w http.ResponseWriter, r *http.Request) {
	sess, err := s.m.PeekSession(r.PathValue("id"))
	if err != nil {
		writeError(w, statusOf(err), err.Error())
		return
	}
	writeJSON(w, http.StatusOK, sess.Stats())
}

func (s *Server) deleteSession(w http.ResponseWriter, r *http.Request) {
	if err := s.m.CloseSession(r.PathValue("id")); err != nil {
		writeError(w, statusOf(err), err.Error())
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

func (s *Server) sessionState(w http.ResponseWriter, r *http.Request) {
	sess, err := s.m.PeekSession(r.PathValue("id"))
	if err != nil {
		writeError(w, statusOf(err), err.Error())
		return
	}
	writeJSON(w, http.StatusOK, sess.State())
}

func (s *Server) restoreSession(w http.ResponseWriter, r *http.Request) {
	body, ok := s.readBody(w, r)
	if !ok {
		return
	}
	// Refused before it is restored: a restore takes a slot, runs the
	// hooks and, with a store, writes to it.
	if st, err := protocol.DecodeState(body); err == nil && st.Config != nil && s.isSelf(r.Context(), st.Config.Proxy) {
		writeError(w, http.StatusBadRequest, fmt.Sprintf("proxy %q is this rosterd: every request would come back here", redactedURL(st.Config.Proxy)))
		return
	}
	id, err := s.m.RestoreSession(body)
	if err != nil {
		writeError(w, statusOf(err), err.Error())
		return
	}
	writeJSON(w, http.StatusCreated, map[string]string{"id": id})
}

// statusOf maps roster's errors to HTTP statuses.
func statusOf(err error) int {
	switch {
	case errors.Is(err, session.ErrStoreUnavailable):
		return http.StatusServiceUnavailable
	case errors.Is(err, session.ErrSessionLeased):
		return http.StatusLocked // driven by another process of the fleet
	case errors.Is(err, session.ErrMaxSessions):
		return http.StatusTooManyRequests
	case errors.Is(err, session.ErrSessionNotFound):
		return http.StatusNotFound
	case errors.Is(err, session.ErrSessionExists):
		return http.StatusConflict
	case errors.Is(err, session.ErrInvalidID), errors.Is(err, session.ErrInvalidConfig), errors.Is(err, protocol.ErrInvalidState):
		return http.StatusBadRequest
	case errors.Is(err, session.ErrManagerClosed):
		return http.StatusServiceUnavailable
	}
	return http.StatusInternalServerError
}

// readBody reads an API request body of at most MaxBodyBytes within the
// body timeout, answering 413 for a larger one and 400 for one that broke
// off or came too slowly.
func (s *Server) readBody(w http.ResponseWriter, r *http.Request) ([]byte, bool) {
	rc := http.NewResponseController(w)
	deadline := false
	if s.lim.body > 0 {
		// Without a server of ours (a test's ResponseRecorder) there is
		// no deadline to set, and nothing to guard.
		deadline = rc.SetReadDeadline(time.Now().Add(s.lim.body)) == nil
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, MaxBodyBytes))
	if err == nil && deadline {
		_ = rc.SetReadDeadline(time.Time{})
	}
	if err != nil {
		w.Header().Set("Connection", "close")
		defer closeAfter(w)
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			writeError(w, http.StatusRequestEntityTooLarge, fmt.Sprintf("body over %d bytes", MaxBodyBytes))
		} else {
			writeError(w, http.StatusBadRequest, "reading body: "+err.Error())
		}
		return nil, false
	}
	return body, true
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	_ = enc.Encode(v)
}

func writeError(w http.ResponseWriter, status int, msg string) {
	writeJSON(w, status, map[string]string{"error": msg})
}

// redactURL hides a URL's password, if it parses.
func redactURL(s string) string {
	if u, err := url.Parse(s); err == nil {
		return u.Redacted()
	}
	return "(unparsable)"
}

// redactedURL is raw with any password hidden, for messages.
func redactedURL(raw string) string {
	if u, err := url.Parse(raw); err == nil {
		return u.Redacted()
	}
	return raw
}
