package jsonapi

import (
	"mime"
	"net/http"
	"strconv"
	"strings"
)

// isEmptyBody reports whether r certainly carries no body.
func isEmptyBody(r *http.Request) bool {
	return r.Body == nil || r.Body == http.NoBody || r.ContentLength == 0
}

// CheckContentType accepts a request body of application/json (parameters
// such as charset allowed) or application/vnd.api+json without parameters.
// A JSON:API media type with parameters and any other type answer 415, as
// does a body without a Content-Type; a request without a body and without a
// Content-Type passes.
func CheckContentType(r *http.Request) *Error {
	ct := r.Header.Get("Content-Type")
	if ct == "" {
		if isEmptyBody(r) {
			return nil
		}
		return UnsupportedMediaType()
	}
	mt, params, err := mime.ParseMediaType(ct)
	if err != nil {
		return UnsupportedMediaType()
	}
	switch mt {
	case "application/json":
		return nil
	case MediaType:
		// JSON:API 1.0 §Content Negotiation: servers MUST respond 415 if a
		// request specifies the JSON:API media type with any media type parameters.
		if len(params) == 0 {
			return nil
		}
	}
	return UnsupportedMediaType()
}

// CheckAccept accepts a request whose Accept header is absent or allows JSON:
// */*, application/*, application/json, or application/vnd.api+json without
// media type parameters (JSON:API 1.0: an instance modified by parameters does
// not count). A range with q=0 allows nothing. Anything else answers 406.
func CheckAccept(r *http.Request) *Error {
	values := r.Header.Values("Accept")
	if len(values) == 0 {
		return nil
	}
	blank := true
	for _, v := range values {
		for _, rng := range strings.Split(v, ",") {
			rng = strings.TrimSpace(rng)
			if rng == "" {
				continue
			}
			blank = false
			if acceptsJSON(rng) {
				return nil
			}
		}
	}
	if blank {
		return nil
	}
	return NotAcceptable()
}

// acceptsJSON reports whether one media range of an Accept header allows a
// JSON response.
func acceptsJSON(rng string) bool {
	mt, params, err := mime.ParseMediaType(rng)
	if err != nil {
		return false
	}
	if q, ok := params["q"]; ok {
		delete(params, "q")
		if f, err := strconv.ParseFloat(q, 64); err != nil || f <= 0 {
			return false
		}
	}
	switch mt {
	case "*/*", "application/*", "application/json":
		return true
	case MediaType:
		return len(params) == 0
	}
	return false
}

// CheckNegotiation is what every JSON:API route checks first: CheckAccept
// (406), then CheckContentType (415).
func CheckNegotiation(r *http.Request) *Error {
	if err := CheckAccept(r); err != nil {
		return err
	}
	return CheckContentType(r)
}
