package outbox

import (
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

// SealPayload encodes p as JSON and seals it bound to the row id, so a payload
// copied into another row does not open.
func SealPayload(s Sealer, id string, p Payload) ([]byte, error) {
	plain, err := json.Marshal(p)
	if err != nil {
		return nil, fmt.Errorf("outbox: encode payload: %w", err)
	}
	sealed, err := s.Seal(plain, []byte(id))
	if err != nil {
		return nil, fmt.Errorf("outbox: seal payload: %w", err)
	}
	return sealed, nil
}

// OpenPayload reverses SealPayload for the row id.
func OpenPayload(o Opener, id string, sealed []byte) (Payload, error) {
	plain, err := o.Open(sealed, []byte(id))
	if err != nil {
		return Payload{}, fmt.Errorf("outbox: open payload of %s: %w", id, err)
	}
	var p Payload
	if err := json.Unmarshal(plain, &p); err != nil {
		// Do not wrap: a json error can quote the plaintext, which holds the code.
		return Payload{}, fmt.Errorf("outbox: payload of %s is not valid JSON", id)
	}
	return p, nil
}
