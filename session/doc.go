// Package session is roster's Manager and Session: a registry of HTTP
// client sessions, built on the generic registry core of packages shard,
// evict and idgen.
//
// A Manager creates sessions, hands them out by ID to any number of
// goroutines, enforces a hard cap with an atomic counter, evicts idle
// sessions lazily with one sweeper goroutine, and closes everything at
// Shutdown. A Session is one identity, whose lifecycle the Manager tracks:
// its last use, the requests it has in flight (never evicted under one), and
// its closing.
//
// A Session's requests go out with its preset's identity: with a browser
// preset, TLS through uTLS with the browser's ClientHello (fingerprint.go),
// HTTP/2 through fhttp, and HTTP/1.1, plain or over TLS, through the
// package's own client (h1.go), which writes the browser's header order
// and spelling without fhttp's costs; with preset "go", through net/http.
// The first https request to a server dials before it is sent, so that
// ALPN picks the client that carries it.
//
// Most programs import the top-level package roster, which re-exports what
// they need from here.
package session
