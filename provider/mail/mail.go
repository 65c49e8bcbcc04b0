package mail

import (
	"context"
	"errors"
)

// Message is one email ready to send: a single recipient, a subject and a
// body as plain text, HTML or both (both is a multipart/alternative message).
type Message struct {
	To      string
	Subject string
	Text    string
	HTML    string
}

// Mailer sends a Message. Embedders may implement it to route otpstep's mail
// through their own delivery service.
//
// Send returns nil once the message has been handed to the next hop. A failure
// the sender cannot fix by retrying — the recipient is rejected, the message is
// malformed — should be wrapped with Permanent, so the outbox drops the message
// instead of retrying it; any other error is treated as temporary and retried
// with backoff. Send must be safe for concurrent use.
type Mailer interface {
	Send(ctx context.Context, m Message) error
}

// permanentError marks a delivery failure that retrying cannot fix.
type permanentError struct {
	err error
}

func (e *permanentError) Error() string { return e.err.Error() }
func (e *permanentError) Unwrap() error { return e.err }

// Permanent marks err as a permanent delivery failure (see IsPermanent).
// It returns nil when err is nil. Mailer implementations outside this package
// use it to tell the outbox not to retry.
func Permanent(err error) error {
	if err == nil {
		return nil
	}
	return &permanentError{err: err}
}

// IsPermanent reports whether err is a delivery failure that retrying cannot
// fix: an SMTP 5xx reply to MAIL FROM, RCPT TO or DATA (RFC 5321 §4.2.1:
// "permanent negative completion reply"), an unusable recipient address or a
// malformed message, or any error wrapped with Permanent. Everything else —
// 4xx replies, refused or timed-out connections, TLS and authentication
// problems on the way in — is temporary.
func IsPermanent(err error) bool {
	var p *permanentError
	return errors.As(err, &p)
}
