package web

import (
	"net/http"
	"sort"
	"sync"
	"sync/atomic"
	"time"
)

// InFlight tracks the requests a Server is serving and whether the server
// is going away. While it drains, readiness answers 503 and every answer
// says Connection: close, so clients that honour it open their next
// connection elsewhere instead of reusing one about to be closed; a
// shutdown that runs out of time names the requests it cuts off from it.
// Each Server has its own; there is no package-level state.
type InFlight struct {
	draining atomic.Bool
	clock    func() time.Time

	mu   sync.Mutex
	next uint64
	reqs map[uint64]Request
}

// Request is one request being served.
type Request struct {
	Method    string
	Path      string // never the query, which may carry codes or tokens
	RequestID string
	Started   time.Time
}

// String is "METHOD /path", as the shutdown log names a request.
func (r Request) String() string { return r.Method + " " + r.Path }

// NewInFlight returns an empty registry reading the time from clock
// (time.Now when nil).
func NewInFlight(clock func() time.Time) *InFlight {
	if clock == nil {
		clock = time.Now
	}
	return &InFlight{clock: clock, reqs: map[uint64]Request{}}
}

// Drain marks the server as going away: readiness answers 503 and answers
// carry Connection: close from now on. It cannot be undone.
func (f *InFlight) Drain() { f.draining.Store(true) }

// Draining reports whether Drain was called.
func (f *InFlight) Draining() bool { return f.draining.Load() }

// Requests are the requests being served now, oldest first.
func (f *InFlight) Requests() []Request {
	f.mu.Lock()
	out := make([]Request, 0, len(f.reqs))
	for _, r := range f.reqs {
		out = append(out, r)
	}
	f.mu.Unlock()
	sort.SliceStable(out, func(i, j int) bool { return out[i].Started.Before(out[j].Started) })
	return out
}

// Middleware registers each request for as long as its handler runs and,
// while draining, sets Connection: close on the answer (net/http then
// closes the connection after it), also on the answer of a request that
// began before Drain. Place it inside RequestID.
func (f *InFlight) Middleware(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		f.mu.Lock()
		id := f.next
		f.next++
		f.reqs[id] = Request{Method: r.Method, Path: r.URL.Path, RequestID: RequestIDFrom(r.Context()), Started: f.clock()}
		f.mu.Unlock()
		defer func() {
			f.mu.Lock()
			delete(f.reqs, id)
			f.mu.Unlock()
		}()
		next.ServeHTTP(&closingWriter{ResponseWriter: w, f: f}, r)
	})
}

// closingWriter adds Connection: close to the header when the answer
// starts while the server drains.
type closingWriter struct {
	http.ResponseWriter
	f       *InFlight
	started bool
}

func (w *closingWriter) start() {
	if w.started {
		return
	}
	w.started = true
	if w.f.Draining() {
		w.Header().Set("Connection", "close")
	}
}

func (w *closingWriter) WriteHeader(status int) {
	if status >= 200 {
		w.start()
	}
	w.ResponseWriter.WriteHeader(status)
}

func (w *closingWriter) Write(p []byte) (int, error) {
	w.start()
	return w.ResponseWriter.Write(p)
}

// Flush passes a flush through when the underlying writer supports it.
func (w *closingWriter) Flush() {
	w.start()
	_ = http.NewResponseController(w.ResponseWriter).Flush()
}

// Unwrap lets http.ResponseController reach the underlying writer.
func (w *closingWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }
