package web

import (
	_ "embed"
	"net/http"
	"strconv"
)

// OpenAPISpec is web/openapi.yaml, the machine-readable HTTP contract of
// docs/api.md (OpenAPI 3.0.3), embedded in the binary. Treat it as read-only.
//
//go:embed openapi.yaml
var OpenAPISpec []byte

// OpenAPIMediaType is the content type OpenAPIHandler answers with.
const OpenAPIMediaType = "application/yaml"

// OpenAPIHandler serves OpenAPISpec (GET and HEAD) as application/yaml, for
// a route such as GET /openapi.yaml. Other methods answer 405.
func OpenAPIHandler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			w.Header().Set("Allow", "GET, HEAD")
			http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
			return
		}
		h := w.Header()
		h.Set("Content-Type", OpenAPIMediaType)
		h.Set("Content-Length", strconv.Itoa(len(OpenAPISpec)))
		// The document changes only with the binary.
		h.Set("Cache-Control", "public, max-age=300")
		w.WriteHeader(http.StatusOK)
		if r.Method == http.MethodHead {
			return
		}
		_, _ = w.Write(OpenAPISpec)
	})
}
