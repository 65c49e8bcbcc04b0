package jsonapi

import (
	"bytes"
	"errors"
	"io"
	"net/http"
	"reflect"
	"strings"
	"unicode"

	"github.com/go-json-experiment/json"
	"github.com/go-json-experiment/json/jsontext"
)

// MaxBodyBytes is the largest request body the API reads (docs/api.md: 64 KiB).
const MaxBodyBytes = 64 << 10

// DecodeBody reads at most MaxBodyBytes of r's body as one JSON object into
// dst; it is the one decoder of every JSON request body. Member names match
// dst's fields exactly (case-sensitively); unknown members are ignored. A
// body that is too large, not JSON (invalid UTF-8 included), or not an
// object answers 400 bad-request; so does a member whose name repeats in its
// object, or equals another member's name of its object but for case
// ({"otp":…,"OTP":…}, which a case-insensitive decoder such as
// encoding/json would read as one member), with source.pointer naming the
// later member. A member of the wrong type answers 422 validation-failed
// with source.pointer naming it ("/userId"); a value that dst's own
// unmarshalling rejects answers 422 with the pointer when it is known.
func DecodeBody(r *http.Request, dst any) *Error {
	present, e := DecodeOptionalBody(r, dst)
	if e == nil && !present {
		return BadRequest("The request body is empty; a JSON object is required.")
	}
	return e
}

// DecodeOptionalBody is DecodeBody for a route whose body may be left out
// (PACE's SDKs send some requests with none, Android with a Content-Type
// all the same): an absent, empty or blank body is (false, nil) and leaves
// dst alone; any other body is (true, what DecodeBody answers).
func DecodeOptionalBody(r *http.Request, dst any) (bool, *Error) {
	if v := reflect.ValueOf(dst); v.Kind() != reflect.Pointer || v.IsNil() { // the handler's bug
		return false, Internal(errors.New("jsonapi: DecodeBody needs a non-nil pointer"))
	}
	if r.Body == nil {
		return false, nil
	}
	body, err := io.ReadAll(http.MaxBytesReader(nil, r.Body, MaxBodyBytes))
	if err != nil {
		var tooLarge *http.MaxBytesError
		if errors.As(err, &tooLarge) {
			return true, &Error{Status: http.StatusBadRequest, Code: CodeBadRequest,
				Detail: "The request body is too large; at most 64 KiB are accepted.", Cause: err}
		}
		return true, &Error{Status: http.StatusBadRequest, Code: CodeBadRequest,
			Detail: "The request body could not be read.", Cause: err}
	}
	trimmed := bytes.TrimSpace(body)
	if len(trimmed) == 0 {
		return false, nil
	}
	return true, decodeObject(trimmed, dst)
}

// decodeObject is DecodeBody's check and decoding of a non-blank body.
func decodeObject(trimmed []byte, dst any) *Error {
	if e := checkSyntaxAndNames(trimmed); e != nil {
		return e
	}
	if trimmed[0] != '{' {
		return BadRequest("The request body must be a JSON object.")
	}
	// json v2's defaults: names match exactly, duplicates are refused
	// (checked above already), unknown members are ignored.
	if err := json.Unmarshal(trimmed, dst); err != nil {
		var semErr *json.SemanticError
		if errors.As(err, &semErr) && semErr.JSONPointer != "" {
			if kind := kindName(semErr.JSONKind); kind != "" && semErr.Err == nil {
				return &Error{Status: http.StatusUnprocessableEntity, Code: CodeValidationFailed,
					Detail:  "The member " + memberPath(semErr.JSONPointer) + " must not be a " + kind + ".",
					Pointer: string(semErr.JSONPointer), Cause: err}
			}
			return &Error{Status: http.StatusUnprocessableEntity, Code: CodeValidationFailed,
				Detail:  "The member " + memberPath(semErr.JSONPointer) + " is malformed.",
				Pointer: string(semErr.JSONPointer), Cause: err}
		}
		return &Error{Status: http.StatusUnprocessableEntity, Code: CodeValidationFailed,
			Detail: "The request body has a malformed member.", Cause: err}
	}
	return nil
}

// checkSyntaxAndNames reads body as exactly one JSON value (RFC 8259, UTF-8)
// and refuses a member name that repeats in its object or that equals an
// earlier name of its object under Unicode case folding, as
// strings.EqualFold compares, which is how encoding/json matches names.
func checkSyntaxAndNames(body []byte) *Error {
	dec := jsontext.NewDecoder(bytes.NewReader(body))
	var objects []map[string]string // per open object: folded name → name as written
	for {
		tok, err := dec.ReadToken()
		if err != nil {
			var synErr *jsontext.SyntacticError
			if errors.As(err, &synErr) && errors.Is(err, jsontext.ErrDuplicateName) {
				return &Error{Status: http.StatusBadRequest, Code: CodeBadRequest,
					Detail:  "The member " + memberPath(synErr.JSONPointer) + " appears more than once.",
					Pointer: string(synErr.JSONPointer), Cause: err}
			}
			return &Error{Status: http.StatusBadRequest, Code: CodeBadRequest, Detail: "The request body is not valid JSON.", Cause: err}
		}
		switch tok.Kind() {
		case '{':
			objects = append(objects, map[string]string{})
		case '}':
			objects = objects[:len(objects)-1]
		case '"':
			// In an object, names and values are counted alike: an odd
			// count means the string just read is a name.
			if kind, n := dec.StackIndex(dec.StackDepth()); kind == '{' && n%2 == 1 {
				name := tok.String()
				names := objects[len(objects)-1]
				folded := foldName(name)
				if earlier, ok := names[folded]; ok { // exact repeats failed in ReadToken
					ptr := dec.StackPointer()
					return &Error{Status: http.StatusBadRequest, Code: CodeBadRequest,
						Detail:  "The member " + memberPath(ptr) + " differs from the member " + earlier + " only in case.",
						Pointer: string(ptr)}
				}
				names[folded] = name
			}
		}
		if dec.StackDepth() == 0 {
			break
		}
	}
	if _, err := dec.ReadToken(); err != io.EOF {
		return &Error{Status: http.StatusBadRequest, Code: CodeBadRequest, Detail: "The request body is not valid JSON.", Cause: err}
	}
	return nil
}

// foldName maps every rune of name to the smallest rune of its Unicode
// simple folding orbit, so foldName(a) == foldName(b) exactly when
// strings.EqualFold(a, b).
func foldName(name string) string {
	return strings.Map(func(r rune) rune {
		least := r
		for f := unicode.SimpleFold(r); f != r; f = unicode.SimpleFold(f) {
			least = min(least, f)
		}
		return least
	}, name)
}

// kindName names a JSON kind as an error detail does ("number"), "" for none.
func kindName(k jsontext.Kind) string {
	switch k {
	case '"':
		return "string"
	case '0':
		return "number"
	case 't', 'f':
		return "bool"
	case 'n':
		return "null"
	case '{':
		return "object"
	case '[':
		return "array"
	}
	return ""
}

// memberPath is a JSON pointer as an error detail names the member: its
// unescaped tokens joined by dots ("/nested/count" → "nested.count").
func memberPath(p jsontext.Pointer) string {
	var parts []string
	for tok := range p.Tokens() {
		parts = append(parts, tok)
	}
	return strings.Join(parts, ".")
}
