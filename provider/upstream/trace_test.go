package upstream

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"

	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"

	"github.com/otpstep/otpstep/provider/config"
)

// With a TracerProvider, each upstream request (here the discovery fetch
// and the code redemption) is a client span of the caller's trace, and the
// upstream receives that trace in a traceparent header. The caller's
// HTTPClient is left as it was.
func TestTracing_UpstreamFetchesAreClientSpans(t *testing.T) {
	var (
		mu      sync.Mutex
		parents = map[string]string{}
	)
	var issuer string
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		parents[r.URL.Path] = r.Header.Get("traceparent")
		mu.Unlock()
		w.Header().Set("Content-Type", "application/json")
		switch r.URL.Path {
		case "/.well-known/openid-configuration":
			_ = json.NewEncoder(w).Encode(map[string]string{"issuer": issuer, "authorization_endpoint": issuer + "/auth",
				"token_endpoint": issuer + "/token", "jwks_uri": issuer + "/jwks"})
		case "/token":
			_ = json.NewEncoder(w).Encode(map[string]any{"access_token": "at", "token_type": "Bearer", "id_token": "raw"})
		}
	}))
	defer up.Close()
	issuer = up.URL

	exp := tracetest.NewInMemoryExporter()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSyncer(exp))
	client := &http.Client{}
	reg := NewRegistry([]config.Upstream{{Name: "up", Issuer: issuer, ClientID: "c", ClientSecret: "s"}},
		Options{HTTPClient: client, TracerProvider: tp})
	p, _ := reg.Lookup("up")
	ctx, span := tp.Tracer("test").Start(context.Background(), "request")
	toks, err := p.Exchange(ctx, Flow{RedirectURI: "http://127.0.0.1/cb", State: "s", Nonce: "n", Verifier: "v-0123456789012345678901234567890123456789"}, "code")
	span.End()
	if err != nil || toks.IDToken != "raw" {
		t.Fatalf("Exchange = %+v, %v", toks, err)
	}
	if client.Transport != nil {
		t.Error("the caller's HTTPClient was changed")
	}

	traceID := span.SpanContext().TraceID()
	clientSpans := 0
	for _, s := range exp.GetSpans() {
		if s.SpanKind != trace.SpanKindClient {
			continue
		}
		clientSpans++
		if s.SpanContext.TraceID() != traceID || s.Parent.SpanID() != span.SpanContext().SpanID() {
			t.Errorf("client span %q: trace %s parent %s, want under the caller's span", s.Name, s.SpanContext.TraceID(), s.Parent.SpanID())
		}
	}
	if clientSpans != 2 {
		t.Errorf("%d client spans, want 2 (discovery, token)", clientSpans)
	}
	mu.Lock()
	defer mu.Unlock()
	for _, path := range []string{"/.well-known/openid-configuration", "/token"} {
		if tpar := parents[path]; len(tpar) != 55 || tpar[3:35] != traceID.String() {
			t.Errorf("%s got traceparent %q, want one of trace %s", path, tpar, traceID)
		}
	}
}
