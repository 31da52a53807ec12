package bench

import (
	"encoding/base64"
	"encoding/pem"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"testing"
)

// serverProcess puts the server of BenchmarkRequest and of the
// fingerprinted workloads in a child process (this test binary again,
// BENCH_SERVER_CHILD set): cpu-ns/op is then the client's CPU alone, and
// client and server do not share one Go scheduler, which in process turns
// every request into a hand-off between two goroutines of one runtime.
var serverProcess = flag.Bool("server-process", false, "run the workloads' loopback server in a child process")

// serverChild is the server process: kind "plain" (http://), "h1" (https,
// http/1.1 only) or "h2" (https, HTTP/2 by ALPN). It answers every request
// with five bytes, prints its URL and certificate (PEM, base64; "-" for
// plain) on one line, and serves until its stdin ends.
func serverChild(kind string) {
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.WriteString(w, "hello")
	})
	if kind == "plain" {
		srv := httptest.NewServer(h)
		defer srv.Close()
		fmt.Println(srv.URL, "-")
	} else {
		srv := startTLSServer(kind == "h2")
		defer srv.Close()
		cert := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: srv.Certificate().Raw})
		fmt.Println(srv.URL, base64.StdEncoding.EncodeToString(cert))
	}
	_, _ = io.Copy(io.Discard, os.Stdin)
}

// startServerProcess starts serverChild(kind) and returns its URL, its
// certificate (nil for plain) and the func that ends it.
func startServerProcess(b testing.TB, kind string) (url string, certPEM []byte, stop func()) {
	cmd := exec.Command(os.Args[0])
	cmd.Env = append(os.Environ(), "BENCH_SERVER_CHILD="+kind)
	cmd.Stderr = os.Stderr
	stdin, err := cmd.StdinPipe()
	if err != nil {
		b.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		b.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		b.Fatal(err)
	}
	stop = func() {
		stdin.Close()
		_ = cmd.Wait()
	}
	var certB64 string
	if _, err := fmt.Fscan(stdout, &url, &certB64); err != nil {
		stop()
		b.Fatalf("the server process: %v", err)
	}
	if certB64 != "-" {
		if certPEM, err = base64.StdEncoding.DecodeString(certB64); err != nil {
			stop()
			b.Fatal(err)
		}
	}
	return url, certPEM, stop
}
