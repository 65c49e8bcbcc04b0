// Package mail delivers otpstep's email: the one-time-password messages of the
// second-factor stage, rendered from templates and sent through SMTP (or, in
// development, written to the server log).
// Callers depend on the Mailer interface; embedders may supply their own.
package mail
