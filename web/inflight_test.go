package web

import (
	"net/http"
	"net/http/httptest"
	"testing"
)

// The registry lists a request while its handler runs (method and path,
// never the query) and forgets it after; once draining, answers carry
// Connection: close, also the answer of a request that began before.
func TestInFlight_ListsRunningRequestsAndClosesWhileDraining(t *testing.T) {
	f := NewInFlight(nil)
	entered, release := make(chan struct{}), make(chan struct{})
	h := RequestID(f.Middleware(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/slow" {
			close(entered)
			<-release
		}
		w.WriteHeader(http.StatusNoContent)
	})))

	plain := httptest.NewRecorder()
	h.ServeHTTP(plain, httptest.NewRequest(http.MethodGet, "/fast", nil))
	if got := plain.Header().Get("Connection"); got != "" {
		t.Fatalf("Connection %q before draining", got)
	}
	if n := len(f.Requests()); n != 0 {
		t.Fatalf("%d requests listed after they ended", n)
	}

	slow := httptest.NewRecorder()
	done := make(chan struct{})
	go func() {
		defer close(done)
		h.ServeHTTP(slow, httptest.NewRequest(http.MethodPost, "/slow?code=123456", nil))
	}()
	<-entered
	reqs := f.Requests()
	if len(reqs) != 1 || reqs[0].String() != "POST /slow" || reqs[0].RequestID == "" {
		t.Fatalf("in flight: %+v, want POST /slow with its request id", reqs)
	}
	f.Drain()
	close(release)
	<-done
	if got := slow.Header().Get("Connection"); got != "close" {
		t.Fatalf("request begun before Drain answered with Connection %q, want close", got)
	}
	if n := len(f.Requests()); n != 0 {
		t.Fatalf("%d requests listed after they ended", n)
	}
	late := httptest.NewRecorder()
	h.ServeHTTP(late, httptest.NewRequest(http.MethodGet, "/fast", nil))
	if got := late.Header().Get("Connection"); got != "close" || !f.Draining() {
		t.Fatalf("while draining: Connection %q, Draining %v", got, f.Draining())
	}
}
