// Package storage keeps everything otpstep persists: users, login sessions,
// signing keys, audit events and fosite's OAuth2 state, in PostgreSQL or SQLite.
// It imports nothing else of otpstep; every upper layer reaches the database
// only through the methods of *Store.
package storage
