package mail

import (
	"errors"
	"net/textproto"

	gomail "github.com/wneessen/go-mail"
)

// isPermanentSMTP classifies an error from go-mail. RFC 5321 §4.2.1: a 5yz
// reply is a "permanent negative completion reply" — the same transaction will
// fail again. Only replies inside the mail transaction (MAIL FROM, RCPT TO,
// DATA) are about this message; a 5yz during greeting, EHLO, STARTTLS or AUTH
// is about the server or our configuration, which an operator can fix, so it
// stays temporary, as do 4yz replies, refused connections and timeouts.
func isPermanentSMTP(err error) bool {
	var se *gomail.SendError
	if !errors.As(err, &se) {
		return false
	}
	switch se.Reason {
	case gomail.ErrGetRcpts:
		return true
	case gomail.ErrSMTPMailFrom, gomail.ErrSMTPRcptTo, gomail.ErrSMTPData, gomail.ErrSMTPDataClose:
		code := se.ErrorCode()
		return code >= 500 && code < 600
	default:
		return false
	}
}

// Failure classes of FailureClass.
const (
	FailureDial     = "dial"
	FailureAuth     = "auth"
	FailureRejected = "rejected"
	FailureOther    = "other"
)

// connectError is a failure to open an SMTP connection (TCP, greeting,
// EHLO, TLS, AUTH): no message was offered.
type connectError struct{ err error }

func (e *connectError) Error() string { return e.err.Error() }
func (e *connectError) Unwrap() error { return e.err }

// FailureClass sorts a Send error for the delivery-failure metric: auth (the
// server refused otpstep's credentials, RFC 4954 §6: 530, 534, 535, 538),
// dial (the connection could not be opened: refused, timed out, TLS,
// greeting), rejected (a reply inside the mail transaction refused this
// message, or the message itself is at fault: a permanent error), other.
func FailureClass(err error) string {
	var tp *textproto.Error
	var ce *connectError
	switch {
	case errors.As(err, &ce):
		if errors.As(err, &tp) && (tp.Code == 530 || tp.Code == 534 || tp.Code == 535 || tp.Code == 538) ||
			errors.Is(err, gomail.ErrNoSupportedAuthDiscovered) {
			return FailureAuth
		}
		return FailureDial
	case IsPermanent(err):
		return FailureRejected
	}
	var se *gomail.SendError
	if errors.As(err, &se) {
		switch se.Reason {
		case gomail.ErrSMTPMailFrom, gomail.ErrSMTPRcptTo, gomail.ErrSMTPData, gomail.ErrSMTPDataClose, gomail.ErrGetRcpts:
			return FailureRejected
		}
	}
	return FailureOther
}
