package plugin_test

import (
	"bytes"
	"io"
	"net/http"
	"testing"

	"github.com/otpstep/otpstep/plugin/plugintest"
	"github.com/otpstep/otpstep/web"
)

// TestOpenAPI_ServedAtOpenAPIYAML: openapi.yaml documents GET /openapi.yaml,
// yet standalone otpstep answered it 404 (web.OpenAPIHandler was used by its
// test only). The running server serves the embedded document.
func TestOpenAPI_ServedAtOpenAPIYAML(t *testing.T) {
	srv := plugintest.Start(t, "sqlite", nil)
	resp, err := http.Get(srv.URL + "/openapi.yaml")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET /openapi.yaml: status %d, want 200", resp.StatusCode)
	}
	if ct := resp.Header.Get("Content-Type"); ct != web.OpenAPIMediaType {
		t.Errorf("Content-Type %q, want %s", ct, web.OpenAPIMediaType)
	}
	if !bytes.Equal(body, web.OpenAPISpec) {
		t.Error("body is not web.OpenAPISpec")
	}
}
