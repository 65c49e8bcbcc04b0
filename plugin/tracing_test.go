package plugin_test

import (
	"bytes"
	"context"
	"encoding/hex"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/google/uuid"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"
	"go.opentelemetry.io/otel/trace/noop"

	"github.com/otpstep/otpstep/plugin"
	"github.com/otpstep/otpstep/plugin/plugintest"
	"github.com/otpstep/otpstep/provider/mail/mailtest"
	"github.com/otpstep/otpstep/web/openapitest"
)

// jsonLines are the JSON log records written to b so far.
func jsonLines(t *testing.T, b *syncBuffer) []map[string]any {
	t.Helper()
	var out []map[string]any
	for _, l := range strings.Split(strings.TrimSpace(b.String()), "\n") {
		if l == "" {
			continue
		}
		var m map[string]any
		if err := json.Unmarshal([]byte(l), &m); err != nil {
			t.Fatalf("log line %q: %v", l, err)
		}
		out = append(out, m)
	}
	return out
}

// The caller's trace (a W3C traceparent on the request) as the tests send it.
const (
	callerTraceID     = "4bf92f3577b34da6a3ce929d0e0e4736"
	callerTraceparent = "00-" + callerTraceID + "-00f067aa0ba902b7-01"
)

// One PUT /sessions/{id} (passedLoginOTP false) is one trace, the caller's:
// the HTTP server span (named after the route template), the storage spans
// of its transaction (SQLite: a transaction and its statements; PostgreSQL:
// the pipelined batch) and, although the outbox dispatcher sends the code
// later and on its own goroutine, the SMTP send to the real peer, as a child
// of a span of the request (the trace context travels in the sealed outbox
// row). The request's log lines carry its trace_id.
func TestTracing_PutSessionIsOneTraceWithItsStorageAndSMTPSpans(t *testing.T) {
	forEachDialect(t, func(t *testing.T, dialect string) {
		exp := tracetest.NewInMemoryExporter()
		tp := sdktrace.NewTracerProvider(sdktrace.WithSyncer(exp))
		t.Cleanup(func() { _ = tp.Shutdown(context.Background()) })
		logs := &syncBuffer{}
		smtpSrv := mailtest.StartServer(t)
		srv := plugintest.StartOnWith(t, plugintest.NewStore(t, dialect), smtpMail(smtpSrv), func(o *plugin.Options) {
			o.TracerProvider = tp
			o.Logger = slog.New(slog.NewJSONHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
		})
		api := newAPIClient(t, srv)
		client := srv.NewLoginUI(t, allUserScopes...)
		alice := srv.NewUser(t)
		login := srv.LoginWithPassword(t, client, alice)
		exp.Reset() // the login's own traces

		sid := uuid.NewString()
		body := `{"userId":"` + alice.ID + `","passedLoginOTP":false}`
		res := api.do(http.MethodPut, "/sessions/"+sid, login.Token.AccessToken, "application/json", body, "traceparent", callerTraceparent)
		if res.Status != http.StatusOK && res.Status != http.StatusCreated {
			t.Fatalf("PUT /sessions: %d %s", res.Status, res.Body)
		}
		codeFrom(t, smtpSrv, 1, alice.Email)

		// None of what is asserted below is done when the client has the
		// response: the HTTP span ends and the access line is written after
		// the handler returns, and the dispatcher sends the mail on its own
		// goroutine — Send ends the SMTP span after the peer has the mail
		// (which codeFrom saw), then the dispatcher logs the send, then it
		// deletes the row. So wait for the outbox to settle (the row gone:
		// the send's span and log line are written), then for the request's
		// span and access line.
		waitOutboxSettled(t, srv)
		prefix := openapitest.DefaultPrefix
		var (
			spans        tracetest.SpanStubs
			access, sent map[string]any
		)
		deadline := time.Now().Add(20 * time.Second)
		for {
			spans = exp.GetSpans()
			access, sent = nil, nil
			for _, l := range jsonLines(t, logs) {
				switch {
				case l["msg"] == "http request" && l["method"] == http.MethodPut:
					access = l
				case l["msg"] == "outbox: message sent":
					sent = l
				}
			}
			done := findSpan(spans, "smtp send") != nil && findSpan(spans, "PUT "+prefix+"/sessions/{sessionId}") != nil &&
				access != nil && sent != nil
			if done || time.Now().After(deadline) {
				break
			}
			time.Sleep(10 * time.Millisecond)
		}

		inTrace := map[trace.SpanID]tracetest.SpanStub{}
		for _, s := range spans {
			if s.SpanContext.TraceID().String() == callerTraceID {
				inTrace[s.SpanContext.SpanID()] = s
			}
		}
		httpSpan := findSpan(spans, "PUT "+prefix+"/sessions/{sessionId}")
		if httpSpan == nil {
			t.Fatalf("no HTTP span named after the route; spans: %v", spanNames(spans))
		}
		if httpSpan.SpanKind != trace.SpanKindServer || httpSpan.SpanContext.TraceID().String() != callerTraceID ||
			httpSpan.Parent.SpanID().String() != "00f067aa0ba902b7" || !httpSpan.Parent.IsRemote() {
			t.Errorf("HTTP span %s: kind %v, trace %s, parent %s: want a server span under the caller's traceparent",
				httpSpan.Name, httpSpan.SpanKind, httpSpan.SpanContext.TraceID(), httpSpan.Parent.SpanID())
		}

		storageNames := map[string]bool{}
		for _, s := range inTrace {
			if s.InstrumentationScope.Name == "github.com/otpstep/otpstep/storage" {
				storageNames[s.Name] = true
				if !descendsFrom(s, httpSpan.SpanContext.SpanID(), inTrace) {
					t.Errorf("storage span %q is not under the HTTP span", s.Name)
				}
			}
		}
		want := "db transaction" // SQLite: InTx
		if dialect == "postgres" {
			want = "db batch" // the pipelined new-session transaction
		}
		if !storageNames[want] {
			t.Errorf("no %q span in the request's trace; storage spans: %v", want, storageNames)
		}
		if dialect == "sqlite" && !storageNames["db INSERT"] {
			t.Errorf("no statement span in the transaction; storage spans: %v", storageNames)
		}

		smtpSpan := findSpan(spans, "smtp send")
		switch {
		case smtpSpan == nil:
			t.Fatalf("no SMTP span; spans: %v", spanNames(spans))
		case smtpSpan.SpanContext.TraceID().String() != callerTraceID:
			t.Errorf("SMTP span in trace %s, want the request's %s", smtpSpan.SpanContext.TraceID(), callerTraceID)
		case !descendsFrom(*smtpSpan, httpSpan.SpanContext.SpanID(), inTrace):
			t.Errorf("SMTP span's parent %s is not the HTTP span or under it", smtpSpan.Parent.SpanID())
		case smtpSpan.SpanKind != trace.SpanKindClient || smtpSpan.Status.Code.String() == "Error":
			t.Errorf("SMTP span: kind %v, status %v", smtpSpan.SpanKind, smtpSpan.Status)
		}

		// The access log line of the PUT, and the dispatcher's line of
		// the send, name the trace.
		if access == nil || access["trace_id"] != callerTraceID || access["span_id"] != httpSpan.SpanContext.SpanID().String() {
			t.Errorf("access log line %v: want trace_id %s and the HTTP span's span_id", access, callerTraceID)
		}
		if sent == nil || sent["trace_id"] != callerTraceID {
			t.Errorf("outbox log line %v: want trace_id %s", sent, callerTraceID)
		}
	})
}

// Without OTEL_EXPORTER_OTLP_ENDPOINT (or ..._TRACES_ENDPOINT) tracing is off:
// TracerProviderFromEnv gives the no-op provider, a request carrying a
// traceparent gets no span (its log lines no trace_id) and nothing reaches
// the collector. With the endpoint set, the same run exports over OTLP/HTTP
// to it, at the latest when the provider is shut down.
func TestTracing_OffUnlessTheOTLPEndpointIsSet(t *testing.T) {
	var posts atomic.Int32
	collector := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		if r.Method == http.MethodPost && r.URL.Path == "/v1/traces" {
			posts.Add(1)
		}
		w.Header().Set("Content-Type", "application/x-protobuf")
		w.WriteHeader(http.StatusOK)
	}))
	t.Cleanup(collector.Close)

	run := func(t *testing.T, env map[string]string) (trace.TracerProvider, []map[string]any) {
		t.Helper()
		for k, v := range env {
			t.Setenv(k, v) // the exporter reads the process environment
		}
		lookup := func(k string) (string, bool) { v, ok := env[k]; return v, ok && v != "" }
		tp, err := plugin.TracerProviderFromEnv(context.Background(), lookup)
		if err != nil {
			t.Fatal(err)
		}
		logs := &syncBuffer{}
		srv := plugintest.StartOnWith(t, plugintest.NewStore(t, "sqlite"), nil, func(o *plugin.Options) {
			o.TracerProvider = tp
			o.Logger = slog.New(plugin.LogHandlerWithTrace(slog.NewJSONHandler(logs, nil)))
		})
		req, err := http.NewRequest(http.MethodGet, srv.URL+"/.well-known/openid-configuration", nil)
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("traceparent", callerTraceparent)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("discovery: %d", resp.StatusCode)
		}
		srv.HTTP.Close() // the access line is written before the answer ends; wait for the handler
		if err := plugin.ShutdownTracerProvider(context.Background(), tp); err != nil {
			t.Fatalf("shut down the tracer provider: %v", err)
		}
		return tp, jsonLines(t, logs)
	}

	t.Run("off", func(t *testing.T) {
		tp, lines := run(t, map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": "", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": ""})
		if _, ok := tp.(noop.TracerProvider); !ok {
			t.Errorf("provider %T, want the no-op one", tp)
		}
		for _, l := range lines {
			if _, ok := l["trace_id"]; ok {
				t.Errorf("log line with a trace_id while tracing is off: %v", l)
			}
		}
		if n := posts.Load(); n != 0 {
			t.Errorf("%d exports reached the collector", n)
		}
	})
	t.Run("disabled", func(t *testing.T) {
		tp, _ := run(t, map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": collector.URL, "OTEL_SDK_DISABLED": "true"})
		if _, ok := tp.(noop.TracerProvider); !ok {
			t.Errorf("provider %T with OTEL_SDK_DISABLED=true, want the no-op one", tp)
		}
		if n := posts.Load(); n != 0 {
			t.Errorf("%d exports reached the collector", n)
		}
	})
	t.Run("on", func(t *testing.T) {
		tp, lines := run(t, map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": collector.URL, "OTEL_SERVICE_NAME": "otpstep-test"})
		if _, ok := tp.(*sdktrace.TracerProvider); !ok {
			t.Errorf("provider %T, want the SDK's", tp)
		}
		if posts.Load() == 0 {
			t.Error("nothing exported to the collector")
		}
		found := false
		for _, l := range lines {
			if l["msg"] == "http request" && l["trace_id"] == callerTraceID {
				found = true
			}
		}
		if !found {
			t.Errorf("no access log line with trace_id %s: %v", callerTraceID, lines)
		}
	})
}

func findSpan(spans tracetest.SpanStubs, name string) *tracetest.SpanStub {
	for i := range spans {
		if spans[i].Name == name {
			return &spans[i]
		}
	}
	return nil
}

func spanNames(spans tracetest.SpanStubs) []string {
	names := make([]string, len(spans))
	for i, s := range spans {
		names[i] = s.Name + "@" + s.SpanContext.TraceID().String()
	}
	return names
}

// descendsFrom reports whether s is ancestor's child or a deeper descendant
// within the trace's spans.
func descendsFrom(s tracetest.SpanStub, ancestor trace.SpanID, spans map[trace.SpanID]tracetest.SpanStub) bool {
	for range len(spans) + 1 {
		parent := s.Parent.SpanID()
		if parent == ancestor {
			return true
		}
		next, ok := spans[parent]
		if !ok {
			return false
		}
		s = next
	}
	return false
}

// `otpstep serve` itself: with OTEL_EXPORTER_OTLP_ENDPOINT it exports the
// spans of a request to the collector by the time it exits after SIGTERM,
// although the batch processor was told to wait 10 minutes (Shutdown's
// flush, then the provider's shutdown), and the request's access line names
// its trace; without the variable it exports nothing and its lines name no
// trace.
func TestTracing_ServeProcessExportsOnlyWithTheEndpointAndFlushesOnShutdown(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the binary and runs otpstep serve through SIGTERM")
	}
	traceID, err := hex.DecodeString(callerTraceID)
	if err != nil {
		t.Fatal(err)
	}
	var (
		mu      sync.Mutex
		exports [][]byte
	)
	collector := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		if r.Method == http.MethodPost && r.URL.Path == "/v1/traces" {
			mu.Lock()
			exports = append(exports, body)
			mu.Unlock()
		}
		w.Header().Set("Content-Type", "application/x-protobuf")
		w.WriteHeader(http.StatusOK)
	}))
	t.Cleanup(collector.Close)
	smtpSrv := mailtest.StartServer(t)

	for _, tc := range []struct {
		name string
		env  []string
		want bool
	}{
		{"off", nil, false},
		{"on", []string{"OTEL_EXPORTER_OTLP_ENDPOINT=" + collector.URL, "OTEL_BSP_SCHEDULE_DELAY=600000"}, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			mu.Lock()
			exports = nil
			mu.Unlock()
			dsn := "sqlite://" + filepath.Join(t.TempDir(), "tracing.db")
			env := append([]string{"OTPSTEP_LOG_LEVEL=info", "OTPSTEP_SERVER_SHUTDOWN_GRACE=0s"}, tc.env...)
			proc := startServe(t, dsn, smtpSrv.URL(), env...)
			req, err := http.NewRequest(http.MethodGet, proc.url+"/.well-known/openid-configuration", nil)
			if err != nil {
				t.Fatal(err)
			}
			req.Header.Set("traceparent", callerTraceparent)
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			_, _ = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			proc.signal(syscall.SIGTERM)
			if code := proc.wait(30 * time.Second); code != 0 {
				t.Fatalf("exit code %d:\n%s", code, proc.logs)
			}
			mu.Lock()
			defer mu.Unlock()
			exported := false
			for _, b := range exports {
				exported = exported || bytes.Contains(b, traceID)
			}
			if exported != tc.want || (!tc.want && len(exports) > 0) {
				t.Errorf("%d exports, the request's trace among them: %v; want %v", len(exports), exported, tc.want)
			}
			var access string
			for _, l := range strings.Split(proc.logs.String(), "\n") {
				if strings.Contains(l, "http request") && strings.Contains(l, "openid-configuration") {
					access = l
				}
			}
			if named := strings.Contains(access, "trace_id="+callerTraceID); named != tc.want {
				t.Errorf("access line %q names the trace: %v, want %v", access, named, tc.want)
			}
		})
	}
}
