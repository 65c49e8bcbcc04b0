// Package jsonapi writes the JSON:API error documents of otpstep's user API
// and checks the content negotiation rules docs/api.md sets for it. Every error
// carries the request id, a fixed title per code, and never the cause of a 5xx.
package jsonapi

import (
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strconv"
	"time"

	"github.com/otpstep/otpstep/web/requestid"
)

// MediaType is the JSON:API media type every error document is written with.
const MediaType = "application/vnd.api+json"

// Error codes of docs/api.md's table, the `code` member of an error object.
const (
	CodeBadRequest            = "bad-request"
	CodeUnauthorized          = "unauthorized"
	CodeMissingLinkedIdentity = "missing-linked-identity"
	CodeInsufficientScope     = "insufficient-scope"
	CodeNotFound              = "not-found"
	CodeNotAcceptable         = "not-acceptable"
	CodeUnsupportedMediaType  = "unsupported-media-type"
	CodeValidationFailed      = "validation-failed"
	CodeIdentityAlreadyLinked = "identity-already-linked"
	CodeTooManyRequests       = "too-many-requests"
	CodeInternalError         = "internal-error"
	CodeUnavailable           = "unavailable"
	// Issue 14 (PACE's credentials): a re-authenticating credential that
	// is wrong, and a new PIN that breaks PACE's rules.
	CodeInvalidCredentials = "invalid-credentials"
	CodePINNotSecure       = "pin-not-secure"
)

// codeInfo is one row of the code table: the status a code answers with, its
// fixed title, the detail used when the caller gives none, and whether that
// detail is fixed (the caller's detail is then ignored).
type codeInfo struct {
	status      int
	title       string
	detail      string
	fixedDetail bool
}

// codes is docs/api.md's error table. Titles are fixed per code; so are the
// details of missing-linked-identity (quoted from
// docs/pace-update-session.txt) and of the 5xx codes, which must say nothing
// of the cause.
var codes = map[string]codeInfo{
	CodeBadRequest:   {http.StatusBadRequest, "Bad request", "The request body is not a JSON object.", false},
	CodeUnauthorized: {http.StatusUnauthorized, "Unauthorized", "A valid bearer access token is required.", false},
	CodeMissingLinkedIdentity: {http.StatusUnauthorized, "Missing linked identity for authorized access",
		"Linked identity is needed to access this resource, please check why the user does not have a linked identity", true},
	CodeInsufficientScope: {http.StatusForbidden, "Insufficient scope", "The access token lacks the scope this resource requires.", false},
	CodeNotFound:          {http.StatusNotFound, "Not found", "The requested resource was not found.", false},
	CodeNotAcceptable: {http.StatusNotAcceptable, "Not acceptable",
		"The Accept header allows neither application/json nor application/vnd.api+json without parameters.", false},
	CodeUnsupportedMediaType: {http.StatusUnsupportedMediaType, "Unsupported media type",
		"The request body must be application/json or application/vnd.api+json without parameters.", false},
	CodeValidationFailed:      {http.StatusUnprocessableEntity, "Validation failed", "A field is missing or malformed.", false},
	CodeIdentityAlreadyLinked: {http.StatusConflict, "Identity already linked", "This identity is already linked to another user.", false},
	CodeTooManyRequests:       {http.StatusTooManyRequests, "Too many requests", "Too many attempts, please try again later.", false},
	CodeInternalError: {http.StatusInternalServerError, "Internal server error",
		"An unexpected error occurred; please quote the error id when reporting it.", true},
	CodeUnavailable: {http.StatusServiceUnavailable, "Service unavailable",
		"The service is temporarily unavailable, please try again later.", true},
	CodeInvalidCredentials: {http.StatusForbidden, "Invalid credentials", "The credentials are not valid.", false},
	CodePINNotSecure: {http.StatusNotAcceptable, "PIN not secure",
		"The PIN must have 4 digits, at least 3 of them different, and not be a series (1234, 4321).", false},
}

// statusCodes maps a status to its code when an Error names only the status.
var statusCodes = map[int]string{
	http.StatusBadRequest:           CodeBadRequest,
	http.StatusUnauthorized:         CodeUnauthorized,
	http.StatusForbidden:            CodeInsufficientScope,
	http.StatusNotFound:             CodeNotFound,
	http.StatusNotAcceptable:        CodeNotAcceptable,
	http.StatusUnsupportedMediaType: CodeUnsupportedMediaType,
	http.StatusUnprocessableEntity:  CodeValidationFailed,
	http.StatusConflict:             CodeIdentityAlreadyLinked,
	http.StatusTooManyRequests:      CodeTooManyRequests,
	http.StatusInternalServerError:  CodeInternalError,
	http.StatusServiceUnavailable:   CodeUnavailable,
}

// Document is a JSON:API top-level document holding only errors.
type Document struct {
	Errors []ErrorObject `json:"errors"`
}

// ErrorObject is one JSON:API error object as docs/api.md defines it.
type ErrorObject struct {
	ID     string         `json:"id"`
	Status string         `json:"status"`
	Code   string         `json:"code"`
	Title  string         `json:"title"`
	Detail string         `json:"detail"`
	Source *Source        `json:"source,omitempty"`
	Meta   map[string]any `json:"meta,omitempty"`
}

// Source names the input at fault: a JSON pointer into the body (RFC 6901,
// "/userId") or a URI or query parameter ("sessionId").
type Source struct {
	Pointer   string `json:"pointer,omitempty"`
	Parameter string `json:"parameter,omitempty"`
}

// Error is an error a handler answers with. Status and Code follow docs/api.md's
// table (either alone is enough: the other is derived); Detail is shown to the
// client except for 5xx codes and missing-linked-identity, whose detail is
// fixed. Cause is for the log only and never reaches the response body.
type Error struct {
	Status     int
	Code       string
	Detail     string
	Pointer    string
	Parameter  string
	RetryAfter time.Duration
	Cause      error
}

// Error describes the error for logs, cause included.
func (e *Error) Error() string {
	s := fmt.Sprintf("jsonapi: %d %s", e.Status, e.Code)
	if e.Detail != "" {
		s += ": " + e.Detail
	}
	if e.Cause != nil {
		s += ": " + e.Cause.Error()
	}
	return s
}

// Unwrap returns the cause, so errors.Is and errors.As see through an Error.
func (e *Error) Unwrap() error { return e.Cause }

// NotFound is a 404 not-found: an unknown or foreign resource.
func NotFound(detail string) *Error {
	return &Error{Status: http.StatusNotFound, Code: CodeNotFound, Detail: detail}
}

// Validation is a 422 validation-failed naming a body member by JSON pointer ("/userId").
func Validation(pointer, detail string) *Error {
	return &Error{Status: http.StatusUnprocessableEntity, Code: CodeValidationFailed, Detail: detail, Pointer: pointer}
}

// ValidationParam is a 422 validation-failed naming a URI or query parameter ("sessionId").
func ValidationParam(param, detail string) *Error {
	return &Error{Status: http.StatusUnprocessableEntity, Code: CodeValidationFailed, Detail: detail, Parameter: param}
}

// TooManyRequests is a 429 too-many-requests; Retry-After tells when to try again.
func TooManyRequests(retryAfter time.Duration) *Error {
	return &Error{Status: http.StatusTooManyRequests, Code: CodeTooManyRequests, RetryAfter: retryAfter}
}

// Unauthorized is a 401 unauthorized: no usable bearer access token.
func Unauthorized(detail string) *Error {
	return &Error{Status: http.StatusUnauthorized, Code: CodeUnauthorized, Detail: detail}
}

// MissingLinkedIdentity is the 401 missing-linked-identity of the linked-identity policy.
func MissingLinkedIdentity() *Error {
	return &Error{Status: http.StatusUnauthorized, Code: CodeMissingLinkedIdentity}
}

// InsufficientScope is a 403 insufficient-scope naming the scope the route needs.
func InsufficientScope(scope string) *Error {
	return &Error{Status: http.StatusForbidden, Code: CodeInsufficientScope,
		Detail: "The access token lacks the scope " + scope + "."}
}

// Internal is a 500 internal-error; cause is logged, never shown.
func Internal(cause error) *Error {
	return &Error{Status: http.StatusInternalServerError, Code: CodeInternalError, Cause: cause}
}

// Unavailable is a 503 unavailable (the database is unreachable); cause is logged, never shown.
func Unavailable(retryAfter time.Duration, cause error) *Error {
	return &Error{Status: http.StatusServiceUnavailable, Code: CodeUnavailable, RetryAfter: retryAfter, Cause: cause}
}

// BadRequest is a 400 bad-request: the body is not JSON, or not an object.
func BadRequest(detail string) *Error {
	return &Error{Status: http.StatusBadRequest, Code: CodeBadRequest, Detail: detail}
}

// NotAcceptable is a 406 not-acceptable: Accept allows neither JSON type.
func NotAcceptable() *Error {
	return &Error{Status: http.StatusNotAcceptable, Code: CodeNotAcceptable}
}

// UnsupportedMediaType is a 415 unsupported-media-type for the request body.
func UnsupportedMediaType() *Error {
	return &Error{Status: http.StatusUnsupportedMediaType, Code: CodeUnsupportedMediaType}
}

// Conflict is a 409 with the given code, such as identity-already-linked.
func Conflict(code, detail string) *Error {
	return &Error{Status: http.StatusConflict, Code: code, Detail: detail}
}

// resolve fills in whichever of status and code is missing; anything it
// cannot place becomes a 500 internal-error.
func resolve(e *Error) (status int, code string) {
	status, code = e.Status, e.Code
	if code == "" {
		code = statusCodes[status]
	}
	info, known := codes[code]
	if status == 0 && known {
		status = info.status
	}
	if status < 400 || status > 599 || code == "" {
		return http.StatusInternalServerError, CodeInternalError
	}
	return status, code
}

// Object builds the error object for e as answered to the request whose id is id.
func Object(id string, e *Error) ErrorObject {
	status, code := resolve(e)
	info, known := codes[code]
	title := info.title
	if !known {
		title = http.StatusText(status)
	}
	detail := e.Detail
	switch {
	case status >= 500:
		// docs/api.md: a 500 says nothing of the cause beyond its id.
		detail = codes[CodeInternalError].detail
		if status == http.StatusServiceUnavailable {
			detail = codes[CodeUnavailable].detail
		}
	case known && (info.fixedDetail || detail == ""):
		detail = info.detail
	case detail == "":
		detail = title
	}
	obj := ErrorObject{ID: id, Status: strconv.Itoa(status), Code: code, Title: title, Detail: detail}
	if status < 500 && (e.Pointer != "" || e.Parameter != "") {
		obj.Source = &Source{Pointer: e.Pointer, Parameter: e.Parameter}
	}
	return obj
}

// RetryAfter is d as Retry-After says it: whole seconds, rounded up, at
// least one. Pages that name the moment to try again use it too, so the page
// and the header agree.
func RetryAfter(d time.Duration) time.Duration {
	s := (d + time.Second - 1) / time.Second
	if s < 1 {
		s = 1
	}
	return s * time.Second
}

// SetRetryAfter sets h's Retry-After to d (RetryAfter): the one place every
// 429 and 503 of otpstep's server gets the header from.
func SetRetryAfter(h http.Header, d time.Duration) {
	h.Set("Retry-After", strconv.FormatInt(int64(RetryAfter(d)/time.Second), 10))
}

// Write answers the request with e as a JSON:API error document. It sets
// Retry-After (whole seconds, rounded up, at least 1) when e.RetryAfter is set
// and always for 429 and 503, which docs/api.md promises carry it. The error
// object's id is the request id from r's context. Write logs nothing; use
// Writer to have 5xx causes logged.
func Write(w http.ResponseWriter, r *http.Request, e *Error) {
	if e == nil {
		e = Internal(nil)
	}
	id := ""
	if r != nil {
		id = requestid.FromContext(r.Context())
	}
	obj := Object(id, e)
	status, _ := strconv.Atoi(obj.Status)
	body, err := json.Marshal(Document{Errors: []ErrorObject{obj}})
	if err != nil { // cannot happen: the document holds only strings
		body = []byte(`{"errors":[{"status":"500","code":"internal-error","title":"Internal server error"}]}`)
		status = http.StatusInternalServerError
	}
	h := w.Header()
	h.Set("Content-Type", MediaType)
	h.Del("Content-Length")
	if e.RetryAfter > 0 || status == http.StatusTooManyRequests || status == http.StatusServiceUnavailable {
		SetRetryAfter(h, e.RetryAfter)
	}
	w.WriteHeader(status)
	_, _ = w.Write(append(body, '\n'))
}

// Writer answers requests with errors of any type and logs server errors.
// The zero value logs nothing.
type Writer struct {
	// Logger receives one error-level line per 5xx (with its cause) and one
	// debug-level line per 4xx. Nil logs nothing.
	Logger *slog.Logger
}

// Write answers with err: an *Error anywhere in err's chain is used as is,
// anything else is a 500 internal-error. A 5xx is logged at error level with
// the full error, request id, method and path.
func (wr Writer) Write(w http.ResponseWriter, r *http.Request, err error) {
	var e *Error
	if !errors.As(err, &e) || e == nil {
		e = Internal(err)
	}
	if wr.Logger != nil {
		status, code := resolve(e)
		attrs := []slog.Attr{
			slog.Int("status", status),
			slog.String("code", code),
			slog.String("request_id", requestid.FromContext(r.Context())),
			slog.String("method", r.Method),
			slog.String("path", r.URL.Path),
		}
		if status >= 500 {
			cause := "<nil>"
			if err != nil {
				cause = err.Error()
			}
			attrs = append(attrs, slog.String("error", cause))
			wr.Logger.LogAttrs(r.Context(), slog.LevelError, "request failed", attrs...)
		} else {
			attrs = append(attrs, slog.String("detail", e.Detail))
			wr.Logger.LogAttrs(r.Context(), slog.LevelDebug, "request rejected", attrs...)
		}
	}
	Write(w, r, e)
}
