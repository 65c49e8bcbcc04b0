package main

import (
	"bytes"
	"context"
	"encoding/json"
	"net"
	"net/http"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// syncBuffer is a bytes.Buffer serve may write while the test reads it.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func devServeEnv(t *testing.T, listen string) map[string]string {
	return map[string]string{
		"OTPSTEP_DATABASE_DSN":   "sqlite://" + filepath.Join(t.TempDir(), "dev.db"),
		"OTPSTEP_SECRETS_SYSTEM": strings.Repeat("dev-secret-", 4),
		"OTPSTEP_SERVER_LISTEN":  listen,
		"OTPSTEP_LOG_LEVEL":      "error",
	}
}

func freePort(t *testing.T) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	_, port, _ := net.SplitHostPort(ln.Addr().String())
	return port
}

// With --dev, a changed server.listen without server.public_url gives the
// issuer http://host:port of that address (not the default 4444's).
func TestServeDev_ChangedListenDerivesThePublicURL(t *testing.T) {
	port := freePort(t)
	env := devServeEnv(t, "127.0.0.1:"+port)
	var out, errOut syncBuffer
	cmd := newRootCommand(&out, &errOut, func(k string) (string, bool) { v, ok := env[k]; return v, ok })
	cmd.SetArgs([]string{"serve", "--dev"})
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { done <- cmd.ExecuteContext(ctx) }()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("serve: %v (log %s)", err, errOut.String())
		}
	}()
	var disc struct {
		Issuer string `json:"issuer"`
	}
	for deadline := time.Now().Add(20 * time.Second); ; {
		res, err := http.Get("http://127.0.0.1:" + port + "/.well-known/openid-configuration")
		if err == nil {
			err = json.NewDecoder(res.Body).Decode(&disc)
			res.Body.Close()
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("discovery: %v (log %s)", err, errOut.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
	if want := "http://127.0.0.1:" + port; disc.Issuer != want {
		t.Fatalf("issuer %q, want %q", disc.Issuer, want)
	}
	if !strings.Contains(out.String(), "http://127.0.0.1:"+port+"/oauth2/auth?") {
		t.Fatalf("the banner's URLs are not on the listen address:\n%s", out.String())
	}
}

// A taken port fails the start, naming server.listen, before any line of
// the --dev banner is printed.
func TestServeDev_TakenPortFailsBeforeTheBanner(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	env := devServeEnv(t, ln.Addr().String())
	var out, errOut syncBuffer
	cmd := newRootCommand(&out, &errOut, func(k string) (string, bool) { v, ok := env[k]; return v, ok })
	cmd.SetArgs([]string{"serve", "--dev"})
	err = cmd.ExecuteContext(t.Context())
	if err == nil || !strings.Contains(err.Error(), "server.listen") {
		t.Fatalf("serve on a taken port: %v, want server.listen", err)
	}
	if out.String() != "" {
		t.Fatalf("printed before failing:\n%s", out.String())
	}
}

func TestDevPublicURL(t *testing.T) {
	for listen, want := range map[string]string{
		"127.0.0.1:5555": "http://127.0.0.1:5555",
		"0.0.0.0:5555":   "http://127.0.0.1:5555",
		":5555":          "http://127.0.0.1:5555",
		"[::]:5555":      "http://localhost:5555",
		"[::1]:5555":     "http://[::1]:5555",
		"localhost:80":   "http://localhost:80",
	} {
		if got := devPublicURL(listen); got != want {
			t.Errorf("devPublicURL(%q) = %q, want %q", listen, got, want)
		}
	}
}
