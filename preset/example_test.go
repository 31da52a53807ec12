package preset_test

import (
	"errors"
	"fmt"
	"net/http"

	"github.com/rosterhq/roster/preset"
)

func ExampleLookup() {
	p, err := preset.Lookup("chrome-latest")
	if err != nil {
		panic(err)
	}
	fmt.Println(p.Name, p.Browser, p.Version, p.Platform, p.Mobile)

	_, err = preset.Lookup("chrome-99")
	fmt.Println(errors.Is(err, preset.ErrUnknownPreset))
	// Output:
	// chrome-158-windows chrome 158 windows false
	// true
}

func ExamplePreset_Apply() {
	p, err := preset.Lookup("firefox-157-linux")
	if err != nil {
		panic(err)
	}
	req, err := http.NewRequest(http.MethodGet, "https://example.com/", nil)
	if err != nil {
		panic(err)
	}
	req.Header.Set("Accept-Language", "de-DE,de;q=0.9") // the request's own value wins
	p.Apply(req.Header)
	fmt.Println(req.Header.Get("User-Agent"))
	fmt.Println(req.Header.Get("Accept-Language"))
	fmt.Println(req.Header.Get("Accept-Encoding"))
	// Output:
	// Mozilla/5.0 (X11; Linux x86_64; rv:157.0) Gecko/20100101 Firefox/157.0
	// de-DE,de;q=0.9
	// gzip, deflate, br, zstd
}

func ExampleRegister() {
	err := preset.Register(preset.Preset{
		Name:    "example-crawler",
		Browser: "crawler",
		Version: "1.0",
		Headers: []preset.Header{
			{Name: "User-Agent", Value: "ExampleCrawler/1.0 (+https://example.com/bot)"},
			{Name: "Accept", Value: "text/html"},
		},
	})
	fmt.Println(err)
	p, _ := preset.Lookup("example-crawler")
	fmt.Println(p.Headers[0].Value)

	err = preset.Register(preset.Preset{Name: "bad name", Headers: p.Headers})
	fmt.Println(errors.Is(err, preset.ErrInvalidPreset), err)
	// Output:
	// <nil>
	// ExampleCrawler/1.0 (+https://example.com/bot)
	// true invalid preset: name "bad name" has byte 0x20 at offset 3; a preset name must be printable ASCII without spaces
}

// ExampleParse derives a preset of your own from a shipped identity: your
// headers, Chrome's TLS ClientHello and HTTP/2.
func ExampleParse() {
	p, err := preset.Parse([]byte(`{
		"name": "chrome-156-linux-de",
		"browser": "chrome",
		"version": "156",
		"platform": "linux",
		"headers": [
			["User-Agent", "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/156.0.0.0 Safari/537.36"],
			["Accept-Language", "de-DE,de;q=0.9"]
		],
		"wire": "chrome"
	}`))
	if err != nil {
		panic(err)
	}
	if err := preset.Register(p); err != nil {
		panic(err)
	}
	got, _ := preset.Lookup("chrome-156-linux-de")
	fmt.Println(got.Fingerprinted(), got.TLS.ShuffleExtensions)
	fmt.Println(got.HTTP2.Akamai())

	_, err = preset.Parse([]byte(`{"name": "x", "headers": [], "wire": "opera"}`))
	fmt.Println(err)
	// Output:
	// true true
	// 1:65536;2:0;4:6291456;6:262144|15663105|0|m,a,s,p
	// invalid preset: wire "opera": no such identity (the shipped ones are chrome, firefox and safari)
}
