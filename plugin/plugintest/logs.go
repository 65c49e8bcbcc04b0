package plugintest

import (
	"bytes"
	"strings"
	"sync"
)

// Logs holds every line a test server logged (slog's text format, debug
// level and up), for tests that assert what an operator would read.
type Logs struct {
	mu sync.Mutex
	b  bytes.Buffer
}

// Write appends log output; the server's handler calls it.
func (l *Logs) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

// Lines returns the lines logged so far that contain every one of subs.
func (l *Logs) Lines(subs ...string) []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	var out []string
	for _, line := range strings.Split(l.b.String(), "\n") {
		ok := line != ""
		for _, s := range subs {
			ok = ok && strings.Contains(line, s)
		}
		if ok {
			out = append(out, line)
		}
	}
	return out
}

// String is everything logged so far.
func (l *Logs) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}
