package storage

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
)

// defaultAuditLimit caps ListAuditEvents when no limit is given.
const defaultAuditLimit = 100

// AddAuditEvent appends an event and sets e.ID. A zero At is set from the clock.
func (s *Store) AddAuditEvent(ctx context.Context, e *AuditEvent) error {
	at, detail, err := s.auditArgs(e)
	if err != nil {
		return fmt.Errorf("storage: add audit event: %w", err)
	}
	err = s.queryRow(ctx, `INSERT INTO audit_events (at, type, user_id, client_id, session_id, ip, detail)
		VALUES ($1, $2, $3, $4, $5, $6, $7) RETURNING id`,
		at, e.Type, e.UserID, e.ClientID, e.SessionID, e.IP, detail).Scan(&e.ID)
	if err != nil {
		return fmt.Errorf("storage: add audit event: %w", classify(err))
	}
	return nil
}

// AddAuditEvents appends events in one statement, for paths that record
// several at once inside a transaction. A zero At is set from the clock; the
// IDs are not read back (they stay 0).
func (s *Store) AddAuditEvents(ctx context.Context, events ...*AuditEvent) error {
	if len(events) == 0 {
		return nil
	}
	st, err := s.addAuditEventsStmt(events)
	if err != nil {
		return fmt.Errorf("storage: add audit events: %w", err)
	}
	if _, err := s.exec(ctx, st.sql, st.args...); err != nil {
		return fmt.Errorf("storage: add audit events: %w", err)
	}
	return nil
}

// addAuditEventsStmt is AddAuditEvents' INSERT of one or more events.
func (s *Store) addAuditEventsStmt(events []*AuditEvent) (stmt, error) {
	var (
		q    strings.Builder
		args = make([]any, 0, 7*len(events))
	)
	q.WriteString(`INSERT INTO audit_events (at, type, user_id, client_id, session_id, ip, detail) VALUES `)
	for i, e := range events {
		at, detail, err := s.auditArgs(e)
		if err != nil {
			return stmt{}, err
		}
		if i > 0 {
			q.WriteString(", ")
		}
		n := 7 * i
		fmt.Fprintf(&q, "($%d, $%d, $%d, $%d, $%d, $%d, $%d)", n+1, n+2, n+3, n+4, n+5, n+6, n+7)
		args = append(args, at, e.Type, e.UserID, e.ClientID, e.SessionID, e.IP, detail)
	}
	return stmt{q.String(), args}, nil
}

// auditArgs sets a zero e.At from the clock and returns the at and detail
// arguments of e's row (detail NULL when there is none).
func (s *Store) auditArgs(e *AuditEvent) (at, detail any, err error) {
	if e.At.IsZero() {
		e.At = s.now()
	}
	e.At = normTime(e.At)
	if len(e.Detail) > 0 {
		b, err := json.Marshal(e.Detail)
		if err != nil {
			return nil, nil, fmt.Errorf("encode detail: %w", err)
		}
		detail = string(b)
	}
	return s.timeArg(e.At), detail, nil
}

// ListAuditEvents returns up to limit events, newest first, of one user
// (userID "" = of everyone). limit <= 0 means 100.
func (s *Store) ListAuditEvents(ctx context.Context, userID string, limit int) ([]AuditEvent, error) {
	if limit <= 0 {
		limit = defaultAuditLimit
	}
	const cols = `SELECT id, at, type, user_id, client_id, session_id, ip, detail FROM audit_events `
	q, args := cols+`ORDER BY at DESC, id DESC LIMIT $1`, []any{limit}
	if userID != "" {
		q, args = cols+`WHERE user_id = $1 ORDER BY at DESC, id DESC LIMIT $2`, []any{userID, limit}
	}
	rows, err := s.query(ctx, q, args...)
	if err != nil {
		return nil, fmt.Errorf("storage: list audit events: %w", err)
	}
	defer rows.Close()
	var events []AuditEvent
	for rows.Next() {
		var (
			e      AuditEvent
			detail []byte
		)
		if err := rows.Scan(&e.ID, timeCol{&e.At}, &e.Type, &e.UserID, &e.ClientID, &e.SessionID, &e.IP, &detail); err != nil {
			return nil, fmt.Errorf("storage: list audit events: %w", classify(err))
		}
		if len(detail) > 0 {
			if err := json.Unmarshal(detail, &e.Detail); err != nil {
				return nil, fmt.Errorf("storage: list audit events: decode detail: %w", err)
			}
		}
		events = append(events, e)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("storage: list audit events: %w", classify(err))
	}
	return events, nil
}
