package codec_test

import (
	"compress/gzip"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"

	"github.com/rosterhq/roster/codec"
)

func ExampleNewReader() {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Encoding", "gzip")
		zw := gzip.NewWriter(w)
		fmt.Fprint(zw, "hello from a gzip body")
		zw.Close()
	}))
	defer srv.Close()
	tr := &http.Transport{}
	defer tr.CloseIdleConnections()

	req, err := http.NewRequest(http.MethodGet, srv.URL, nil)
	if err != nil {
		panic(err)
	}
	// A browser's Accept-Encoding: net/http leaves the body encoded.
	req.Header.Set("Accept-Encoding", "gzip, deflate, br, zstd")
	resp, err := (&http.Client{Transport: tr}).Do(req)
	if err != nil {
		panic(err)
	}
	body, err := codec.NewReader(resp.Header.Get("Content-Encoding"), resp.Body)
	if err != nil {
		resp.Body.Close()
		panic(err)
	}
	defer body.Close() // closes resp.Body too
	b, err := io.ReadAll(body)
	if err != nil {
		panic(err)
	}
	fmt.Println(resp.Uncompressed, string(b))
	// Output: false hello from a gzip body
}
