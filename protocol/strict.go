package protocol

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"reflect"
	"strings"
)

// maxDepth bounds the nesting checkStrict follows; roster's types nest four
// levels at most.
const maxDepth = 32

// checkStrict reads the JSON text data as the type t and rejects what
// encoding/json lets through: a duplicate key in any object (encoding/json
// keeps the last), and an object key that names a field of t only when case
// is ignored (encoding/json matches "TIMEOUT" to "timeout"). Keys that name
// no field at all are left to the decoder's DisallowUnknownFields, so that
// callers may look at a version first. It also rejects syntax errors and
// nesting deeper than maxDepth. The error says where, as a path like
// `cookies[3].name`.
func checkStrict(data []byte, t reflect.Type) error {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	err := walkStrict(dec, t, "", 0)
	if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
		return errors.New("unexpected end of JSON input") // as encoding/json says it
	}
	return err
}

// walkStrict checks the next JSON value of dec, read as type t (nil: any).
func walkStrict(dec *json.Decoder, t reflect.Type, path string, depth int) error {
	tok, err := dec.Token()
	if err != nil {
		return err
	}
	d, ok := tok.(json.Delim)
	if !ok {
		return nil // a scalar: the decoder checks its type
	}
	if depth >= maxDepth {
		return fmt.Errorf("%snested deeper than %d", at0(path), maxDepth)
	}
	for t != nil && t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	switch d {
	case '{':
		var fields map[string]reflect.Type
		var elem reflect.Type
		switch {
		case t == nil:
		case t.Kind() == reflect.Struct:
			fields = jsonFields(t)
		case t.Kind() == reflect.Map:
			elem = t.Elem()
		}
		seen := make(map[string]bool)
		for dec.More() {
			tok, err := dec.Token()
			if err != nil {
				return err
			}
			key, _ := tok.(string)
			at := path + "." + key
			if path == "" {
				at = key
			}
			if seen[key] {
				return fmt.Errorf("%sduplicate key %q", at0(path), key)
			}
			seen[key] = true
			vt := elem
			if fields != nil {
				ft, ok := fields[key]
				if !ok {
					for name := range fields {
						if strings.EqualFold(name, key) {
							return fmt.Errorf("%skey %q: field names are case-sensitive, want %q", at0(path), key, name)
						}
					}
				}
				vt = ft // nil for an unknown field, which the decoder reports
			}
			if err := walkStrict(dec, vt, at, depth+1); err != nil {
				return err
			}
		}
	case '[':
		var elem reflect.Type
		if t != nil && (t.Kind() == reflect.Slice || t.Kind() == reflect.Array) {
			elem = t.Elem()
		}
		for i := 0; dec.More(); i++ {
			if err := walkStrict(dec, elem, fmt.Sprintf("%s[%d]", path, i), depth+1); err != nil {
				return err
			}
		}
	default:
		return errors.New("unexpected " + d.String())
	}
	_, err = dec.Token() // the closing delimiter
	return err
}

// at0 returns the prefix of a message about path: "" at the top level.
func at0(path string) string {
	if path == "" {
		return ""
	}
	return path + ": "
}

// jsonFields returns the JSON names of the exported fields of the struct
// type t, with their types.
func jsonFields(t reflect.Type) map[string]reflect.Type {
	fields := make(map[string]reflect.Type, t.NumField())
	for i := range t.NumField() {
		f := t.Field(i)
		if !f.IsExported() {
			continue
		}
		name, _, _ := strings.Cut(f.Tag.Get("json"), ",")
		switch name {
		case "-":
			continue
		case "":
			name = f.Name
		}
		fields[name] = f.Type
	}
	return fields
}
