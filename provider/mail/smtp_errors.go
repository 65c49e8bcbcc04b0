package mail

import (
	"errors"

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
