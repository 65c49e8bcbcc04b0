package outbox_test

import (
	"cmp"
	"context"
	"errors"
	"maps"
	"slices"
	"sort"
	"sync"
	"testing"
	"time"

	"github.com/otpstep/otpstep/provider/outbox"
)

// fakeClock is a clock tests move by hand.
type fakeClock struct {
	mu  sync.Mutex
	now time.Time
}

func newFakeClock() *fakeClock {
	return &fakeClock{now: time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)}
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}

// memStore is an in-memory outbox honouring AvailableAt and the lease the way
// storage does, guarded by one mutex so claims are atomic.
type memStore struct {
	mu         sync.Mutex
	clock      func() time.Time
	rows       map[string]outbox.Row
	claims     map[string]int // how often each ID was claimed
	calls      map[string]int // how often each method was called
	deletes    [][]string     // the IDs of each DeleteOutboxMessages call
	failClaim  error
	failWrite  error       // every write fails
	failDelete error       // deletes fail
	onClaim    func(n int) // called after each claim with the number of rows
}

func newMemStore(clock func() time.Time) *memStore {
	return &memStore{clock: clock, rows: map[string]outbox.Row{}, claims: map[string]int{}, calls: map[string]int{}}
}

var _ outbox.BatchStore = (*memStore)(nil)

func (s *memStore) ClaimOutbox(_ context.Context, limit int, lease time.Duration) ([]outbox.Row, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.calls["ClaimOutbox"]++
	if s.failClaim != nil {
		return nil, s.failClaim
	}
	now := s.clock()
	var due []outbox.Row
	for _, r := range s.rows {
		if !r.AvailableAt.After(now) {
			due = append(due, r)
		}
	}
	sort.Slice(due, func(i, j int) bool {
		if !due[i].AvailableAt.Equal(due[j].AvailableAt) {
			return due[i].AvailableAt.Before(due[j].AvailableAt)
		}
		return due[i].ID < due[j].ID
	})
	if len(due) > limit {
		due = due[:limit]
	}
	for i := range due {
		due[i].AvailableAt = now.Add(lease)
		due[i].Attempts++
		s.rows[due[i].ID] = due[i]
		s.claims[due[i].ID]++
	}
	if s.onClaim != nil {
		s.onClaim(len(due))
	}
	return due, nil
}

func (s *memStore) DeleteOutboxMessage(_ context.Context, id string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.calls["DeleteOutboxMessage"]++
	if err := cmp.Or(s.failWrite, s.failDelete); err != nil {
		return err
	}
	delete(s.rows, id)
	return nil
}

func (s *memStore) RescheduleOutboxMessage(_ context.Context, id string, availableAt time.Time, lastError string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.calls["RescheduleOutboxMessage"]++
	if s.failWrite != nil {
		return s.failWrite
	}
	r, ok := s.rows[id]
	if !ok {
		return errors.New("memstore: no such row")
	}
	r.AvailableAt, r.LastError = availableAt, lastError
	s.rows[id] = r
	return nil
}

func (s *memStore) DeleteOutboxMessages(_ context.Context, ids []string) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.calls["DeleteOutboxMessages"]++
	s.deletes = append(s.deletes, slices.Clone(ids))
	if err := cmp.Or(s.failWrite, s.failDelete); err != nil {
		return 0, err
	}
	n := 0
	for _, id := range ids {
		if _, ok := s.rows[id]; ok {
			delete(s.rows, id)
			n++
		}
	}
	return n, nil
}

func (s *memStore) RescheduleOutboxMessages(_ context.Context, ids []string, availableAt time.Time, lastError string) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.calls["RescheduleOutboxMessages"]++
	if s.failWrite != nil {
		return 0, s.failWrite
	}
	n := 0
	for _, id := range ids {
		if r, ok := s.rows[id]; ok {
			r.AvailableAt, r.LastError = availableAt, lastError
			s.rows[id] = r
			n++
		}
	}
	return n, nil
}

// callCounts is a copy of calls.
func (s *memStore) callCounts() map[string]int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return maps.Clone(s.calls)
}

// put stores a row as enqueued now.
func (s *memStore) put(r outbox.Row) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if r.CreatedAt.IsZero() {
		r.CreatedAt = s.clock()
	}
	if r.AvailableAt.IsZero() {
		r.AvailableAt = r.CreatedAt
	}
	s.rows[r.ID] = r
}

func (s *memStore) row(t *testing.T, id string) outbox.Row {
	t.Helper()
	s.mu.Lock()
	defer s.mu.Unlock()
	r, ok := s.rows[id]
	if !ok {
		t.Fatalf("row %s is gone", id)
	}
	return r
}

func (s *memStore) len() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.rows)
}
