package storage

import (
	"context"
	"encoding/json"
	"fmt"

	"github.com/google/uuid"
)

// A login session past its ExpiresAt, or ended (EndLoginSession), no longer
// exists for Get, Update and Pass; its row lingers until PurgeExpired (or
// DeleteLoginSession), and its ID stays taken.

const loginSessionColumns = `id, user_id, passed_login_otp, amr, auth_time, expires_at, created_at, updated_at, browser_key_hash, recovered`

// liveLoginSession is the condition of a session that neither expired ($2 is
// now) nor ended.
const liveLoginSession = `expires_at > $2 AND ended_at IS NULL`

// CreateLoginSession stores a new login session. An empty ID is filled with a
// random UUID; CreatedAt and UpdatedAt are set from the clock. A session with
// the same ID → ErrAlreadyExists, even an expired one: a sid is never taken
// over. An unknown UserID → ErrNotFound. A taken ID is found with ON CONFLICT
// DO NOTHING, not a unique violation, so the transaction in ctx stays usable.
func (s *Store) CreateLoginSession(ctx context.Context, ls *LoginSession) error {
	st := s.createLoginSessionStmt(ls)
	n, err := s.exec(ctx, st.sql+` ON CONFLICT (id) DO NOTHING`, st.args...)
	if err != nil {
		return fmt.Errorf("storage: create login session: %w", err)
	}
	if n == 0 {
		return fmt.Errorf("storage: create login session %s: %w", ls.ID, ErrAlreadyExists)
	}
	return nil
}

// createLoginSessionStmt fills ls's ID and times as CreateLoginSession
// documents and returns its INSERT, which fails on a taken ID (unique
// violation); CreateLoginSession adds ON CONFLICT DO NOTHING.
func (s *Store) createLoginSessionStmt(ls *LoginSession) stmt {
	if ls.ID == "" {
		ls.ID = uuid.NewString()
	}
	now := s.nowUTC()
	ls.CreatedAt, ls.UpdatedAt = now, now
	ls.AuthTime, ls.ExpiresAt = normTime(ls.AuthTime), normTime(ls.ExpiresAt)
	keyHash := ls.BrowserKeyHash
	if keyHash == nil {
		keyHash = []byte{}
	}
	return stmt{`INSERT INTO login_sessions (` + loginSessionColumns + `)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $7, $8, $9)`,
		[]any{ls.ID, ls.UserID, ls.PassedLoginOTP, encodeList(ls.AMR),
			s.timeArg(ls.AuthTime), s.timeArg(ls.ExpiresAt), s.timeArg(now), keyHash, ls.Recovered}}
}

// GetLoginSession returns the login session with this ID; a missing, expired
// or ended one → ErrNotFound.
func (s *Store) GetLoginSession(ctx context.Context, id string) (*LoginSession, error) {
	var (
		ls  LoginSession
		amr string
	)
	err := s.queryRow(ctx, `SELECT `+loginSessionColumns+` FROM login_sessions
		WHERE id = $1 AND `+liveLoginSession, id, s.timeArg(s.now())).
		Scan(&ls.ID, &ls.UserID, &ls.PassedLoginOTP, &amr, timeCol{&ls.AuthTime},
			timeCol{&ls.ExpiresAt}, timeCol{&ls.CreatedAt}, timeCol{&ls.UpdatedAt}, &ls.BrowserKeyHash, &ls.Recovered)
	if err != nil {
		return nil, scanErr(err, "login session")
	}
	if err := json.Unmarshal([]byte(amr), &ls.AMR); err != nil {
		return nil, fmt.Errorf("storage: get login session: decode amr: %w", err)
	}
	if len(ls.AMR) == 0 {
		ls.AMR = nil
	}
	if len(ls.BrowserKeyHash) == 0 {
		ls.BrowserKeyHash = nil
	}
	return &ls, nil
}

// UpdateLoginSession overwrites a live session's UserID, PassedLoginOTP, AMR,
// AuthTime and ExpiresAt and bumps UpdatedAt, in one atomic statement (its
// BrowserKeyHash stays). A missing, expired or ended session → ErrNotFound.
func (s *Store) UpdateLoginSession(ctx context.Context, ls *LoginSession) error {
	now := s.nowUTC()
	ls.AuthTime, ls.ExpiresAt = normTime(ls.AuthTime), normTime(ls.ExpiresAt)
	n, err := s.exec(ctx, `UPDATE login_sessions SET user_id = $2, passed_login_otp = $3, amr = $4,
		auth_time = $5, expires_at = $6, updated_at = $7
		WHERE id = $1 AND expires_at > $7 AND ended_at IS NULL`,
		ls.ID, ls.UserID, ls.PassedLoginOTP, encodeList(ls.AMR),
		s.timeArg(ls.AuthTime), s.timeArg(ls.ExpiresAt), s.timeArg(now))
	if err != nil {
		return fmt.Errorf("storage: update login session: %w", err)
	}
	if n == 0 {
		return notFound("login session")
	}
	ls.UpdatedAt = now
	return nil
}

// DeleteLoginSession removes a login session (expired or not). A missing one →
// ErrNotFound.
func (s *Store) DeleteLoginSession(ctx context.Context, id string) error {
	n, err := s.exec(ctx, `DELETE FROM login_sessions WHERE id = $1`, id)
	if err != nil {
		return fmt.Errorf("storage: delete login session: %w", err)
	}
	if n == 0 {
		return notFound("login session")
	}
	return nil
}

// SetLoginSessionBrowserKey replaces the hash of the key that the browser's
// session cookie carries for the live session id. A missing, expired or ended
// session → ErrNotFound.
func (s *Store) SetLoginSessionBrowserKey(ctx context.Context, id string, keyHash []byte) error {
	n, err := s.exec(ctx, `UPDATE login_sessions SET browser_key_hash = $3, updated_at = $2
		WHERE id = $1 AND `+liveLoginSession, id, s.timeArg(s.nowUTC()), keyHash)
	if err != nil {
		return fmt.Errorf("storage: set login session browser key: %w", err)
	}
	if n == 0 {
		return notFound("login session")
	}
	return nil
}

// PassLoginSession marks the live login session id of userID as having passed
// the second factor: passed_login_otp becomes true, amr gains method (an RFC
// 8176 value, e.g. "otp") unless it has it already, and updated_at is bumped.
// A missing, expired or ended session, or one of another user → ErrNotFound;
// a recovered session (LoginSession.Recovered) → ErrSessionRecovered, nothing
// changed: its recovery by email keeps it at the first factor.
//
// It MUST be atomic: one conditional UPDATE computes the new amr from the
// row's current one, so a concurrent update of the session is never lost in a
// read-modify-write. method must be letters and digits only; amr holds the
// compact JSON array encodeList writes, so its elements are found as
// ,"<method>", between commas once the brackets are replaced by commas.
func (s *Store) PassLoginSession(ctx context.Context, id, userID, method string) error {
	if !isAMRValue(method) {
		return fmt.Errorf("storage: pass login session: amr value %q is not letters and digits", method)
	}
	quoted := `"` + method + `"`
	now := s.timeArg(s.nowUTC())
	n, err := s.exec(ctx, `UPDATE login_sessions SET passed_login_otp = TRUE, updated_at = $3,
		amr = CASE
			WHEN ',' || substr(amr, 2, length(amr) - 2) || ',' LIKE $4 THEN amr
			WHEN amr = '[]' THEN $5
			ELSE substr(amr, 1, length(amr) - 1) || $6
		END
		WHERE id = $1 AND user_id = $2 AND expires_at > $3 AND ended_at IS NULL AND recovered = FALSE`,
		id, userID, now, `%,`+quoted+`,%`, `[`+quoted+`]`, `,`+quoted+`]`)
	if err != nil {
		return fmt.Errorf("storage: pass login session: %w", err)
	}
	if n == 0 {
		var recovered bool
		err := s.queryRow(ctx, `SELECT recovered FROM login_sessions WHERE id = $1 AND user_id = $3 AND `+liveLoginSession,
			id, now, userID).Scan(&recovered)
		if err == nil && recovered {
			return fmt.Errorf("storage: pass login session %s: %w", id, ErrSessionRecovered)
		}
		if err != nil && !isNotFound(scanErr(err, "login session")) {
			return scanErr(err, "login session")
		}
		return notFound("login session")
	}
	return nil
}

// isAMRValue reports whether v is non-empty letters and digits, as the RFC
// 8176 §2 values are (and so needs no escaping in JSON or LIKE).
func isAMRValue(v string) bool {
	if v == "" {
		return false
	}
	for _, r := range v {
		if (r < 'a' || r > 'z') && (r < 'A' || r > 'Z') && (r < '0' || r > '9') {
			return false
		}
	}
	return true
}
