package outbox

import (
	"context"
	"time"

	"github.com/otpstep/otpstep/storage"
)

// Row is one queued message as the store keeps it.
type Row = storage.OutboxMessage

// Store is the part of the database the Dispatcher needs.
type Store interface {
	// ClaimOutbox atomically claims up to limit rows whose AvailableAt is not
	// after now, sets their AvailableAt to now+lease so no other instance
	// claims them while this one works, increments their Attempts, and returns
	// them with the incremented count. Rows claimed by one call are never
	// returned by another before the lease runs out (PostgreSQL: SELECT … FOR
	// UPDATE SKIP LOCKED inside the claiming transaction).
	ClaimOutbox(ctx context.Context, limit int, lease time.Duration) ([]Row, error)
	// DeleteOutboxMessage removes a row, its payload with it. Deleting a row
	// that no longer exists is not an error.
	DeleteOutboxMessage(ctx context.Context, id string) error
	// RescheduleOutboxMessage makes a row claimable again from availableAt and
	// records why the attempt failed.
	RescheduleOutboxMessage(ctx context.Context, id string, availableAt time.Time, lastError string) error
}

// BatchStore is a Store that also settles several rows in one statement. When
// the Dispatcher's store is one, the outcomes of a claimed batch are written
// with one DeleteOutboxMessages (the rows sent or dropped) and one
// RescheduleOutboxMessages per distinct (available at, last error) — usually
// one — instead of a statement and a commit per row.
type BatchStore interface {
	Store
	// DeleteOutboxMessages removes the rows with these IDs, their payloads
	// with them, and returns how many it removed; IDs that no longer exist
	// are skipped, not an error.
	DeleteOutboxMessages(ctx context.Context, ids []string) (int, error)
	// RescheduleOutboxMessages makes these rows claimable again from
	// availableAt, records lastError on each, and returns how many it
	// updated; IDs that no longer exist are skipped, not counted.
	RescheduleOutboxMessages(ctx context.Context, ids []string, availableAt time.Time, lastError string) (int, error)
}

// LeaseStore is a Store that can extend the lease of claimed rows. With one,
// the Dispatcher keeps a batch's rows leased while it works on them (every
// Options.Lease/3); without, a batch has its first lease only.
type LeaseStore interface {
	// ExtendOutboxLease sets the lease of those rows with these IDs whose
	// lease still ends at leasedUntil (the claim, or the last extension, set
	// it and no one has claimed them since) to end lease from now, and returns
	// their IDs and the new end. The IDs missing from held are no longer this
	// claim's: their lease ran out and another claim took them, or they were
	// settled.
	ExtendOutboxLease(ctx context.Context, ids []string, leasedUntil time.Time, lease time.Duration) (held []string, until time.Time, err error)
}
