package web

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http/httptest"
	"runtime"
	"strings"
	"testing"

	"github.com/ory/fosite"
)

// withStack is an error carrying its caller's stack, printed by %+v, as
// the ory/x and pkg/errors wrappers fosite returns do.
type withStack struct {
	error
	pcs []uintptr
}

func stacked(err error) error {
	pcs := make([]uintptr, 16)
	return withStack{err, pcs[:runtime.Callers(2, pcs)]}
}

func (e withStack) Unwrap() error { return e.error }

func (e withStack) Format(s fmt.State, verb rune) {
	io.WriteString(s, e.Error())
	if verb == 'v' && s.Flag('+') {
		frames := runtime.CallersFrames(e.pcs)
		for f, more := frames.Next(); more; f, more = frames.Next() {
			fmt.Fprintf(s, "\n%s\n\t%s:%d", f.Function, f.File, f.Line)
		}
	}
}

// A 4xx from fosite is one line with its error, hint and description and no
// stack; a 5xx is one line with its cause and the stack, once.
func TestLogOAuthError_OneLinePerStatusClass(t *testing.T) {
	var buf bytes.Buffer
	s := &Server{log: slog.New(slog.NewTextHandler(&buf, &slog.HandlerOptions{Level: slog.LevelDebug}))}
	r := httptest.NewRequest("POST", "/oauth2/token", nil)

	s.logOAuthError(r, "token request refused", stacked(fosite.ErrInvalidRequest.WithHint("The 'redirect_uri' parameter does not match.").WithDebug("registered: https://rp.example/cb")))
	line := buf.String()
	for _, want := range []string{"level=INFO", `msg="token request refused"`, "status=400", "error=invalid_request",
		`hint="The 'redirect_uri' parameter does not match."`, `description="The request is missing a required parameter`, `debug="registered: https://rp.example/cb"`} {
		if !strings.Contains(line, want) {
			t.Errorf("4xx line lacks %s:\n%s", want, line)
		}
	}
	if strings.Count(line, "\n") != 1 || strings.Contains(line, ".go:") || strings.Contains(line, `\n`) {
		t.Errorf("4xx line is not one line without a stack (%d bytes):\n%s", len(line), line)
	}

	buf.Reset()
	s.logOAuthError(r, "token response failed", stacked(fosite.ErrServerError.WithWrap(errors.New("database gone"))))
	line = buf.String()
	for _, want := range []string{"level=ERROR", "status=500", "error=server_error", "database gone", "stack="} {
		if !strings.Contains(line, want) {
			t.Errorf("5xx line lacks %s:\n%s", want, line)
		}
	}
	if strings.Count(line, "\n") != 1 || strings.Count(line, "oauth2_log_test.go:") != 1 {
		t.Errorf("5xx: want one line whose stack names this test once:\n%s", line)
	}
}
