package provider

import "context"

// HasRequiredLinkedIdentity applies the linked-identity policy: when
// linked_identity.required is set, the user needs a linked identity of one of
// linked_identity.providers (any provider when the list is empty).
func (p *Provider) HasRequiredLinkedIdentity(ctx context.Context, userID string) (bool, error) {
	if !p.cfg.LinkedIdentity.Required {
		return true, nil
	}
	return p.store.HasLinkedIdentity(ctx, userID, p.cfg.LinkedIdentity.Providers)
}
