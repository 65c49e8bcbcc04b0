package storage_test

import (
	"database/sql"
	"encoding/json"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/otpstep/otpstep/storage"
	"github.com/otpstep/otpstep/storage/storagetest"
)

// After an SMTP outage the outbox holds thousands of mails while its
// statistics still describe the empty queue autovacuum last saw. A claim of a
// batch must then read about a batch's worth of the table, not the backlog
// (the dispatcher drained such a backlog at 120 mails a second when each
// claim ran its subquery once per queued row). The figure checked is
// PostgreSQL's count of buffers the claim touched, not a time.
func TestClaimOutbox_PlanReadsTheBatchNotTheBacklog(t *testing.T) {
	const backlog, batch = 5000, 20
	ctx := t.Context()
	dsn := storagetest.PostgresDSN(t)
	s, err := storage.Open(ctx, dsn, storage.Options{})
	require.NoError(t, err)
	t.Cleanup(func() { _ = s.Close() })
	require.NoError(t, s.Migrate(ctx))
	db, err := sql.Open("pgx", dsn)
	require.NoError(t, err)
	t.Cleanup(func() { _ = db.Close() })

	// The statistics of a queue in service: mails came and went, and ANALYZE
	// saw their pages but no live row.
	now := time.Now().UTC().Truncate(time.Microsecond)
	enqueue := `INSERT INTO mail_outbox (id, sealed_payload, available_at, created_at)
		SELECT $3 || g, '\x00'::bytea, $1::timestamptz - g * interval '1 ms', $1::timestamptz - g * interval '1 ms'
		FROM generate_series(1, $2::int) g`
	for _, q := range []struct {
		sql  string
		args []any
	}{
		{enqueue, []any{now.Add(-time.Hour), backlog, "sent"}},
		{`DELETE FROM mail_outbox`, nil},
		{`ANALYZE mail_outbox`, nil},
		{enqueue, []any{now, backlog, "m"}}, // the outage's backlog
	} {
		_, err = db.ExecContext(ctx, q.sql, q.args...)
		require.NoError(t, err, q.sql)
	}

	tx, err := db.BeginTx(ctx, nil)
	require.NoError(t, err)
	defer func() { _ = tx.Rollback() }()
	var out []byte
	require.NoError(t, tx.QueryRowContext(ctx, `EXPLAIN (ANALYZE, BUFFERS, FORMAT JSON) `+s.ClaimOutboxSQL(),
		now, now.Add(time.Minute), batch).Scan(&out))
	var plans []struct {
		Plan struct {
			Rows    int `json:"Actual Rows"`
			Hit     int `json:"Shared Hit Blocks"`
			Read    int `json:"Shared Read Blocks"`
			Dirtied int `json:"Shared Dirtied Blocks"`
		}
	}
	require.NoError(t, json.Unmarshal(out, &plans), "%s", out)
	require.Len(t, plans, 1)
	p := plans[0].Plan
	assert.Equal(t, batch, p.Rows)
	assert.Less(t, p.Hit+p.Read, 50*batch, "buffers touched by one claim of %d over %d queued mails; plan: %s", batch, backlog, out)
	require.NoError(t, tx.Rollback())

	got, err := s.ClaimOutbox(ctx, batch, time.Minute)
	require.NoError(t, err)
	require.Len(t, got, batch)
	assert.Equal(t, "m5000", got[0].ID, "the longest available first")
}
