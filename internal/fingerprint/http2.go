package fingerprint

import (
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"

	"golang.org/x/net/http2"
	"golang.org/x/net/http2/hpack"
)

// Setting is one HTTP/2 SETTINGS parameter as sent.
type Setting struct {
	ID    uint16 `json:"id"`
	Value uint32 `json:"value"`
}

// Priority is an HTTP/2 priority: from a PRIORITY frame (StreamID set) or
// from a HEADERS frame's priority fields. Weight is the effective weight
// 1..256, that is the byte on the wire plus one, as RFC 9113 and the Akamai
// string count it (fhttp's PriorityParam.Weight is the byte on the wire).
type Priority struct {
	StreamID  uint32 `json:"stream_id,omitempty"`
	Exclusive bool   `json:"exclusive"`
	StreamDep uint32 `json:"stream_dep"`
	Weight    int    `json:"weight"`
}

// Header is one header field as the client sent it.
type Header struct {
	Name  string `json:"name"`
	Value string `json:"value"`
}

// HTTP2 is what an HTTP/2 client showed on one connection up to and
// including the request's HEADERS: the connection-level part (SETTINGS,
// WINDOW_UPDATE, PRIORITY frames, seen before the first HEADERS) is the same
// for every request on the connection; the rest belongs to this request.
type HTTP2 struct {
	// Settings are in the order sent, unknown identifiers included.
	Settings []Setting `json:"settings"`
	// WindowUpdate is the first connection-level WINDOW_UPDATE increment, 0 if none.
	WindowUpdate uint32 `json:"window_update"`
	// Priorities are the PRIORITY frames sent before the first HEADERS.
	Priorities []Priority `json:"priorities"`
	// Frames names the frame types up to the first HEADERS, in order.
	Frames []string `json:"frames"`

	StreamID uint32 `json:"stream_id"`
	// HeadersPriority is nil when the HEADERS frame had no PRIORITY flag.
	HeadersPriority *Priority `json:"headers_priority"`
	// PseudoHeaderOrder and HeaderOrder are the names in the order sent;
	// Headers has every field with its value in the order sent.
	PseudoHeaderOrder []string `json:"pseudo_header_order"`
	HeaderOrder       []string `json:"header_order"`
	Headers           []Header `json:"headers"`
	// Akamai is SETTINGS|WINDOW_UPDATE|PRIORITY|PSEUDO-HEADER order, as in
	// Akamai's HTTP/2 fingerprint ("1:65536;2:0;4:6291456;6:262144|15663105|0|m,a,s,p").
	Akamai string `json:"akamai"`

	settingsFrames int // non-ack SETTINGS frames read, each owed an ack
}

func (h *HTTP2) akamai() string {
	var b strings.Builder
	for i, s := range h.Settings {
		if i > 0 {
			b.WriteByte(';')
		}
		fmt.Fprintf(&b, "%d:%d", s.ID, s.Value)
	}
	b.WriteByte('|')
	if h.WindowUpdate == 0 {
		b.WriteString("00")
	} else {
		b.WriteString(strconv.FormatUint(uint64(h.WindowUpdate), 10))
	}
	b.WriteByte('|')
	if len(h.Priorities) == 0 {
		b.WriteByte('0')
	}
	for i, p := range h.Priorities {
		if i > 0 {
			b.WriteByte(',')
		}
		ex := 0
		if p.Exclusive {
			ex = 1
		}
		fmt.Fprintf(&b, "%d:%d:%d:%d", p.StreamID, ex, p.StreamDep, p.Weight)
	}
	b.WriteByte('|')
	for i, p := range h.PseudoHeaderOrder {
		if i > 0 {
			b.WriteByte(',')
		}
		if len(p) > 1 {
			b.WriteByte(p[1])
		}
	}
	return b.String()
}

func newReadFramer(w io.Writer, r io.Reader) *http2.Framer {
	fr := http2.NewFramer(w, r)
	fr.ReadMetaHeaders = hpack.NewDecoder(4096, nil)
	fr.MaxHeaderListSize = 1 << 20
	return fr
}

func frameName(f http2.Frame) string {
	t := f.Header().Type
	if t == http2.FrameSettings && f.Header().Flags.Has(http2.FlagSettingsAck) {
		return "SETTINGS_ACK"
	}
	if t <= http2.FrameContinuation {
		return t.String()
	}
	return fmt.Sprintf("UNKNOWN_0x%02x", uint8(t))
}

// ReadHTTP2 reads an HTTP/2 client connection start from r: the client
// preface, then frames up to and including the first HEADERS block
// (CONTINUATION frames are joined by the decoder). Bytes that are not a valid
// preface or frame give an error wrapping ErrMalformed.
func ReadHTTP2(r io.Reader) (*HTTP2, error) {
	if err := readPreface(r); err != nil {
		return nil, err
	}
	return readHTTP2Start(newReadFramer(io.Discard, r))
}

func readPreface(r io.Reader) error {
	buf := make([]byte, len(http2.ClientPreface))
	if _, err := io.ReadFull(r, buf); err != nil {
		return fmt.Errorf("fingerprint: reading the HTTP/2 preface: %w", err)
	}
	if string(buf) != http2.ClientPreface {
		return fmt.Errorf("%w: HTTP/2 preface is %q", ErrMalformed, buf)
	}
	return nil
}

// readHTTP2Start reads frames until the first complete HEADERS block.
func readHTTP2Start(fr *http2.Framer) (*HTTP2, error) {
	h := &HTTP2{Settings: []Setting{}, Priorities: []Priority{}}
	for {
		f, err := fr.ReadFrame()
		if err != nil {
			var ce http2.ConnectionError
			var se http2.StreamError
			if errors.As(err, &ce) || errors.As(err, &se) || errors.Is(err, http2.ErrFrameTooLarge) {
				err = fmt.Errorf("%w: HTTP/2 frame %d: %w", ErrMalformed, len(h.Frames)+1, err)
			} else {
				err = fmt.Errorf("fingerprint: reading HTTP/2 frame %d: %w", len(h.Frames)+1, err)
			}
			return nil, err
		}
		h.Frames = append(h.Frames, frameName(f))
		switch f := f.(type) {
		case *http2.SettingsFrame:
			if f.IsAck() {
				continue
			}
			h.settingsFrames++
			if err := f.ForeachSetting(func(s http2.Setting) error {
				h.Settings = append(h.Settings, Setting{ID: uint16(s.ID), Value: s.Val})
				return nil
			}); err != nil {
				return nil, err
			}
		case *http2.WindowUpdateFrame:
			if f.StreamID == 0 && h.WindowUpdate == 0 {
				h.WindowUpdate = f.Increment
			}
		case *http2.PriorityFrame:
			h.Priorities = append(h.Priorities, Priority{
				StreamID: f.StreamID, Exclusive: f.Exclusive, StreamDep: f.StreamDep, Weight: int(f.Weight) + 1,
			})
		case *http2.MetaHeadersFrame:
			h.setRequest(f)
			return h, nil
		}
	}
}

// setRequest fills the per-request fields from a decoded HEADERS block.
func (h *HTTP2) setRequest(f *http2.MetaHeadersFrame) {
	h.StreamID = f.StreamID
	h.HeadersPriority = nil
	if f.HasPriority() {
		p := f.Priority
		h.HeadersPriority = &Priority{Exclusive: p.Exclusive, StreamDep: p.StreamDep, Weight: int(p.Weight) + 1}
	}
	h.PseudoHeaderOrder, h.HeaderOrder, h.Headers = []string{}, []string{}, []Header{}
	for _, hf := range f.Fields {
		if hf.IsPseudo() {
			h.PseudoHeaderOrder = append(h.PseudoHeaderOrder, hf.Name)
		} else {
			h.HeaderOrder = append(h.HeaderOrder, hf.Name)
		}
		h.Headers = append(h.Headers, Header{Name: hf.Name, Value: hf.Value})
	}
	h.Akamai = h.akamai()
}
