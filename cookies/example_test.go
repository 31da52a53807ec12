package cookies_test

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"time"

	"github.com/rosterhq/roster/cookies"
	"github.com/rosterhq/roster/protocol"
)

// A session's cookies are saved as JSON and restored into a new jar, which
// then sends what the old one would have.
func ExampleJar_Export() {
	now := func() time.Time { return time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC) }
	jar := cookies.New(&cookies.Options{Now: now})
	u, _ := url.Parse("https://www.example.com/account/login")
	resp := &http.Response{Header: http.Header{"Set-Cookie": {
		"sid=abc123; Path=/; Secure; HttpOnly; SameSite=Lax",
		"lang=en; Domain=example.com; Max-Age=3600",
		"tracker=1; Domain=com", // for a public suffix: ignored
	}}}
	jar.SetCookies(u, resp.Cookies())

	saved, _ := json.MarshalIndent(jar.Export(), "", "  ")
	fmt.Println(string(saved))

	var states []protocol.CookieState
	_ = json.Unmarshal(saved, &states)
	restored := cookies.New(&cookies.Options{Now: now})
	if err := restored.Import(states); err != nil {
		fmt.Println(err)
	}
	home, _ := url.Parse("https://www.example.com/account/")
	fmt.Println(restored.Cookies(home))
	// Output:
	// [
	//   {
	//     "name": "lang",
	//     "value": "en",
	//     "domain": "example.com",
	//     "path": "/account",
	//     "expires": "2026-03-01T13:00:00Z",
	//     "created": "2026-03-01T12:00:00.000000001Z",
	//     "lastAccess": "2026-03-01T12:00:00Z"
	//   },
	//   {
	//     "name": "sid",
	//     "value": "abc123",
	//     "domain": "www.example.com",
	//     "path": "/",
	//     "hostOnly": true,
	//     "secure": true,
	//     "httpOnly": true,
	//     "sameSite": "Lax",
	//     "created": "2026-03-01T12:00:00Z",
	//     "lastAccess": "2026-03-01T12:00:00Z"
	//   }
	// ]
	// [lang=en sid=abc123]
}
