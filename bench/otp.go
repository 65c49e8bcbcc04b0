package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"sync"
	"sync/atomic"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/otpstep/otpstep/provider"
	"github.com/otpstep/otpstep/provider/mail"
	"github.com/otpstep/otpstep/provider/outbox"
	"github.com/otpstep/otpstep/storage"
)

// errEnough stops newChallenges' workers when its time is up.
var errEnough = errors.New("enough challenges")

// otpItem is a login session with a live login challenge, for one verify.
type otpItem struct {
	u     *benchUser
	sid   string
	code  string
	token string // issued to sid; "" for floor items
	sig   string // the token's key (floor items: an endpoint item's)
}

// newChallenges creates n login sessions with a login OTP each through
// Provider.UpdateSessionOTP, round-robin over users, and a token issued to
// each session; n = 0 creates them for 2 × (warm-up +
// duration) instead, at -workers concurrency, which makes more than a run
// verifies (creating one costs the database at least what verifying one
// does). Then it waits for the outbox to deliver their mail, so that the
// run starts on an empty outbox.
func (e *env) newChallenges(ctx context.Context, name string, users []benchUser, n int) ([]otpItem, error) {
	client, err := e.userClient(ctx)
	if err != nil {
		return nil, err
	}
	p := e.Plugin.Provider
	lifespan := p.Config().Login.SessionLifespan
	start := time.Now()
	var (
		mu    sync.Mutex
		items []otpItem
	)
	limit, until := n, time.Time{}
	if n <= 0 {
		limit, until = 1<<30, start.Add((e.f.warmup+e.f.duration)*2)
	}
	err = parallel(ctx, limit, e.f.workers, func(ctx context.Context, i int) error {
		if !until.IsZero() && time.Now().After(until) {
			return errEnough
		}
		u := &users[i%len(users)]
		it := otpItem{u: u, sid: uuid.NewString()}
		issued, err := p.UpdateSessionOTP(ctx, provider.OTPRequest{User: u.user, SessionID: it.sid, ClientID: client.ID}, false)
		if err != nil {
			return err
		}
		it.code = issued.Code
		now := time.Now().UTC()
		ls := &storage.LoginSession{ID: it.sid, UserID: u.user.ID, AMR: []string{provider.AMRPassword}, AuthTime: now, ExpiresAt: now.Add(lifespan)}
		if it.token, it.sig, err = e.mintUserToken(ctx, ls); err != nil {
			return err
		}
		mu.Lock()
		items = append(items, it)
		mu.Unlock()
		return nil
	})
	if err != nil && !errors.Is(err, errEnough) {
		return nil, fmt.Errorf("create challenges: %w", err)
	}
	created := time.Since(start)
	drained, left, err := e.drainOutbox(ctx, 5*time.Minute)
	if err != nil {
		return nil, err
	}
	if e.f.verbose {
		fmt.Printf("# %s: %d challenges created in %.1fs, their mail delivered in %.1fs (%d left)\n",
			name, len(items), created.Seconds(), drained.Seconds(), left)
	}
	return items, nil
}

// outboxReport prints the outbox backlog the run left and how long the
// dispatcher then took to deliver it.
func (e *env) outboxReport(ctx context.Context, name string) error {
	pending, oldest, err := e.Plugin.Store().OutboxBacklog(ctx)
	if err != nil {
		return err
	}
	age := time.Duration(0)
	if pending > 0 {
		age = time.Since(oldest)
	}
	fmt.Printf("bench: %s outbox_backlog=%d oldest_ms=%.0f\n", name, pending, ms(age))
	took, left, err := e.drainOutbox(ctx, 2*time.Minute)
	if err != nil {
		return err
	}
	fmt.Printf("bench: %s outbox_drain_ms=%.0f outbox_left=%d\n", name, ms(took), left)
	return nil
}

// mailPayload renders the OTP mail as IssueOTP does, for floors to enqueue
// (with a fixed code: the text is what counts, its size and its sealing).
type mailPayload struct {
	sealer        *provider.Sealer
	subject       string
	text, html    string
	ttl, lifespan time.Duration
	maxAttempts   int
}

func (e *env) mailPayload() (*mailPayload, error) {
	cfg := e.Plugin.Provider.Config()
	sealer, err := provider.NewSealer([]byte(e.secret), "mail-outbox")
	if err != nil {
		return nil, err
	}
	tpl, err := mail.LoadTemplates(cfg.Mail.TemplatesDir)
	if err != nil {
		return nil, err
	}
	host := ""
	if u, err := url.Parse(cfg.Server.PublicURL); err == nil {
		host = u.Hostname()
	}
	ttl := cfg.OTP.TTL
	subject, text, html, err := tpl.OTP(mail.OTPData{Code: "123456", ExpiresAt: time.Now().Add(ttl),
		TTLMinutes: int((ttl + time.Minute - 1) / time.Minute), Kind: provider.OTPKindLogin, Issuer: host})
	if err != nil {
		return nil, err
	}
	return &mailPayload{sealer: sealer, subject: subject, text: text, html: html,
		ttl: ttl, lifespan: cfg.Login.SessionLifespan, maxAttempts: cfg.OTP.MaxAttempts}, nil
}

// seal is the sealed payload of a message with id to.
func (m *mailPayload) seal(id, to string) ([]byte, error) {
	return outbox.SealPayload(m.sealer, id, outbox.Payload{To: to, Subject: m.subject, Text: m.text, HTML: m.html})
}

// putSessionFloor is put_session's statements (web/userapi.go
// apiAuthenticate, provider UpdateSessionOTP's one transaction: the session,
// storeOTP's counters, challenge, mail and audit events), one request per
// op, round-robin over users with a fresh session id each.
func putSessionFloor(e *env, users []benchUser) *floor {
	return &floor{
		prepare: func(ctx context.Context, db *pgxpool.Pool) (func(context.Context) error, error) {
			client, err := e.userClient(ctx)
			if err != nil {
				return nil, err
			}
			mp, err := e.mailPayload()
			if err != nil {
				return nil, err
			}
			if err := e.analyze(ctx); err != nil {
				return nil, err
			}
			cfg := e.Plugin.Provider.Config()
			clientID, resend, maxSends := client.ID, cfg.OTP.ResendInterval, cfg.OTP.MaxSendsPerHour
			if resend <= 0 {
				return nil, errors.New("put_session floor: expects otp.resend_interval > 0 (the default)")
			}
			amr := `["` + provider.AMRPassword + `"]`
			var n atomic.Uint64
			return func(ctx context.Context) error {
				u := &users[(n.Add(1)-1)%uint64(len(users))]
				uid, sid := u.user.ID, uuid.NewString()
				// provider.AuthenticateBearer → GetAccessTokenSession with its
				// user (the client from the provider's cache); apiAuthenticate
				// needs no more (no linked-identity policy).
				if err := mustFind(ctx, db, "bearer", nil, sqlGetAccessTokenAndUser, u.sig); err != nil {
					return err
				}
				now := dbNow()
				chID, msgID := uuid.NewString(), uuid.NewString()
				codeHash := make([]byte, 32) // an HMAC-SHA256
				copy(codeHash, chID)
				sealed, err := mp.seal(msgID, u.user.Email)
				if err != nil {
					return err
				}
				issued, _ := json.Marshal(map[string]any{"kind": provider.OTPKindLogin, "challenge_id": chID, "in_response": true})
				// storage.CreateSessionChallenge, pipelined: the statements
				// in one batch, one implicit transaction.
				sendsKey := "otp:sends:" + uid
				var batch pgx.Batch
				batch.Queue(sqlCreateLoginSession, sid, uid, false, amr, now, now.Add(mp.lifespan), now)
				batch.Queue(sqlHitTwoRateCounters,
					"otp:resend:"+provider.OTPKindLogin+":"+sid, now, now.Add(resend),
					sendsKey, now, now.Add(time.Hour), int64(1), int64(maxSends))
				batch.Queue(sqlInsertOTPChallenge, chID, provider.OTPKindLogin, uid, sid, clientID, codeHash,
					0, mp.maxAttempts, now.Add(mp.ttl), nil, nil, now)
				batch.Queue(sqlEnqueueOutbox, msgID, sealed, 0, now, now, "")
				batch.Queue(sqlAddTwoAuditEvents,
					now, "session.created", uid, clientID, sid, "127.0.0.1", nil,
					now, "otp.issued", uid, clientID, sid, "127.0.0.1", string(issued))
				conn, err := db.Acquire(ctx)
				if err != nil {
					return err
				}
				defer conn.Release()
				br := conn.SendBatch(ctx, &batch)
				err = func() error {
					for i := range batch.Len() {
						if i == 1 { // the counters' RETURNING rows
							rows, err := br.Query()
							if err != nil {
								return err
							}
							for rows.Next() {
							}
							rows.Close()
							if err := rows.Err(); err != nil {
								return err
							}
							continue
						}
						tag, err := br.Exec()
						if err != nil {
							return err
						}
						if (i == 0 || i == 2) && tag.RowsAffected() != 1 {
							return fmt.Errorf("statement %d: %d rows", i, tag.RowsAffected())
						}
					}
					return nil
				}()
				if err = errors.Join(err, br.Close()); err != nil {
					return fmt.Errorf("put session: %w", err)
				}
				return nil
			}, nil
		},
		after: func(ctx context.Context) error { return e.outboxReport(ctx, "put_session_floor") },
	}
}
