package main

import (
	"context"
	"errors"
	"fmt"
	"runtime/pprof"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
	vegeta "github.com/tsenart/vegeta/v12/lib"
)

// A floor is what a scenario's endpoint costs the database: the SQL
// statements one request runs, in the same order, transactions and argument
// types, executed directly with pgx (a pgxpool as large as the server's
// pool, statements prepared and cached per connection as the server's are)
// by as many workers as the endpoint has connections, for the same warm-up
// and duration. runScenario prints it as <name>_floor and the endpoint's
// share of it as "<name> ratio=<endpoint rps / floor rps>".
//
// The floor leaves out everything that is not a statement: HTTP, JSON,
// fosite, the OTP hash. It runs in this process while the server is idle,
// with the server's outbox dispatcher running (floors enqueue deliverable
// mail, so the dispatcher does the same work for both).
type floor struct {
	// prepare runs after the endpoint's run; it returns one request's
	// statements, which workers call concurrently. op returns errNoMoreOps
	// when it has nothing left (bounded floors end early).
	prepare func(ctx context.Context, db *pgxpool.Pool) (op func(ctx context.Context) error, err error)
	// after, when not nil, runs after the measured floor run (extra lines).
	after func(ctx context.Context) error
}

// errNoMoreOps ends a bounded floor run.
var errNoMoreOps = errors.New("no more operations")

// runOps is attack for a floor: workers goroutines call op until d has
// passed (then finish the op in flight), and the results are measured as
// vegeta measures requests. Goroutines carry the profile labels side=floor
// and path=<name>.
func runOps(ctx context.Context, name string, op func(context.Context) error, workers int, d time.Duration) (tally, *vegeta.Metrics) {
	results := make(chan *vegeta.Result, workers)
	var (
		wg        sync.WaitGroup
		mu        sync.Mutex
		exhausted bool
	)
	deadline := time.Now().Add(d)
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			pprof.Do(ctx, pprof.Labels("side", "floor", "path", name), func(ctx context.Context) {
				for ctx.Err() == nil && time.Now().Before(deadline) {
					start := time.Now()
					err := op(ctx)
					if errors.Is(err, errNoMoreOps) {
						mu.Lock()
						exhausted = true
						mu.Unlock()
						return
					}
					r := &vegeta.Result{Attack: name, Timestamp: start, Latency: time.Since(start), Code: 200}
					if err != nil {
						r.Code, r.Error = 0, err.Error()
					}
					results <- r
				}
			})
		}()
	}
	go func() {
		wg.Wait()
		close(results)
	}()
	var (
		t tally
		m vegeta.Metrics
	)
	for r := range results {
		m.Add(r)
		if r.Error != "" {
			if t.failures == 0 {
				t.firstError = r.Error
			}
			t.failures++
		}
	}
	m.Close()
	t.exhausted = exhausted
	return t, &m
}

// querier is a pool or a transaction.
type querier interface {
	Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error)
	Exec(ctx context.Context, sql string, args ...any) (pgconn.CommandTag, error)
}

// queryOne runs a query returning at most one row, as storage's queryRow,
// and reports whether there was a row. Its columns are scanned into dest
// (nil entries skip a column); without dest they are read but not decoded.
func queryOne(ctx context.Context, q querier, dest []any, sql string, args ...any) (bool, error) {
	rows, err := q.Query(ctx, sql, args...)
	if err != nil {
		return false, err
	}
	defer rows.Close()
	if !rows.Next() {
		return false, rows.Err()
	}
	if dest != nil {
		if err := rows.Scan(dest...); err != nil {
			return false, err
		}
	} else {
		_ = rows.RawValues()
	}
	rows.Close()
	return true, rows.Err()
}

// mustFind is queryOne for a row that must exist.
func mustFind(ctx context.Context, q querier, what string, dest []any, sql string, args ...any) error {
	found, err := queryOne(ctx, q, dest, sql, args...)
	if err != nil {
		return fmt.Errorf("%s: %w", what, err)
	}
	if !found {
		return fmt.Errorf("%s: no row", what)
	}
	return nil
}

// inTx runs fn in a transaction, as storage.InTx.
func inTx(ctx context.Context, db *pgxpool.Pool, fn func(tx pgx.Tx) error) error {
	tx, err := db.Begin(ctx)
	if err != nil {
		return err
	}
	if err := fn(tx); err != nil {
		_ = tx.Rollback(ctx)
		return err
	}
	return tx.Commit(ctx)
}

// dbNow is storage's clock: UTC, microseconds.
func dbNow() time.Time { return time.Now().UTC().Truncate(time.Microsecond) }

// The statements, as storage builds them (storage/*.go: the function named
// above each). Keep them in step with storage.

// fosite_requests.go newRequestTable(…access…).getRowUser: GetAccessTokenSession
// outside a transaction with the provider's client cache as ClientLoader and
// storage.WithSubjectUser, the user API's bearer check: the token and its
// user in one query.
const sqlGetAccessTokenAndUser = `SELECT t.request_id, t.requested_at, t.scopes, t.granted_scopes, t.requested_audience,
			t.granted_audience, t.form, t.session, t.active, t.client_id,
			COALESCE(u.id, ''), COALESCE(u.email, ''), COALESCE(u.password_hash, ''), COALESCE(u.disabled, false),
			COALESCE(u.created_at, t.requested_at), COALESCE(u.updated_at, t.requested_at)
			FROM oauth2_access_tokens t LEFT JOIN users u ON u.id = t.subject WHERE t.signature = $1`

const loginSessionColumns = `id, user_id, passed_login_otp, amr, auth_time, expires_at, created_at, updated_at`

// login_sessions.go createLoginSessionStmt (CreateSessionChallenge's
// pipeline sends it without CreateLoginSession's ON CONFLICT DO NOTHING).
const sqlCreateLoginSession = `INSERT INTO login_sessions (` + loginSessionColumns + `)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $7)`

// rate_counters.go hitRateCountersStmt with two keys, limited (as
// CreateSessionChallenge's pipeline sends it: the second key's count through
// otpstep_within_limit).
const sqlHitTwoRateCounters = `INSERT INTO rate_counters ("key", window_start, reset_at, count) VALUES ($1, $2, $3, 1), ($4, $5, $6, 1) ON CONFLICT ("key") DO UPDATE SET
			count = otpstep_within_limit(CASE WHEN rate_counters.reset_at <= excluded.window_start THEN 1 ELSE rate_counters.count + 1 END, CASE excluded."key" WHEN $1 THEN $7::bigint WHEN $4 THEN $8::bigint ELSE 0 END, excluded."key"),
			window_start = CASE WHEN rate_counters.reset_at <= excluded.window_start THEN excluded.window_start ELSE rate_counters.window_start END,
			reset_at = CASE WHEN rate_counters.reset_at <= excluded.window_start THEN excluded.reset_at ELSE rate_counters.reset_at END
		RETURNING "key", count, reset_at`

const otpChallengeColumns = `id, kind, user_id, session_id, client_id, code_hash, attempts, max_attempts,
	expires_at, consumed_at, burned_at, created_at`

const otpLiveScope = `kind = $1 AND user_id = $2 AND session_id = $3 AND consumed_at IS NULL AND burned_at IS NULL`

// otp_challenges.go insertOTPChallengeStmt (CreateSessionChallenge's
// pipeline: a new session needs no burn, and no ON CONFLICT).
const sqlInsertOTPChallenge = `INSERT INTO otp_challenges (` + otpChallengeColumns + `)
				VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)`

// otp_challenges.go LiveOTPChallenge.
const sqlLiveOTPChallenge = `SELECT ` + otpChallengeColumns + ` FROM otp_challenges WHERE ` + otpLiveScope

// outbox.go EnqueueOutbox.
const sqlEnqueueOutbox = `INSERT INTO mail_outbox (id, sealed_payload, attempts, available_at, created_at, last_error) VALUES ($1, $2, $3, $4, $5, $6)`

// audit.go AddAuditEvents with two events.
const sqlAddTwoAuditEvents = `INSERT INTO audit_events (at, type, user_id, client_id, session_id, ip, detail) VALUES ($1, $2, $3, $4, $5, $6, $7), ($8, $9, $10, $11, $12, $13, $14)`
