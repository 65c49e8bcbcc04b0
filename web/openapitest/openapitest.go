// Package openapitest checks in tests that otpstep's HTTP responses keep the
// contract of web/openapi.yaml: the route and status are documented, and the
// content type, headers and body match the spec (kin-openapi).
//
// It reads the spec from the source tree rather than importing package web,
// so web's own (internal) tests can use it without an import cycle.
package openapitest

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"

	"github.com/getkin/kin-openapi/openapi3"
	"github.com/getkin/kin-openapi/openapi3filter"
	"github.com/getkin/kin-openapi/routers"
	"github.com/getkin/kin-openapi/routers/gorillamux"
)

// DefaultPrefix is the user-API prefix the spec's paths are written with
// (config api.prefix, default /user/2024-3).
const DefaultPrefix = "/user/2024-3"

// jsonAPIMediaType is the media type of every JSON:API error document.
const jsonAPIMediaType = "application/vnd.api+json"

// maxShownBody bounds how much of a body a failure message quotes.
const maxShownBody = 2048

// Validator checks requests and their responses against one parsed and
// validated copy of the spec. It is safe for concurrent use.
type Validator struct {
	doc    *openapi3.T
	router routers.Router
	opts   *openapi3filter.Options
	prefix string
}

// loaded caches one Validator per user-API prefix for the spec in the source
// tree, so the spec is parsed and validated once per test binary.
var loaded = struct {
	sync.Mutex
	byPrefix map[string]*loadResult
}{byPrefix: map[string]*loadResult{}}

type loadResult struct {
	once sync.Once
	v    *Validator
	err  error
}

// Load returns the validator of web/openapi.yaml with the default user-API
// prefix. It fails the test when the spec cannot be found, parsed or validated.
func Load(t testing.TB) *Validator {
	t.Helper()
	return LoadPrefix(t, DefaultPrefix)
}

// LoadPrefix is Load for a server whose user API is mounted under prefix
// (config api.prefix) instead of /user/2024-3.
func LoadPrefix(t testing.TB, prefix string) *Validator {
	t.Helper()
	loaded.Lock()
	res, ok := loaded.byPrefix[prefix]
	if !ok {
		res = &loadResult{}
		loaded.byPrefix[prefix] = res
	}
	loaded.Unlock()
	res.once.Do(func() {
		path, err := SpecPath()
		if err != nil {
			res.err = err
			return
		}
		spec, err := os.ReadFile(path)
		if err != nil {
			res.err = err
			return
		}
		res.v, res.err = Parse(spec, prefix)
		if res.err != nil {
			res.err = fmt.Errorf("%s: %w", path, res.err)
		}
	})
	if res.err != nil {
		t.Fatalf("openapitest: %v", res.err)
	}
	return res.v
}

// SpecPath finds web/openapi.yaml in the source tree: beside this package's
// source, or under the module root above the working directory.
func SpecPath() (string, error) {
	var tried []string
	if _, file, _, ok := runtime.Caller(0); ok && filepath.IsAbs(file) {
		p := filepath.Join(filepath.Dir(file), "..", "openapi.yaml")
		if _, err := os.Stat(p); err == nil {
			return p, nil
		}
		tried = append(tried, p)
	}
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			p := filepath.Join(dir, "web", "openapi.yaml")
			if _, err := os.Stat(p); err == nil {
				return p, nil
			}
			tried = append(tried, p)
			break
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			break
		}
		dir = parent
	}
	return "", fmt.Errorf("web/openapi.yaml not found (tried %s)", strings.Join(tried, ", "))
}

// Parse loads spec, validates it as an OpenAPI document (examples included),
// rewrites the user-API paths from DefaultPrefix to prefix, and builds a
// host-independent router: tests serve on http://127.0.0.1:PORT, so the
// servers are replaced by the relative "/".
func Parse(spec []byte, prefix string) (*Validator, error) {
	if !strings.HasPrefix(prefix, "/") || strings.HasSuffix(prefix, "/") {
		return nil, fmt.Errorf("prefix %q must start with / and not end with /", prefix)
	}
	loader := openapi3.NewLoader()
	doc, err := loader.LoadFromData(spec)
	if err != nil {
		return nil, fmt.Errorf("parse: %w", err)
	}
	// Formats the spec uses that kin-openapi leaves unchecked by default,
	// scoped to this document (no global registration).
	doc.SetStringFormatValidator("uuid", openapi3.NewRegexpFormatValidator(openapi3.FormatOfStringForUUIDOfRFC9562))
	doc.SetStringFormatValidator("email", openapi3.NewRegexpFormatValidator(openapi3.FormatOfStringForEmail))
	if err := doc.Validate(loader.Context); err != nil {
		return nil, fmt.Errorf("validate: %w", err)
	}
	if prefix != DefaultPrefix {
		paths := openapi3.NewPaths()
		for path, item := range doc.Paths.Map() {
			if strings.HasPrefix(path, DefaultPrefix+"/") {
				path = prefix + strings.TrimPrefix(path, DefaultPrefix)
			}
			paths.Set(path, item)
		}
		doc.Paths = paths
	}
	doc.Servers = openapi3.Servers{{URL: "/"}}
	router, err := gorillamux.NewRouter(doc)
	if err != nil {
		return nil, fmt.Errorf("router: %w", err)
	}
	opts := &openapi3filter.Options{
		// Authentication is the server's job, not the contract check's.
		AuthenticationFunc: openapi3filter.NoopAuthenticationFunc,
		// A status the spec does not list for the operation is a violation.
		IncludeResponseStatus: true,
		SchemaValidationOptions: append(doc.GetSchemaValidationOptions(),
			openapi3.DisableSchemaErrorDetails()),
	}
	return &Validator{doc: doc, router: router, opts: opts, prefix: prefix}, nil
}

// Doc is the parsed spec, user-API paths under the validator's prefix. Read only.
func (v *Validator) Doc() *openapi3.T { return v.doc }

// Check fails t (without stopping it) when resp, answered to req, breaks the
// spec: an undocumented route or status, a wrong content type, a missing
// required header (Retry-After on 429/503, X-Request-Id on JSON:API errors),
// or a body that does not match its schema. reqBody is quoted in the
// failure message only.
func (v *Validator) Check(t testing.TB, req *http.Request, reqBody []byte, resp *http.Response, respBody []byte) {
	t.Helper()
	if err := v.Validate(req, resp, respBody); err != nil {
		t.Errorf("%s", failure(req, reqBody, resp, respBody, err))
	}
}

// CheckRecorder is Check for a response recorded by httptest.
func (v *Validator) CheckRecorder(t testing.TB, req *http.Request, reqBody []byte, rec *httptest.ResponseRecorder) {
	t.Helper()
	resp := rec.Result()
	body := rec.Body.Bytes()
	v.Check(t, req, reqBody, resp, body)
}

// CheckRoundTrip sends req with client (http.DefaultClient when nil), checks
// the response with Check, and returns it with its whole body. resp.Body is
// replaced by a reader over the returned bytes, so it may still be read. A
// transport error stops the test. When client follows redirects, the final
// request is the one checked.
func (v *Validator) CheckRoundTrip(t testing.TB, client *http.Client, req *http.Request) (*http.Response, []byte) {
	t.Helper()
	if client == nil {
		client = http.DefaultClient
	}
	reqBody, err := snapshotBody(req)
	if err != nil {
		t.Fatalf("openapitest: read request body of %s %s: %v", req.Method, req.URL, err)
	}
	resp, err := client.Do(req)
	if err != nil {
		t.Fatalf("openapitest: %s %s: %v", req.Method, req.URL, err)
	}
	body, err := io.ReadAll(resp.Body)
	_ = resp.Body.Close()
	if err != nil {
		t.Fatalf("openapitest: read response of %s %s: %v", req.Method, req.URL, err)
	}
	resp.Body = io.NopCloser(bytes.NewReader(body))
	checked := req
	if resp.Request != nil {
		checked = resp.Request
	}
	v.Check(t, checked, reqBody, resp, body)
	return resp, body
}

// snapshotBody returns a copy of req's body and leaves req able to send it.
func snapshotBody(req *http.Request) ([]byte, error) {
	if req.Body == nil || req.Body == http.NoBody {
		return nil, nil
	}
	if req.GetBody != nil {
		rc, err := req.GetBody()
		if err != nil {
			return nil, err
		}
		defer rc.Close()
		return io.ReadAll(rc)
	}
	body, err := io.ReadAll(req.Body)
	_ = req.Body.Close()
	if err != nil {
		return nil, err
	}
	req.Body = io.NopCloser(bytes.NewReader(body))
	req.GetBody = func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(body)), nil }
	return body, nil
}

// Validate returns why resp, answered to req with body respBody, breaks the
// spec, or nil. Check reports the same through a test.
func (v *Validator) Validate(req *http.Request, resp *http.Response, respBody []byte) error {
	if req == nil || req.URL == nil || resp == nil {
		return errors.New("openapitest: request and response are required")
	}
	header := resp.Header
	if header == nil {
		header = http.Header{}
	}
	route, params, err := v.router.FindRoute(req)
	switch {
	case errors.Is(err, routers.ErrPathNotFound):
		return v.validateUnknownRoute(resp.StatusCode, header, respBody,
			fmt.Sprintf("no path of openapi.yaml matches %s", req.URL.Path))
	case errors.Is(err, routers.ErrMethodNotAllowed):
		if resp.StatusCode == http.StatusMethodNotAllowed {
			return nil // mux's answer for a method the route does not serve
		}
		return fmt.Errorf("openapi.yaml has no %s operation for %s", req.Method, req.URL.Path)
	case err != nil:
		return fmt.Errorf("route %s %s: %w", req.Method, req.URL.Path, err)
	}
	input := &openapi3filter.ResponseValidationInput{
		RequestValidationInput: &openapi3filter.RequestValidationInput{
			Request:    req,
			PathParams: params,
			Route:      route,
			Options:    v.opts,
		},
		Status:  resp.StatusCode,
		Header:  header,
		Options: v.opts,
	}
	input.SetBodyBytes(respBody)
	if err := openapi3filter.ValidateResponse(context.Background(), input); err != nil {
		return fmt.Errorf("%s %s (%s): %w", route.Method, route.Path, route.Operation.OperationID, err)
	}
	if err := checkUndeclaredBody(route, resp.StatusCode, respBody); err != nil {
		return fmt.Errorf("%s %s (%s): %w", route.Method, route.Path, route.Operation.OperationID, err)
	}
	if err := checkJSONAPIErrors(resp.StatusCode, header, respBody); err != nil {
		return fmt.Errorf("%s %s (%s): %w", route.Method, route.Path, route.Operation.OperationID, err)
	}
	return nil
}

// validateUnknownRoute accepts the answer to a path the spec does not list
// only when it is a 404: an HTML page, or a JSON:API not-found error.
func (v *Validator) validateUnknownRoute(status int, header http.Header, body []byte, why string) error {
	if status != http.StatusNotFound {
		return fmt.Errorf("%s (answered %d)", why, status)
	}
	if mediaType(header) != jsonAPIMediaType {
		return nil
	}
	ref := v.doc.Components.Schemas["Errors404"]
	if ref == nil || ref.Value == nil {
		return errors.New("openapi.yaml lacks components.schemas.Errors404")
	}
	var value any
	if err := json.Unmarshal(body, &value); err != nil {
		return fmt.Errorf("404 for an unknown path: body is not JSON: %w", err)
	}
	if err := ref.Value.VisitJSON(value, append(v.opts.SchemaValidationOptions, openapi3.VisitAsResponse())...); err != nil {
		return fmt.Errorf("404 for an unknown path: %w", err)
	}
	return checkJSONAPIErrors(status, header, body)
}

// checkUndeclaredBody fails a non-redirect response that carries a body
// where the spec declares none (kin-openapi skips such responses).
func checkUndeclaredBody(route *routers.Route, status int, body []byte) error {
	if status >= 300 && status < 400 || len(bytes.TrimSpace(body)) == 0 {
		return nil
	}
	ref := route.Operation.Responses.Status(status)
	if ref == nil {
		ref = route.Operation.Responses.Default()
	}
	if ref == nil || ref.Value == nil || len(ref.Value.Content) > 0 {
		return nil
	}
	return fmt.Errorf("status %d declares no body, got %d bytes", status, len(body))
}

// checkJSONAPIErrors checks what schemas cannot: every error object's status
// is the HTTP status, and its id is the X-Request-Id header (docs/api.md).
func checkJSONAPIErrors(status int, header http.Header, body []byte) error {
	if mediaType(header) != jsonAPIMediaType {
		return nil
	}
	var doc struct {
		Errors []struct {
			ID     string `json:"id"`
			Status string `json:"status"`
		} `json:"errors"`
	}
	if err := json.Unmarshal(body, &doc); err != nil {
		return fmt.Errorf("JSON:API body: %w", err)
	}
	rid := header.Get("X-Request-Id")
	for i, e := range doc.Errors {
		if e.Status != fmt.Sprint(status) {
			return fmt.Errorf("errors[%d].status is %q, the response status %d", i, e.Status, status)
		}
		if rid != "" && e.ID != rid {
			return fmt.Errorf("errors[%d].id is %q, X-Request-Id is %q", i, e.ID, rid)
		}
	}
	return nil
}

func mediaType(h http.Header) string {
	mt, _, err := mime.ParseMediaType(h.Get("Content-Type"))
	if err != nil {
		return ""
	}
	return mt
}

// failure formats a violation with the exchange that caused it.
func failure(req *http.Request, reqBody []byte, resp *http.Response, respBody []byte, err error) string {
	var b strings.Builder
	fmt.Fprintf(&b, "response breaks web/openapi.yaml:\n  %v\n", err)
	fmt.Fprintf(&b, "  request:  %s %s\n", req.Method, req.URL.RequestURI())
	if len(reqBody) > 0 {
		fmt.Fprintf(&b, "            %s\n", shown(reqBody))
	}
	fmt.Fprintf(&b, "  response: %d, Content-Type %q", resp.StatusCode, resp.Header.Get("Content-Type"))
	for _, h := range []string{"Retry-After", "X-Request-Id", "Location"} {
		if v := resp.Header.Get(h); v != "" {
			fmt.Fprintf(&b, ", %s %q", h, v)
		}
	}
	b.WriteByte('\n')
	if len(respBody) > 0 {
		fmt.Fprintf(&b, "            %s\n", shown(respBody))
	}
	return b.String()
}

func shown(body []byte) string {
	s := strings.TrimSpace(string(body))
	if len(s) > maxShownBody {
		s = s[:maxShownBody] + fmt.Sprintf("… (%d bytes)", len(body))
	}
	return s
}
