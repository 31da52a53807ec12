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
