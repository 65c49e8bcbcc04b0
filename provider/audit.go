package provider

import (
	"context"

	"github.com/otpstep/otpstep/storage"
)

// AuditEvent is a security-relevant event to record.
type AuditEvent = storage.AuditEvent

// Audit records an event. A failure to record is returned; callers on a
// path that already succeeded log it rather than fail the user.
func (p *Provider) Audit(ctx context.Context, e AuditEvent) error {
	if e.At.IsZero() {
		e.At = p.clock().UTC()
	}
	if err := p.store.AddAuditEvent(ctx, &e); err != nil {
		p.log.ErrorContext(ctx, "audit event not recorded", "type", e.Type, "err", err)
		return err
	}
	return nil
}
