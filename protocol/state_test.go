package protocol

import (
	"errors"
	"strings"
	"testing"
)

// TestDecodeStrict: what encoding/json lets through, Decode and DecodeState
// refuse, saying where and what.
func TestDecodeStrict(t *testing.T) {
	good := `{"version":1,"id":"x","createdAt":"2026-01-01T00:00:00Z","lastUsed":"2026-01-01T00:00:00Z","requestCount":0}`
	states := []struct{ name, data, want string }{
		{"good", good, ""},
		{"zero times", `{"version":1,"id":"x"}`, ""},
		{"negative requestCount", strings.Replace(good, `"requestCount":0`, `"requestCount":-1`, 1), "requestCount -1"},
		{"createdAt in 9999", strings.Replace(good, `"createdAt":"2026`, `"createdAt":"9999`, 1), "createdAt 9999-01-01T00:00:00Z"},
		{"lastUsed in 9999", strings.Replace(good, `"lastUsed":"2026`, `"lastUsed":"9999`, 1), "lastUsed 9999-01-01T00:00:00Z"},
		{"createdAt before 1970", strings.Replace(good, `"createdAt":"2026`, `"createdAt":"1969`, 1), "createdAt 1969"},
		{"field in upper case", strings.Replace(good, `"id"`, `"ID"`, 1), `key "ID": field names are case-sensitive, want "id"`},
		{"version in upper case", strings.Replace(good, `"version"`, `"Version"`, 1), `key "Version"`},
		{"nested field in another case", strings.Replace(good, `"id":"x"`, `"id":"x","config":{"Timeout":5}`, 1), `config: key "Timeout"`},
		{"cookie field in another case", strings.Replace(good, `"id":"x"`, `"id":"x","cookies":[{"NAME":"a","value":"b","domain":"a.com","path":"/"}]`, 1), `cookies[0]: key "NAME"`},
		{"duplicate key", strings.Replace(good, `"id":"x"`, `"id":"x","id":"y"`, 1), `duplicate key "id"`},
		{"duplicate nested key", strings.Replace(good, `"id":"x"`, `"id":"x","config":{"timeout":5,"timeout":6}`, 1), `config: duplicate key "timeout"`},
		{"duplicate header", strings.Replace(good, `"id":"x"`, `"id":"x","config":{"headers":{"A":"1","A":"2"}}`, 1), `config.headers: duplicate key "A"`},
		{"huge timeout", strings.Replace(good, `"id":"x"`, `"id":"x","config":{"timeout":18446744073710}`, 1), "timeout 18446744073710 ms"},
		{"deep nesting", strings.Replace(good, `"requestCount":0`, `"requestCount":0,"x":`+strings.Repeat("[", 100)+strings.Repeat("]", 100), 1), "nested deeper than 32"},
	}
	for _, tt := range states {
		t.Run("state/"+tt.name, func(t *testing.T) {
			_, err := DecodeState([]byte(tt.data))
			switch {
			case tt.want == "" && err != nil:
				t.Fatalf("refused: %v", err)
			case tt.want == "":
			case err == nil:
				t.Fatalf("accepted, want an error with %q", tt.want)
			case !errors.Is(err, ErrInvalidState):
				t.Errorf("error %v does not wrap ErrInvalidState", err)
			case !strings.Contains(err.Error(), tt.want):
				t.Errorf("error %q does not contain %q", err, tt.want)
			}
		})
	}
	configs := []struct{ name, data, want string }{
		{"good", `{"timeout":5,"headers":{"A":"1","a":"2"}}`, ""},
		{"field in another case", `{"TIMEOUT":5}`, `key "TIMEOUT": field names are case-sensitive, want "timeout"`},
		{"duplicate key", `{"timeout":5,"timeout":18446744073710}`, `duplicate key "timeout"`},
		{"duplicate connectTo", `{"connectTo":{"a:1":"b:2","a:1":"c:3"}}`, `connectTo: duplicate key "a:1"`},
		{"unknown field", `{"timeoutMs":5}`, `unknown field "timeoutMs"`},
	}
	for _, tt := range configs {
		t.Run("config/"+tt.name, func(t *testing.T) {
			_, err := Decode([]byte(tt.data))
			switch {
			case tt.want == "" && err != nil:
				t.Fatalf("refused: %v", err)
			case tt.want == "":
			case err == nil:
				t.Fatalf("accepted, want an error with %q", tt.want)
			case !errors.Is(err, ErrInvalidConfig):
				t.Errorf("error %v does not wrap ErrInvalidConfig", err)
			case !strings.Contains(err.Error(), tt.want):
				t.Errorf("error %q does not contain %q", err, tt.want)
			}
		})
	}
}

// FuzzDecodeState: any input either decodes to a state whose fields are in
// range, or fails with ErrInvalidState; never panics.
func FuzzDecodeState(f *testing.F) {
	f.Add([]byte(`{"version":1,"id":"x","createdAt":"2026-01-01T00:00:00Z","requestCount":3}`))
	f.Add([]byte(`{"version":1,"id":"x","ID":"y"}`))
	f.Add([]byte(`{"version":1,"id":"x","config":{"headers":{"A":"1","A":"2"}}}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		st, err := DecodeState(data)
		if err != nil {
			if !errors.Is(err, ErrInvalidState) {
				t.Fatalf("error %v is not ErrInvalidState", err)
			}
			return
		}
		if st.RequestCount < 0 || st.CreatedAt.After(MaxStateTime) || st.LastUsed.After(MaxStateTime) {
			t.Fatalf("accepted out-of-range state %+v", st)
		}
		if err := st.Config.Validate(); err != nil {
			t.Fatalf("accepted a state whose config fails Validate: %v", err)
		}
	})
}
