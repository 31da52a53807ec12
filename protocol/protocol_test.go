package protocol

import (
	"encoding/json"
	"errors"
	"reflect"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func ptr[T any](v T) *T { return &v }

func TestValidate(t *testing.T) {
	tests := []struct {
		name string
		cfg  *SessionConfig
		want string // part of the message; empty means valid
	}{
		{"nil", nil, ""},
		{"zero", &SessionConfig{}, ""},
		{"full", &SessionConfig{
			Preset: "chrome-131-windows", BaseURL: "https://example.com/api/", Proxy: "socks5://u:p@127.0.0.1:1080",
			Timeout: 30000, FollowRedirects: ptr(true), MaxRedirects: 5, RetryEnabled: true, MaxRetries: 3,
			RetryWaitMin: 100, RetryWaitMax: 2000, RetryOnStatus: []int{429, 503}, ForceHTTP2: true,
			LocalAddress: "::1", ConnectTo: map[string]string{"example.com:443": "127.0.0.1:8443"},
			Headers: map[string]string{"X-Trace": "1"},
		}, ""},
		{"redirects off", &SessionConfig{FollowRedirects: ptr(false)}, ""},
		{"preset with space", &SessionConfig{Preset: "chrome latest"}, `preset "chrome latest"`},
		{"relative base URL", &SessionConfig{BaseURL: "/api"}, "want an absolute http or https URL"},
		{"ftp base URL", &SessionConfig{BaseURL: "ftp://x"}, "baseURL"},
		{"bad base URL", &SessionConfig{BaseURL: "http://[::1"}, "baseURL"},
		{"proxy scheme", &SessionConfig{Proxy: "ftp://h:1"}, `scheme "ftp"`},
		{"proxy without host", &SessionConfig{Proxy: "http://"}, "no host"},
		{"proxy password hidden", &SessionConfig{Proxy: "ftp://user:secret@h:1"}, "user:xxxxx@h:1"},
		{"unparseable proxy", &SessionConfig{Proxy: "http://u:secret@[::1"}, "not a valid URL"},
		{"negative timeout", &SessionConfig{Timeout: -1}, "timeout -1 ms"},
		{"timeout of a day", &SessionConfig{Timeout: MaxTimeoutMs}, ""},
		{"timeout over a day", &SessionConfig{Timeout: MaxTimeoutMs + 1}, "timeout 86400001 ms: want 0 to 86400000 ms"},
		{"timeout that wraps a Duration", &SessionConfig{Timeout: 18446744073710}, "timeout 18446744073710 ms"},
		{"timeout of 2^62", &SessionConfig{Timeout: 4611686018427387904}, "timeout 4611686018427387904 ms"},
		{"huge retryWaitMin", &SessionConfig{RetryEnabled: true, RetryWaitMin: 1 << 50}, "retryWaitMin 1125899906842624 ms: want 0 to 3600000 ms"},
		{"huge retryWaitMax", &SessionConfig{RetryEnabled: true, RetryWaitMax: MaxRetryWaitMs + 1}, "retryWaitMax 3600001 ms"},
		{"waits of an hour", &SessionConfig{RetryEnabled: true, RetryWaitMin: MaxRetryWaitMs, RetryWaitMax: MaxRetryWaitMs}, ""},
		{"too many redirects", &SessionConfig{MaxRedirects: 101}, "maxRedirects 101"},
		{"redirects off with max", &SessionConfig{FollowRedirects: ptr(false), MaxRedirects: 2}, "redirects are off"},
		{"retries without enabling", &SessionConfig{MaxRetries: 2}, "retryEnabled false"},
		{"too many retries", &SessionConfig{RetryEnabled: true, MaxRetries: 21}, "maxRetries 21"},
		{"negative wait", &SessionConfig{RetryWaitMin: -5}, "retryWaitMin -5 ms"},
		{"min above max", &SessionConfig{RetryWaitMin: 500, RetryWaitMax: 100}, "retryWaitMin 500 is above retryWaitMax 100"},
		{"bad status", &SessionConfig{RetryEnabled: true, RetryOnStatus: []int{999}}, "999 is not an HTTP status"},
		{"two protocols", &SessionConfig{ForceHTTP1: true, ForceHTTP2: true}, "more than one of"},
		{"http3 both ways", &SessionConfig{ForceHTTP3: true, DisableHTTP3: true}, "both set"},
		{"http3 with proxy", &SessionConfig{ForceHTTP3: true, Proxy: "http://h:1"}, "does not go through proxies"},
		{"local address", &SessionConfig{LocalAddress: "localhost"}, `localAddress "localhost"`},
		{"connectTo without port", &SessionConfig{ConnectTo: map[string]string{"a.com": "b.com:443"}}, `connectTo "a.com"`},
		{"connectTo bad port", &SessionConfig{ConnectTo: map[string]string{"a.com:443": "b.com:70000"}}, `bad port "70000"`},
		{"header name", &SessionConfig{Headers: map[string]string{"Bad Header": "x"}}, `header name "Bad Header"`},
		{"header value", &SessionConfig{Headers: map[string]string{"X-A": "a\r\nX-B: b"}}, "CR, LF or NUL"},
		{"pool", &SessionConfig{MaxConnsPerHost: 6, MaxIdleConnsPerHost: 6, IdleConnTimeout: 30000}, ""},
		{"pool limits", &SessionConfig{MaxConnsPerHost: 4096, MaxIdleConnsPerHost: 4096, IdleConnTimeout: 86400000}, ""},
		{"negative max conns", &SessionConfig{MaxConnsPerHost: -1}, "maxConnsPerHost -1: want 0 to 4096"},
		{"huge max conns", &SessionConfig{MaxConnsPerHost: 4097}, "maxConnsPerHost 4097"},
		{"negative idle conns", &SessionConfig{MaxIdleConnsPerHost: -1}, "maxIdleConnsPerHost -1"},
		{"huge idle conns", &SessionConfig{MaxIdleConnsPerHost: 1 << 40}, "maxIdleConnsPerHost 1099511627776"},
		{"idle above max", &SessionConfig{MaxConnsPerHost: 6, MaxIdleConnsPerHost: 7}, "maxIdleConnsPerHost 7 is above maxConnsPerHost 6"},
		{"negative idle timeout", &SessionConfig{IdleConnTimeout: -1}, "idleConnTimeout -1 ms"},
		{"huge idle timeout", &SessionConfig{IdleConnTimeout: 18446744073710}, "idleConnTimeout 18446744073710 ms"},
		{"idle pool without keep-alives", &SessionConfig{DisableKeepAlives: true, MaxIdleConnsPerHost: 2}, "with disableKeepAlives"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.cfg.Validate()
			if tt.want == "" {
				if err != nil {
					t.Fatalf("Validate = %v, want nil", err)
				}
				return
			}
			if !errors.Is(err, ErrInvalidConfig) {
				t.Fatalf("Validate = %v, want ErrInvalidConfig", err)
			}
			if !strings.Contains(err.Error(), tt.want) {
				t.Errorf("Validate = %q, want it to contain %q", err, tt.want)
			}
			if strings.Contains(err.Error(), "secret") {
				t.Errorf("message leaks the proxy password: %q", err)
			}
		})
	}
}

func TestDecode(t *testing.T) {
	tests := []struct {
		name, in string
		want     *SessionConfig
		err      string
	}{
		{"empty", "", nil, ""},
		{"blank", " \n", nil, ""},
		{"null", "null", nil, ""},
		{"object", `{"preset":"safari-18","timeout":5000,"followRedirects":false,"headers":{"X-A":"1"}}`,
			&SessionConfig{Preset: "safari-18", Timeout: 5000, FollowRedirects: ptr(false), Headers: map[string]string{"X-A": "1"}}, ""},
		{"unknown field", `{"prest":"x"}`, nil, `unknown field "prest"`},
		{"wrong type", `{"timeout":"5s"}`, nil, "cannot unmarshal"},
		{"trailing data", `{} {}`, nil, "data after"},
		{"truncated", `{"preset":`, nil, "invalid session config"},
		{"invalid value", `{"timeout":-3}`, nil, "timeout -3"},
		{"array", `[]`, nil, "cannot unmarshal"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := Decode([]byte(tt.in))
			if tt.err != "" {
				if !errors.Is(err, ErrInvalidConfig) || !strings.Contains(err.Error(), tt.err) {
					t.Fatalf("Decode = %v, want an ErrInvalidConfig containing %q", err, tt.err)
				}
				if got != nil {
					t.Errorf("Decode returned a config with its error")
				}
				return
			}
			if err != nil || !reflect.DeepEqual(got, tt.want) {
				t.Fatalf("Decode = %+v, %v; want %+v", got, err, tt.want)
			}
		})
	}
}

func TestJSONNamesAreCamelCase(t *testing.T) {
	b, err := json.Marshal(SessionConfig{BaseURL: "http://x", ForceHTTP1: true, WithoutCookieJar: true, RetryWaitMin: 1})
	if err != nil {
		t.Fatal(err)
	}
	want := `{"baseURL":"http://x","retryWaitMin":1,"forceHTTP1":true,"withoutCookieJar":true}`
	if string(b) != want {
		t.Errorf("JSON = %s, want %s", b, want)
	}
}

func TestCloneIsDeep(t *testing.T) {
	c := &SessionConfig{FollowRedirects: ptr(true), RetryOnStatus: []int{500}, Headers: map[string]string{"A": "1"}, ConnectTo: map[string]string{"a:1": "b:2"}}
	d := c.Clone()
	*d.FollowRedirects = false
	d.RetryOnStatus[0] = 502
	d.Headers["A"] = "2"
	d.ConnectTo["a:1"] = "c:3"
	if !*c.FollowRedirects || c.RetryOnStatus[0] != 500 || c.Headers["A"] != "1" || c.ConnectTo["a:1"] != "b:2" {
		t.Errorf("Clone shares memory with the original: %+v", c)
	}
	if (*SessionConfig)(nil).Clone() != nil {
		t.Error("Clone of nil is not nil")
	}
	if got := (*SessionConfig)(nil).PresetName(); got != DefaultPreset {
		t.Errorf("PresetName of nil = %q", got)
	}
}

// FuzzDecode: any input either decodes to a config that validates and
// survives a JSON round trip, or fails with ErrInvalidConfig; never panics.
func FuzzDecode(f *testing.F) {
	f.Add([]byte(`{"preset":"chrome-latest","timeout":1000}`))
	f.Add([]byte(`{"proxy":"socks5://u:p@127.0.0.1:1080","forceHTTP3":true}`))
	f.Add([]byte(`null`))
	f.Fuzz(func(t *testing.T, data []byte) {
		c, err := Decode(data)
		if err != nil {
			if !errors.Is(err, ErrInvalidConfig) {
				t.Fatalf("Decode error %v is not ErrInvalidConfig", err)
			}
			return
		}
		if err := c.Validate(); err != nil {
			t.Fatalf("decoded config fails Validate: %v", err)
		}
		b, err := json.Marshal(c)
		if err != nil {
			t.Fatal(err)
		}
		c2, err := Decode(b)
		if err != nil {
			t.Fatalf("round trip of %s: %v", b, err)
		}
		if c == nil {
			return
		}
		if c2 == nil {
			c2 = &SessionConfig{} // an all-default config marshals to {}
		}
		b2, _ := json.Marshal(c2)
		if string(b) != string(b2) {
			t.Fatalf("round trip changed %s to %s", b, b2)
		}
	})
}

func TestPool(t *testing.T) {
	for _, tc := range []struct {
		cfg               *SessionConfig
		maxConns, maxIdle int
		idle              time.Duration
	}{
		{nil, 0, DefaultMaxIdleConnsPerHost, DefaultIdleConnTimeout},
		{&SessionConfig{}, 0, DefaultMaxIdleConnsPerHost, DefaultIdleConnTimeout},
		{&SessionConfig{MaxConnsPerHost: 6}, 6, 6, DefaultIdleConnTimeout},
		{&SessionConfig{MaxIdleConnsPerHost: 3, IdleConnTimeout: 1500}, 0, 3, 1500 * time.Millisecond},
	} {
		c, i, d := tc.cfg.Pool()
		if c != tc.maxConns || i != tc.maxIdle || d != tc.idle {
			t.Errorf("%+v.Pool() = %d, %d, %v; want %d, %d, %v", tc.cfg, c, i, d, tc.maxConns, tc.maxIdle, tc.idle)
		}
	}
}
