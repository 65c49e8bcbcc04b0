package jsonapi

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"strings"
)

// MaxBodyBytes is the largest request body the API reads (docs/api.md: 64 KiB).
const MaxBodyBytes = 64 << 10

// DecodeBody reads at most MaxBodyBytes of r's body as one JSON object into
// dst, ignoring unknown members. A body that is too large, not JSON, or not an
// object answers 400 bad-request; a member of the wrong type answers 422
// validation-failed with source.pointer naming it ("/userId"); a value that
// dst's own unmarshalling rejects answers 422 without a pointer.
func DecodeBody(r *http.Request, dst any) *Error {
	if r.Body == nil {
		return BadRequest("The request body is empty; a JSON object is required.")
	}
	body, err := io.ReadAll(http.MaxBytesReader(nil, r.Body, MaxBodyBytes))
	if err != nil {
		var tooLarge *http.MaxBytesError
		if errors.As(err, &tooLarge) {
			return &Error{Status: http.StatusBadRequest, Code: CodeBadRequest,
				Detail: "The request body is too large; at most 64 KiB are accepted.", Cause: err}
		}
		return &Error{Status: http.StatusBadRequest, Code: CodeBadRequest,
			Detail: "The request body could not be read.", Cause: err}
	}
	trimmed := bytes.TrimSpace(body)
	if len(trimmed) == 0 {
		return BadRequest("The request body is empty; a JSON object is required.")
	}
	if !json.Valid(trimmed) {
		return BadRequest("The request body is not valid JSON.")
	}
	if trimmed[0] != '{' {
		return BadRequest("The request body must be a JSON object.")
	}
	if err := json.Unmarshal(trimmed, dst); err != nil {
		var invalid *json.InvalidUnmarshalError
		if errors.As(err, &invalid) { // dst is not a pointer: the handler's bug
			return Internal(err)
		}
		var typeErr *json.UnmarshalTypeError
		if errors.As(err, &typeErr) && typeErr.Field != "" {
			return &Error{Status: http.StatusUnprocessableEntity, Code: CodeValidationFailed,
				Detail:  "The member " + typeErr.Field + " must not be a " + typeErr.Value + ".",
				Pointer: jsonPointer(typeErr.Field), Cause: err}
		}
		return &Error{Status: http.StatusUnprocessableEntity, Code: CodeValidationFailed,
			Detail: "The request body has a malformed member.", Cause: err}
	}
	return nil
}

// jsonPointer turns encoding/json's dotted field path ("a.b") into a JSON pointer ("/a/b").
func jsonPointer(field string) string {
	var b strings.Builder
	for _, part := range strings.Split(field, ".") {
		b.WriteByte('/')
		// RFC 6901 §3: "~" is written "~0" and "/" is written "~1".
		b.WriteString(strings.ReplaceAll(strings.ReplaceAll(part, "~", "~0"), "/", "~1"))
	}
	return b.String()
}
