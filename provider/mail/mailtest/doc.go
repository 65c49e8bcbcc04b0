// Package mailtest runs a real SMTP server in-process for tests: it records
// what it receives and can be switched to refuse mail or to go down and come
// back on the same port, so delivery and retry paths are tested against a peer
// speaking SMTP rather than a fake Mailer.
package mailtest
