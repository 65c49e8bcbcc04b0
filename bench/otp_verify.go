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
// apiAuthenticate, provider.VerifyOTP's success path: failure counter,
// live challenge, attempt, consume, counter given back, passSecondFactor's
// transaction, Audit). Its prepare inserts 4 × as many sessions with a
// live challenge as the endpoint had, round-robin over the same users, the
// rows IssueOTP writes (the floor matches no code, so no code is needed);
// the bearer lookups read the endpoint's token rows (read-only; whose token
// it is does not change the statement).
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
			amrPassed := `["` + provider.AMRPassword + `","` + provider.AMROTP + `"]`
			detail, _ := json.Marshal(map[string]any{"kind": provider.OTPKindLogin})
			var n atomic.Uint64
			return func(ctx context.Context) error {
				i := n.Add(1) - 1
				if i >= uint64(len(items)) {
					return errNoMoreOps
				}
				it := &items[i]
				uid, sid := it.u.user.ID, it.sid
				if err := mustFind(ctx, db, "bearer", nil, sqlGetAccessToken, it.sig); err != nil {
					return err
				}
				if err := mustFind(ctx, db, "user", nil, sqlGetUser, uid); err != nil {
					return err
				}
				failKey := "otp:failures:" + uid
				if _, err := hitRateCounter(ctx, db, failKey, dbNow(), cfg.FailureWindow); err != nil {
					return err
				}
				var chID, chClient string
				var expiresAt time.Time
				dest := []any{&chID, nil, nil, nil, &chClient, nil, nil, nil, &expiresAt, nil, nil, nil}
				if err := mustFind(ctx, db, "live challenge", dest, sqlLiveOTPChallenge, provider.OTPKindLogin, uid, sid); err != nil {
					return err
				}
				var attempts int
				if err := mustFind(ctx, db, "spend attempt", []any{&attempts}, sqlSpendOTPAttempt, chID); err != nil {
					return err
				}
				tag, err := db.Exec(ctx, sqlConsumeOTPChallenge, chID, dbNow())
				if err != nil {
					return fmt.Errorf("consume: %w", err)
				}
				if tag.RowsAffected() != 1 {
					return errors.New("consume: not won")
				}
				if _, err := db.Exec(ctx, sqlUndoRateCounterHit, failKey); err != nil {
					return fmt.Errorf("undo rate counter hit: %w", err)
				}
				// passSecondFactor.
				err = inTx(ctx, db, func(tx pgx.Tx) error {
					var authTime, lsExpires time.Time
					dest := []any{nil, nil, nil, nil, &authTime, &lsExpires, nil, nil}
					if err := mustFind(ctx, tx, "get login session", dest, sqlGetLoginSession, sid, dbNow()); err != nil {
						return err
					}
					tag, err := tx.Exec(ctx, sqlUpdateLoginSession, sid, uid, true, amrPassed, authTime, lsExpires, dbNow())
					if err != nil {
						return fmt.Errorf("update login session: %w", err)
					}
					if tag.RowsAffected() != 1 {
						return errors.New("update login session: not found")
					}
					if _, err := tx.Exec(ctx, sqlBurnOTPChallenges, provider.OTPKindLogin, uid, sid, dbNow()); err != nil {
						return fmt.Errorf("burn challenges: %w", err)
					}
					return nil
				})
				if err != nil {
					return err
				}
				return addAuditEvent(ctx, db, dbNow(), "otp.verify_passed", uid, chClient, sid, "", string(detail))
			}, nil
		},
	}
}

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
