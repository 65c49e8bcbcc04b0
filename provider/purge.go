package provider

import (
	"context"
	"encoding/binary"
	"io"
	"time"

	"github.com/otpstep/otpstep/provider/config"
	"github.com/otpstep/otpstep/storage"
)

// PurgeExpired deletes, once, what expired before now: tokens, authorization
// codes, PKCE and OpenID Connect sessions, client-assertion JTIs, login
// sessions, rate counters, and OTP challenges a day after their expiry
// (storage.PurgeExpired), then audit events older than
// database.audit_retention when it is set. It returns how many rows went.
// otpstep purge runs it; RunPurge runs it every database.purge_interval.
func (p *Provider) PurgeExpired(ctx context.Context) (int64, error) {
	n, err := PurgeStore(ctx, p.store, p.clock(), p.cfg.Database)
	p.notifyLogouts() // expired sessions' back-channel logouts
	return n, err
}

// PurgeStore is PurgeExpired on a store alone, with the database.* keys:
// otpstep purge needs no provider (and so no secret or mail settings).
func PurgeStore(ctx context.Context, store *storage.Store, now time.Time, db config.Database) (int64, error) {
	n, err := store.PurgeExpired(ctx, now)
	if err != nil {
		return n, err
	}
	if keep := db.AuditRetention; keep > 0 { // database.audit_retention
		events, err := store.PurgeAuditEvents(ctx, now.Add(-keep))
		return n + events, err
	}
	return n, nil
}

// RunPurge runs PurgeExpired every database.purge_interval until ctx ends
// (not at all when the interval is 0). plugin.Start runs it in every
// instance: the first pass comes after a random part of the interval, and
// each wait varies by up to a tenth of it, so instances started together do
// not purge together (when they do, storage splits the rows between them).
// A failed pass is logged and the next one comes at the next interval.
func (p *Provider) RunPurge(ctx context.Context) {
	every := p.cfg.Database.PurgeInterval // database.purge_interval
	if every <= 0 {
		return
	}
	wait := time.Duration(p.fraction() * float64(every))
	for {
		timer := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			timer.Stop()
			return
		case <-timer.C:
		}
		start := time.Now()
		n, err := p.PurgeExpired(ctx)
		switch {
		case ctx.Err() != nil:
			return
		case err != nil:
			p.log.Error("purge expired rows failed", "deleted", n, "err", err)
		case n > 0:
			p.log.Info("purged expired rows", "deleted", n, "took", time.Since(start).Round(time.Millisecond))
		}
		wait = every + time.Duration((p.fraction()-0.5)*0.2*float64(every))
	}
}

// fraction is a random number in [0, 1) from the provider's randomness
// (0 if it fails: the schedule only loses its spread).
func (p *Provider) fraction() float64 {
	var b [8]byte
	if _, err := io.ReadFull(p.random, b[:]); err != nil {
		return 0
	}
	return float64(binary.LittleEndian.Uint64(b[:])>>11) / (1 << 53)
}
