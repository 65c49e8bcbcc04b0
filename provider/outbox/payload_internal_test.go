package outbox

import (
	"encoding/json"
	"strings"
	"testing"
)

func TestEncodePayload_RoundTripsAndRejectsEveryOtherByteString(t *testing.T) {
	p := Payload{To: "a@example.test", Subject: "Sign-in code", Text: "Your code: 123456", HTML: "<p>123456</p>"}
	b := encodePayload(p)
	if got, ok := decodePayload(b); !ok || got != p {
		t.Fatalf("decodePayload(encodePayload(p)) = %+v, %v", got, ok)
	}
	for i := range b {
		if _, ok := decodePayload(b[:i]); ok {
			t.Errorf("a prefix of %d bytes decoded", i)
		}
	}
	if _, ok := decodePayload(append(b, 0)); ok {
		t.Error("a trailing byte decoded")
	}
	if got, ok := decodePayload(encodePayload(Payload{})); !ok || got != (Payload{}) {
		t.Errorf("empty payload = %+v, %v", got, ok)
	}
}

func FuzzDecodePayload(f *testing.F) {
	f.Add(encodePayload(Payload{To: "a@example.test", Subject: "s", Text: "t", HTML: "<p>h</p>"}))
	f.Add([]byte{payloadV1, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01})
	f.Add([]byte{payloadV1})
	f.Fuzz(func(t *testing.T, b []byte) {
		p, ok := decodePayload(b)
		if !ok {
			return
		}
		// Non-minimal uvarints decode too, so b need not be p's encoding,
		// but p's encoding decodes to p.
		if got, ok := decodePayload(encodePayload(p)); !ok || got != p {
			t.Fatalf("re-encoding %+v does not decode to it", p)
		}
	})
}

// A rendered sign-in mail's size: the default templates give about this.
func benchPayload() Payload {
	html := "<!doctype html><html><body><p>Use this code to finish signing in to otpstep:</p><p style=\"font-size:24px\"><strong>918273</strong></p><p>It expires at 17:42 UTC, 26 Nov 2026 (in 5 minutes).</p></body></html>"
	return Payload{To: "user-0042@example.test", Subject: "Your otpstep sign-in code", Text: strings.Repeat("Use this code to finish signing in: 918273\n", 6), HTML: strings.Repeat(html, 4)}
}

func BenchmarkPayload(b *testing.B) {
	p := benchPayload()
	b.Run("json", func(b *testing.B) {
		for b.Loop() {
			plain, _ := json.Marshal(p)
			var q Payload
			if err := json.Unmarshal(plain, &q); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("v1", func(b *testing.B) {
		for b.Loop() {
			if _, ok := decodePayload(encodePayload(p)); !ok {
				b.Fatal("no round trip")
			}
		}
	})
}

// A queued mail keeps the trace context of the request that queued it; one
// without keeps the v1 encoding, byte for byte.
func TestEncodePayload_CarriesTheTraceparent(t *testing.T) {
	p := Payload{To: "a@example.test", Subject: "s", Text: "t", HTML: "<p>h</p>",
		Traceparent: "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"}
	b := encodePayload(p)
	if b[0] != payloadV2 {
		t.Fatalf("version %d, want %d", b[0], payloadV2)
	}
	if got, ok := decodePayload(b); !ok || got != p {
		t.Fatalf("decodePayload(encodePayload(p)) = %+v, %v", got, ok)
	}
	for i := range b {
		if _, ok := decodePayload(b[:i]); ok {
			t.Errorf("a prefix of %d bytes decoded", i)
		}
	}
	p.Traceparent = ""
	if b := encodePayload(p); b[0] != payloadV1 {
		t.Errorf("without a traceparent: version %d, want %d", b[0], payloadV1)
	}
}
