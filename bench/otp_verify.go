package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sync/atomic"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/otpstep/otpstep/provider"
)

// verifyOTPFloor is verify_otp's statements with the right code (web/userapi.go
// apiAuthenticate's bearer lookup with its user, then provider.VerifyOTP's one
// transaction: failure counter checked, live challenge read, attempt spent
// and challenge consumed, session passed, audit event). Its prepare inserts
// 4 × as many sessions with a live challenge as the endpoint had, round-robin
// over the same users, the rows IssueOTP writes (the floor matches no code,
// so no code is needed); the bearer lookups read the endpoint's token rows
// (read-only; whose token it is does not change the statement).
func verifyOTPFloor(e *env, users []benchUser, endpoint []otpItem) *floor {
	return &floor{
		prepare: func(ctx context.Context, db *pgxpool.Pool) (func(context.Context) error, error) {
			items, err := e.insertChallenges(ctx, db, users, 4*len(endpoint))
			if err != nil {
				return nil, err
			}
			for i := range items {
				items[i].sig = endpoint[i%len(endpoint)].sig
			}
			if err := e.analyze(ctx); err != nil {
				return nil, err
			}
			cfg := e.Plugin.Provider.Config().OTP
			otp := `"` + provider.AMROTP + `"`
			detail, _ := json.Marshal(map[string]any{"kind": provider.OTPKindLogin})
			var n atomic.Uint64
			return func(ctx context.Context) error {
				i := n.Add(1) - 1
				if i >= uint64(len(items)) {
					return errNoMoreOps
				}
				it := &items[i]
				uid, sid := it.u.user.ID, it.sid
				// AuthenticateBearer: the token and its user in one query.
				if err := mustFind(ctx, db, "bearer", nil, sqlGetAccessTokenAndUser, it.sig); err != nil {
					return err
				}
				return inTx(ctx, db, func(tx pgx.Tx) error {
					now := dbNow()
					var (
						count int
						start time.Time
					)
					if err := mustFind(ctx, tx, "check rate counter", []any{&count, &start}, sqlCheckRateCounter,
						"otp:failures:"+uid, now, now.Add(cfg.FailureWindow), now.Add(-cfg.FailureWindow), 0, cfg.MaxFailuresPerUser); err != nil {
						return err
					}
					var chID, chClient string
					dest := []any{&chID, nil, nil, nil, &chClient, nil, nil, nil, nil, nil, nil, nil}
					if err := mustFind(ctx, tx, "live challenge", dest, sqlLiveOTPChallenge, provider.OTPKindLogin, uid, sid); err != nil {
						return err
					}
					now = dbNow()
					var attempts int
					if err := mustFind(ctx, tx, "try challenge", []any{&attempts}, sqlTryOTPChallenge, chID, now, now); err != nil {
						return err
					}
					now = dbNow()
					tag, err := tx.Exec(ctx, sqlPassLoginSession, sid, uid, now, `%,`+otp+`,%`, `[`+otp+`]`, `,`+otp+`]`)
					if err != nil {
						return fmt.Errorf("pass login session: %w", err)
					}
					if tag.RowsAffected() != 1 {
						return errors.New("pass login session: not found")
					}
					if _, err := tx.Exec(ctx, sqlAddOneAuditEvent, dbNow(), "otp.verify_passed", uid, chClient, sid, "", string(detail)); err != nil {
						return fmt.Errorf("add audit events: %w", err)
					}
					return nil
				})
			}, nil
		},
	}
}

// The statements of VerifyOTP's transaction that floor.go does not have, as
// storage builds them. Keep them in step with storage.

// rate_counters.go CheckRateCounter.
const sqlCheckRateCounter = `INSERT INTO rate_counters ("key", window_start, reset_at, count)
		VALUES ($1, $2, $3, $5)
		ON CONFLICT ("key") DO UPDATE SET
			count = CASE WHEN rate_counters.window_start <= $4 THEN excluded.count
				WHEN rate_counters.count >= $6 THEN rate_counters.count + 1
				ELSE rate_counters.count END,
			window_start = CASE WHEN rate_counters.window_start <= $4 THEN excluded.window_start ELSE rate_counters.window_start END,
			reset_at = CASE WHEN rate_counters.window_start <= $4 THEN excluded.reset_at ELSE rate_counters.reset_at END
		RETURNING count, window_start`

// otp_challenges.go TryOTPChallenge.
const sqlTryOTPChallenge = `UPDATE otp_challenges SET attempts = attempts + 1, consumed_at = $2
		WHERE id = $1 AND consumed_at IS NULL AND burned_at IS NULL AND attempts < max_attempts AND expires_at > $3
		RETURNING attempts`

// otp_challenges.go PassLoginSession.
const sqlPassLoginSession = `UPDATE login_sessions SET passed_login_otp = TRUE, updated_at = $3,
		amr = CASE
			WHEN ',' || substr(amr, 2, length(amr) - 2) || ',' LIKE $4 THEN amr
			WHEN amr = '[]' THEN $5
			ELSE substr(amr, 1, length(amr) - 1) || $6
		END
		WHERE id = $1 AND user_id = $2 AND expires_at > $3`

// audit.go AddAuditEvents with one event.
const sqlAddOneAuditEvent = `INSERT INTO audit_events (at, type, user_id, client_id, session_id, ip, detail) VALUES ($1, $2, $3, $4, $5, $6, $7)`

// insertChallenges inserts n login sessions with a live login challenge
// each, round-robin over users, in bulk: the login_sessions and
// otp_challenges rows createSessionWithOTP writes, with a random code hash.
func (e *env) insertChallenges(ctx context.Context, db *pgxpool.Pool, users []benchUser, n int) ([]otpItem, error) {
	client, err := e.userClient(ctx)
	if err != nil {
		return nil, err
	}
	cfg := e.Plugin.Provider.Config()
	items := make([]otpItem, n)
	sids, uids, chIDs := make([]string, n), make([]string, n), make([]string, n)
	for i := range items {
		u := &users[i%len(users)]
		items[i] = otpItem{u: u, sid: uuid.NewString()}
		sids[i], uids[i], chIDs[i] = items[i].sid, u.user.ID, uuid.NewString()
	}
	now := dbNow()
	err = inTx(ctx, db, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `INSERT INTO login_sessions (`+loginSessionColumns+`)
			SELECT sid, uid, FALSE, $3, $4, $5, $4, $4 FROM unnest($1::text[], $2::text[]) AS s(sid, uid)`,
			sids, uids, `["`+provider.AMRPassword+`"]`, now, now.Add(cfg.Login.SessionLifespan)); err != nil {
			return fmt.Errorf("insert login sessions: %w", err)
		}
		if _, err := tx.Exec(ctx, `INSERT INTO otp_challenges (`+otpChallengeColumns+`)
			SELECT id, $4, uid, sid, $5, sha256(convert_to(id, 'UTF8')), 0, $6, $7, NULL, NULL, $8
			FROM unnest($1::text[], $2::text[], $3::text[]) AS s(id, uid, sid)`,
			chIDs, uids, sids, provider.OTPKindLogin, client.ID, cfg.OTP.MaxAttempts, now.Add(cfg.OTP.TTL), now); err != nil {
			return fmt.Errorf("insert otp challenges: %w", err)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return items, nil
}
