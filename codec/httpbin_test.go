package codec

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strconv"
	"testing"

	"github.com/mccutchen/go-httpbin/v2/httpbin"
)

// TestAgainstHTTPBin fetches go-httpbin's encoded endpoints over a real
// connection on 127.0.0.1, with a transport that does not decode anything
// (DisableCompression) and a browser's Accept-Encoding, and decodes the
// bodies with NewReader.
//
// go-httpbin v2.26.0 answers /brotli with 501 Not Implemented and has no
// /zstd; for those two the test server serves httpbin's own /get response,
// encoded here, under /encoded/{coding}. If a later go-httpbin serves them,
// the test decodes its answer instead.
func TestAgainstHTTPBin(t *testing.T) {
	bin := httpbin.New()
	mux := http.NewServeMux()
	mux.Handle("/", bin)
	mux.HandleFunc("/encoded/{coding}", func(w http.ResponseWriter, r *http.Request) {
		rec := httptest.NewRecorder()
		req := r.Clone(r.Context())
		req.URL.Path = "/get"
		bin.ServeHTTP(rec, req)
		body, err := encodeBytes(r.PathValue("coding"), rec.Body.Bytes())
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		w.Header().Set("Content-Type", "application/json; charset=utf-8")
		w.Header().Set("Content-Encoding", r.PathValue("coding"))
		w.Header().Set("Content-Length", strconv.Itoa(len(body)))
		_, _ = w.Write(body)
	})
	srv := httptest.NewServer(mux) // listens on 127.0.0.1
	defer srv.Close()
	tr := &http.Transport{DisableCompression: true}
	defer tr.CloseIdleConnections()
	client := &http.Client{Transport: tr}

	get := func(path string) *http.Response {
		t.Helper()
		req, err := http.NewRequest(http.MethodGet, srv.URL+path, nil)
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("User-Agent", "roster-codec-test/1.0")
		req.Header.Set("Accept-Encoding", "gzip, deflate, br, zstd")
		resp, err := client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		return resp
	}

	for _, tc := range []struct {
		path, fallback, coding, flag string
	}{
		{"/gzip", "", "gzip", "gzipped"},
		{"/deflate", "", "deflate", "deflated"},
		{"/brotli", "/encoded/br", "br", ""},
		{"/zstd", "/encoded/zstd", "zstd", ""},
	} {
		t.Run(tc.path, func(t *testing.T) {
			resp := get(tc.path)
			if resp.StatusCode != http.StatusOK && tc.fallback != "" {
				t.Logf("go-httpbin answers %s with %s; decoding its /get encoded as %s instead", tc.path, resp.Status, tc.coding)
				resp.Body.Close()
				resp = get(tc.fallback)
			}
			defer resp.Body.Close()
			if resp.StatusCode != http.StatusOK {
				t.Fatalf("GET %s: %s", resp.Request.URL.Path, resp.Status)
			}
			ce := resp.Header.Get("Content-Encoding")
			if ce != tc.coding || resp.Uncompressed {
				t.Fatalf("Content-Encoding %q, Uncompressed %v; want %q left for us to decode", ce, resp.Uncompressed, tc.coding)
			}
			body, err := NewReader(ce, resp.Body)
			if err != nil {
				t.Fatal(err)
			}
			defer body.Close()
			var got struct {
				Headers  map[string][]string `json:"headers"`
				Method   string              `json:"method"`
				Gzipped  bool                `json:"gzipped"`
				Deflated bool                `json:"deflated"`
			}
			if err := json.NewDecoder(body).Decode(&got); err != nil {
				t.Fatalf("decoding the JSON of %s: %v", tc.path, err)
			}
			if got.Method != http.MethodGet {
				t.Errorf("method %q, want GET", got.Method)
			}
			if ua := got.Headers["User-Agent"]; len(ua) != 1 || ua[0] != "roster-codec-test/1.0" {
				t.Errorf("httpbin saw User-Agent %q", ua)
			}
			switch tc.flag {
			case "gzipped":
				if !got.Gzipped {
					t.Error(`"gzipped" is not true`)
				}
			case "deflated":
				if !got.Deflated {
					t.Error(`"deflated" is not true`)
				}
			}
		})
	}
}
