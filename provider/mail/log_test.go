package mail_test

import (
	"bytes"
	"context"
	"encoding/json"
	"log/slog"
	"testing"

	"github.com/otpstep/otpstep/provider/mail"
)

func TestLog_WritesRecipientSubjectAndTextAtInfo(t *testing.T) {
	var buf bytes.Buffer
	l := mail.NewLog(slog.New(slog.NewJSONHandler(&buf, nil)))

	err := l.Send(context.Background(), mail.Message{To: "dev@example.test", Subject: "Your otpstep sign-in code", Text: "Code 777888", HTML: "<p>777888</p>"})
	if err != nil {
		t.Fatalf("Send: %v", err)
	}
	var rec map[string]any
	if err := json.Unmarshal(buf.Bytes(), &rec); err != nil {
		t.Fatalf("log line %q: %v", buf.String(), err)
	}
	want := map[string]any{"level": "INFO", "to": "dev@example.test", "subject": "Your otpstep sign-in code", "text": "Code 777888"}
	for k, v := range want {
		if rec[k] != v {
			t.Errorf("log %s = %v, want %v", k, rec[k], v)
		}
	}
}
