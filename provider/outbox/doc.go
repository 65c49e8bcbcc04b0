// Package outbox delivers the mail outbox: rows written in the same
// transaction as the one-time code they carry, claimed under a lease so that
// any number of instances share the work without sending a message twice.
// The Dispatcher opens each sealed payload, hands it to a mail.Mailer, and
// deletes, reschedules or drops the row according to the outcome.
package outbox
