package storage

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"time"
)

// Back-Channel Logout 1.0's outbox. A code exchange records that its client
// got tokens for its login session (login_session_clients); the transaction
// that ends a session (EndLoginSession, DisableUser, the purge of an expired
// session) queues one row per such client that has a backchannel_logout_uri,
// at most one per (client, session): the unique key makes a second end of
// the same session, or a race of two, queue nothing more. A dispatcher claims
// due rows under a lease, as the mail outbox's does, and settles each one
// (settled_at) when delivered or given up; a settled row stays, holding the
// key, until its session's row is purged.

// BackchannelLogout is one logout token waiting for delivery to a client.
type BackchannelLogout struct {
	ID          string // uuid; the logout token's jti
	ClientID    string
	SessionID   string // the sid
	Subject     string // the user
	Attempts    int    // claims so far, the current one included
	AvailableAt time.Time
	CreatedAt   time.Time
	LastError   string
	// URI is the client's backchannel_logout_uri, read by the claim.
	URI string
}

const backchannelColumns = `id, client_id, session_id, subject, attempts, available_at, created_at, last_error`

// recordSessionClient records, in a code exchange's transaction (after
// grantCheck), that the client of the code under signature got tokens for
// the code's login session.
func (s *Store) recordSessionClient(ctx context.Context, signature string) error {
	if _, err := s.exec(ctx, `INSERT INTO login_session_clients (session_id, client_id, created_at)
		SELECT session_id, client_id, $2 FROM oauth2_authorization_codes WHERE signature = $1 AND session_id <> ''
		ON CONFLICT (session_id, client_id) DO NOTHING`, signature, s.timeArg(s.nowUTC())); err != nil {
		return fmt.Errorf("storage: record the session's client: %w", err)
	}
	return nil
}

// enqueueBackchannelLogouts queues, in the transaction ctx carries, a logout
// for every client with a back channel that got tokens for a login session
// matching where (a condition on login_sessions ls, its one parameter $1 =
// arg). A (client, session) queued before is skipped.
func (s *Store) enqueueBackchannelLogouts(ctx context.Context, where string, arg any) error {
	id := `gen_random_uuid()::text`
	if s.dialect == DialectSQLite {
		id = `lower(hex(randomblob(16)))`
	}
	now := s.timeArg(s.nowUTC())
	if _, err := s.exec(ctx, `INSERT INTO backchannel_logouts (`+backchannelColumns+`)
		SELECT `+id+`, lsc.client_id, ls.id, ls.user_id, 0, $2, $2, ''
		FROM login_sessions ls
		JOIN login_session_clients lsc ON lsc.session_id = ls.id
		JOIN oauth2_clients c ON c.id = lsc.client_id
		WHERE `+where+` AND c.backchannel_logout_uri <> ''
		ON CONFLICT (client_id, session_id) DO NOTHING`, arg, now); err != nil {
		return fmt.Errorf("storage: queue back-channel logouts: %w", err)
	}
	return nil
}

// ClaimBackchannelLogouts claims up to limit unsettled rows whose
// AvailableAt is not after now, as ClaimOutbox does (one UPDATE … RETURNING;
// FOR UPDATE SKIP LOCKED on PostgreSQL): their AvailableAt becomes now+lease
// and Attempts grows by one. Each comes with its client's URI, oldest first.
func (s *Store) ClaimBackchannelLogouts(ctx context.Context, limit int, lease time.Duration) ([]BackchannelLogout, error) {
	if limit <= 0 {
		return nil, nil
	}
	now := s.nowUTC()
	pick := `SELECT id FROM backchannel_logouts WHERE settled_at IS NULL AND available_at <= $1 ORDER BY available_at LIMIT $3`
	q := `UPDATE backchannel_logouts SET available_at = $2, attempts = attempts + 1 WHERE id IN (` + pick + `) RETURNING ` + backchannelColumns
	if s.dialect == DialectPostgres {
		q = `UPDATE backchannel_logouts SET available_at = $2, attempts = attempts + 1
			WHERE id = ANY(ARRAY(` + pick + ` FOR UPDATE SKIP LOCKED)) RETURNING ` + backchannelColumns
	}
	rows, err := s.query(ctx, q, s.timeArg(now), s.timeArg(now.Add(lease)), limit)
	if err != nil {
		return nil, fmt.Errorf("storage: claim back-channel logouts: %w", err)
	}
	var out []BackchannelLogout
	for rows.Next() {
		var b BackchannelLogout
		if err := rows.Scan(&b.ID, &b.ClientID, &b.SessionID, &b.Subject, &b.Attempts,
			timeCol{&b.AvailableAt}, timeCol{&b.CreatedAt}, &b.LastError); err != nil {
			rows.Close()
			return nil, fmt.Errorf("storage: claim back-channel logouts: %w", classify(err))
		}
		out = append(out, b)
	}
	err = rows.Err()
	rows.Close()
	if err != nil {
		return nil, fmt.Errorf("storage: claim back-channel logouts: %w", classify(err))
	}
	if len(out) == 0 {
		return nil, nil
	}
	// The URIs in a statement of their own: SQLite's RETURNING names only
	// the updated table.
	var ids []string
	for _, b := range out {
		ids = append(ids, b.ClientID)
	}
	uris := map[string]string{}
	crows, err := s.query(ctx, `SELECT id, backchannel_logout_uri FROM oauth2_clients WHERE `+s.inList("id", 1), s.listArg(ids))
	if err != nil {
		return nil, fmt.Errorf("storage: claim back-channel logouts: clients: %w", err)
	}
	defer crows.Close()
	for crows.Next() {
		var id, uri string
		if err := crows.Scan(&id, &uri); err != nil {
			return nil, fmt.Errorf("storage: claim back-channel logouts: clients: %w", classify(err))
		}
		uris[id] = uri
	}
	if err := crows.Err(); err != nil {
		return nil, fmt.Errorf("storage: claim back-channel logouts: clients: %w", classify(err))
	}
	for i := range out {
		out[i].URI = uris[out[i].ClientID]
	}
	slices.SortFunc(out, func(a, b BackchannelLogout) int {
		if c := a.CreatedAt.Compare(b.CreatedAt); c != 0 {
			return c
		}
		return strings.Compare(a.ID, b.ID)
	})
	return out, nil
}

// SettleBackchannelLogout marks a row delivered or given up (outcome is
// recorded as its last error, "" for delivered): it is never claimed again.
func (s *Store) SettleBackchannelLogout(ctx context.Context, id, outcome string) error {
	if _, err := s.exec(ctx, `UPDATE backchannel_logouts SET settled_at = $2, last_error = $3 WHERE id = $1`,
		id, s.timeArg(s.nowUTC()), outcome); err != nil {
		return fmt.Errorf("storage: settle back-channel logout: %w", err)
	}
	return nil
}

// RescheduleBackchannelLogout makes an unsettled row claimable again from
// availableAt, recording why the attempt failed.
func (s *Store) RescheduleBackchannelLogout(ctx context.Context, id string, availableAt time.Time, lastError string) error {
	if _, err := s.exec(ctx, `UPDATE backchannel_logouts SET available_at = $2, last_error = $3 WHERE id = $1 AND settled_at IS NULL`,
		id, s.timeArg(availableAt), lastError); err != nil {
		return fmt.Errorf("storage: reschedule back-channel logout: %w", err)
	}
	return nil
}

// BackchannelLogouts lists the rows of login session sid (tests, operators),
// oldest first, settled ones included (settled: SettledAt not nil).
func (s *Store) BackchannelLogouts(ctx context.Context, sid string) ([]BackchannelLogoutRow, error) {
	rows, err := s.query(ctx, `SELECT `+backchannelColumns+`, settled_at FROM backchannel_logouts WHERE session_id = $1 ORDER BY created_at, id`, sid)
	if err != nil {
		return nil, fmt.Errorf("storage: list back-channel logouts: %w", err)
	}
	defer rows.Close()
	var out []BackchannelLogoutRow
	for rows.Next() {
		var r BackchannelLogoutRow
		b := &r.BackchannelLogout
		if err := rows.Scan(&b.ID, &b.ClientID, &b.SessionID, &b.Subject, &b.Attempts,
			timeCol{&b.AvailableAt}, timeCol{&b.CreatedAt}, &b.LastError, nullTimeCol{&r.SettledAt}); err != nil {
			return nil, fmt.Errorf("storage: list back-channel logouts: %w", classify(err))
		}
		out = append(out, r)
	}
	return out, classify(rows.Err())
}

// BackchannelLogoutRow is a BackchannelLogout with its settlement.
type BackchannelLogoutRow struct {
	BackchannelLogout
	SettledAt *time.Time
}

// purgeLoginSessions deletes login sessions that expired before before, a
// batch at a time, each batch in one transaction that first queues the
// back-channel logouts of those sessions not ended before (their end is the
// expiry), then deletes their client records and settled logouts.
func (s *Store) purgeLoginSessions(ctx context.Context, before time.Time, batch int) (int64, error) {
	pick := `SELECT id FROM login_sessions WHERE expires_at < $1 LIMIT $2`
	if s.dialect == DialectPostgres {
		pick += ` FOR UPDATE SKIP LOCKED`
	}
	var total int64
	for {
		if err := ctx.Err(); err != nil {
			return total, err
		}
		var n int64
		err := s.InTx(ctx, func(ctx context.Context) error {
			rows, err := s.query(ctx, pick, s.timeArg(before), batch)
			if err != nil {
				return err
			}
			var ids []string
			for rows.Next() {
				var id string
				if err := rows.Scan(&id); err != nil {
					rows.Close()
					return classify(err)
				}
				ids = append(ids, id)
			}
			err = rows.Err()
			rows.Close()
			if err != nil || len(ids) == 0 {
				return classify(err)
			}
			list := s.listArg(ids)
			if err := s.enqueueBackchannelLogouts(ctx, s.inList("ls.id", 1)+` AND ls.ended_at IS NULL`, list); err != nil {
				return err
			}
			for _, q := range []string{
				`DELETE FROM login_session_clients WHERE ` + s.inList("session_id", 1),
				`DELETE FROM backchannel_logouts WHERE settled_at IS NOT NULL AND ` + s.inList("session_id", 1),
			} {
				if _, err := s.exec(ctx, q, list); err != nil {
					return err
				}
			}
			n, err = s.exec(ctx, `DELETE FROM login_sessions WHERE `+s.inList("id", 1), list)
			return err
		})
		total += n
		if err != nil {
			return total, fmt.Errorf("login_sessions: %w", err)
		}
		if n < int64(batch) {
			return total, nil
		}
	}
}

// purgeSettledBackchannelLogouts deletes settled logouts whose login
// session's row is gone (settled after their session was purged).
func (s *Store) purgeSettledBackchannelLogouts(ctx context.Context) (int64, error) {
	n, err := s.exec(ctx, `DELETE FROM backchannel_logouts WHERE settled_at IS NOT NULL
		AND NOT EXISTS (SELECT 1 FROM login_sessions ls WHERE ls.id = backchannel_logouts.session_id)`)
	if err != nil {
		return n, fmt.Errorf("backchannel_logouts: %w", err)
	}
	return n, nil
}

// inList is the condition "column is one of the list in parameter $n" (see
// outboxIDsIn), for listArg's encoding.
func (s *Store) inList(column string, n int) string {
	if s.dialect == DialectPostgres {
		return fmt.Sprintf("%s = ANY($%d::text[])", column, n)
	}
	return fmt.Sprintf("%s IN (SELECT value FROM json_each($%d))", column, n)
}

// listArg encodes ids for inList.
func (s *Store) listArg(ids []string) any {
	if s.dialect == DialectPostgres {
		return ids
	}
	b, _ := json.Marshal(ids) // []string always marshals
	return string(b)
}
