package outbox

import (
	"encoding/binary"
	"encoding/json"
	"fmt"

	"github.com/otpstep/otpstep/provider/mail"
)

// Payload is the message an outbox row carries, sealed at rest because it
// holds the one-time code.
type Payload struct {
	To      string `json:"to"`
	Subject string `json:"subject"`
	Text    string `json:"text,omitempty"`
	HTML    string `json:"html,omitempty"`
	// Traceparent is the W3C trace context (https://www.w3.org/TR/trace-context/)
	// of the request that queued the mail, "" when it was not traced: the
	// dispatcher sends the mail as part of that trace (see TraceContext).
	Traceparent string `json:"traceparent,omitempty"`
}

// Message converts p for a mail.Mailer.
func (p Payload) Message() mail.Message {
	return mail.Message{To: p.To, Subject: p.Subject, Text: p.Text, HTML: p.HTML}
}

// Sealer seals a value bound to associated data; *provider.Sealer is one.
type Sealer interface {
	Seal(plaintext, associatedData []byte) ([]byte, error)
}

// Opener opens what a Sealer sealed, failing unless the associated data
// matches; *provider.Sealer is one.
type Opener interface {
	Open(sealed, associatedData []byte) ([]byte, error)
}

// SealPayload encodes p (encodePayload) and seals it bound to the row id, so
// a payload copied into another row does not open.
func SealPayload(s Sealer, id string, p Payload) ([]byte, error) {
	sealed, err := s.Seal(encodePayload(p), []byte(id))
	if err != nil {
		return nil, fmt.Errorf("outbox: seal payload: %w", err)
	}
	return sealed, nil
}

// OpenPayload reverses SealPayload for the row id. It also opens the JSON
// payloads that SealPayload wrote before payloadV1.
func OpenPayload(o Opener, id string, sealed []byte) (Payload, error) {
	plain, err := o.Open(sealed, []byte(id))
	if err != nil {
		return Payload{}, fmt.Errorf("outbox: open payload of %s: %w", id, err)
	}
	// The errors never wrap a decoder's: that could quote the plaintext,
	// which holds the code.
	if len(plain) > 0 && plain[0] == '{' {
		var p Payload
		if err := json.Unmarshal(plain, &p); err != nil {
			return Payload{}, fmt.Errorf("outbox: payload of %s is not valid JSON", id)
		}
		return p, nil
	}
	p, ok := decodePayload(plain)
	if !ok {
		return Payload{}, fmt.Errorf("outbox: payload of %s is malformed", id)
	}
	return p, nil
}

// payloadV1 starts an encodePayload encoding: the version, then To, Subject,
// Text and HTML, each its length as a uvarint and its bytes. A JSON payload
// starts with '{' instead. Every mail is sealed at request time and opened
// by the dispatcher, and JSON cost both sides about 15 times as much as this
// for a rendered mail, whose HTML it escapes (an eighth of the dispatcher's
// CPU under PUT /sessions load went to json.Unmarshal).
const payloadV1 = 1

// payloadV2 is payloadV1 with a fifth field, Traceparent; a payload without
// one is written as payloadV1.
const payloadV2 = 2

func encodePayload(p Payload) []byte {
	version := byte(payloadV1)
	fields := []string{p.To, p.Subject, p.Text, p.HTML}
	if p.Traceparent != "" {
		version = payloadV2
		fields = append(fields, p.Traceparent)
	}
	n := 1
	for _, f := range fields {
		n += binary.MaxVarintLen64 + len(f)
	}
	b := make([]byte, 1, n)
	b[0] = version
	for _, f := range fields {
		b = binary.AppendUvarint(b, uint64(len(f)))
		b = append(b, f...)
	}
	return b
}

// decodePayload reverses encodePayload; ok is false unless b is exactly one
// encoding.
func decodePayload(b []byte) (p Payload, ok bool) {
	if len(b) == 0 || (b[0] != payloadV1 && b[0] != payloadV2) {
		return Payload{}, false
	}
	fields := []*string{&p.To, &p.Subject, &p.Text, &p.HTML}
	if b[0] == payloadV2 {
		fields = append(fields, &p.Traceparent)
	}
	b = b[1:]
	for _, f := range fields {
		n, size := binary.Uvarint(b)
		if size <= 0 || n > uint64(len(b)-size) {
			return Payload{}, false
		}
		*f = string(b[size : size+int(n)])
		b = b[size+int(n):]
	}
	return p, len(b) == 0
}
