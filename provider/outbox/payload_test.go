package outbox_test

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/otpstep/otpstep/provider/outbox"
)

func TestPayload_SealOpenRoundTripBoundToID(t *testing.T) {
	s := newTestSealer(t)
	p := outbox.Payload{To: "a@example.test", Subject: "Your otpstep sign-in code", Text: "t 123", HTML: "<p>123</p>"}
	sealed, err := outbox.SealPayload(s, id(1), p)
	if err != nil {
		t.Fatal(err)
	}
	got, err := outbox.OpenPayload(s, id(1), sealed)
	if err != nil || got != p {
		t.Fatalf("OpenPayload = %+v, %v; want %+v", got, err, p)
	}
	if _, err := outbox.OpenPayload(s, id(2), sealed); err == nil {
		t.Error("a payload opened under another row's ID")
	}
	if m := got.Message(); m.To != p.To || m.Subject != p.Subject || m.Text != p.Text || m.HTML != p.HTML {
		t.Errorf("Message() = %+v", m)
	}
}

func TestPayload_OpensTheJSONOfEarlierVersions(t *testing.T) {
	s := newTestSealer(t)
	p := outbox.Payload{To: "a@example.test", Subject: "Your otpstep sign-in code", Text: "t 123", HTML: "<p>123</p>"}
	plain, err := json.Marshal(p)
	if err != nil {
		t.Fatal(err)
	}
	sealed, err := s.Seal(plain, []byte(id(1)))
	if err != nil {
		t.Fatal(err)
	}
	got, err := outbox.OpenPayload(s, id(1), sealed)
	if err != nil || got != p {
		t.Fatalf("OpenPayload = %+v, %v; want %+v", got, err, p)
	}
}

func TestPayload_MalformedDoesNotEchoPlaintext(t *testing.T) {
	s := newTestSealer(t)
	for plain, want := range map[string]string{
		"code 778899 not a payload": "is malformed",
		"\x01\x05a@b":               "is malformed", // truncated
		"{\"to\":\"778899":          "is not valid JSON",
	} {
		sealed, err := s.Seal([]byte(plain), []byte(id(1)))
		if err != nil {
			t.Fatal(err)
		}
		_, err = outbox.OpenPayload(s, id(1), sealed)
		if err == nil {
			t.Fatalf("OpenPayload accepted %q", plain)
		}
		if got := err.Error(); got != "outbox: payload of "+id(1)+" "+want {
			t.Errorf("%q: error = %q", plain, got)
		}
	}
}

func TestExponentialBackoff(t *testing.T) {
	tests := []struct {
		attempt int
		want    time.Duration
	}{
		{0, 2 * time.Second}, {1, 2 * time.Second}, {2, 4 * time.Second}, {3, 8 * time.Second},
		{9, 512 * time.Second}, {10, 10 * time.Minute}, {1000, 10 * time.Minute},
	}
	for _, tt := range tests {
		if got := outbox.DefaultBackoff(tt.attempt); got != tt.want {
			t.Errorf("DefaultBackoff(%d) = %v, want %v", tt.attempt, got, tt.want)
		}
	}
	low := outbox.ExponentialBackoff(time.Second, time.Minute, func() float64 { return 0 })
	high := outbox.ExponentialBackoff(time.Second, time.Minute, func() float64 { return 0.5 })
	if got := low(3); got != 2*time.Second {
		t.Errorf("jitter 0: %v, want half of 4s", got)
	}
	if got := high(3); got != 3*time.Second {
		t.Errorf("jitter 0.5: %v, want 3s", got)
	}
	if got := high(100); got != 45*time.Second {
		t.Errorf("jitter 0.5 at the cap: %v, want 45s", got)
	}
}
