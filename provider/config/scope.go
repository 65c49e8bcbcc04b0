package config

import "strings"

// Scope is the part of the configuration a command uses; ValidateWith
// checks only its keys (ValidateOptions.Scope), so `otpstep migrate up`
// runs without mail settings.
type Scope int

const (
	// ScopeServe is every key: what otpstep serve (and an embedder) uses.
	ScopeServe Scope = iota
	// ScopeDatabase is database.*: migrate, purge and audit read or write
	// the database and nothing else.
	ScopeDatabase
	// ScopeManage is what the management commands that compose the
	// provider use (clients, users, keys, identities): the database, the
	// system secret (client and signing keys are sealed with it), oauth2.*
	// (the signing algorithm, the lifespans fosite is composed with) and
	// login.* (password hashing). Mail is neither sent nor validated.
	ScopeManage
)

// Covers reports whether the scope validates (and so may use) the key or
// section: "mail.driver" or "mail".
func (s Scope) Covers(key string) bool {
	var sections []string
	switch s {
	case ScopeServe:
		return true
	case ScopeDatabase:
		sections = []string{"database"}
	case ScopeManage:
		sections = []string{"database", "secrets", "oauth2", "login"}
	}
	for _, sec := range sections {
		if key == sec || strings.HasPrefix(key, sec+".") {
			return true
		}
	}
	return false
}
