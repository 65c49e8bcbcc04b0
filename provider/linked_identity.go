package provider

import (
	"context"
	"errors"
	"fmt"

	"github.com/otpstep/otpstep/storage"
)

// HasRequiredLinkedIdentity applies the linked-identity policy: when
// linked_identity.required is set, the user needs a linked identity of one of
// linked_identity.providers (any provider when the list is empty).
func (p *Provider) HasRequiredLinkedIdentity(ctx context.Context, userID string) (bool, error) {
	if !p.cfg.LinkedIdentity.Required {
		return true, nil
	}
	return p.store.HasLinkedIdentity(ctx, userID, p.cfg.LinkedIdentity.Providers)
}

// The login a link needs (LinkSessionReady). Both match ErrReauthRequired.
var (
	// ErrReauthRequired means linking needs a login past the second factor
	// no older than linked_identity.reauth_max_age.
	ErrReauthRequired = errors.New("linking needs a recent login past the second factor")
	// ErrLinkLoginTooOld: there is no login session, or its login is older
	// than linked_identity.reauth_max_age: the user signs in again.
	ErrLinkLoginTooOld = fmt.Errorf("%w: no login, or one older than linked_identity.reauth_max_age", ErrReauthRequired)
	// ErrLinkNeedsSecondFactor: the login is recent but has not passed the
	// second factor.
	ErrLinkNeedsSecondFactor = fmt.Errorf("%w: the login has not passed the second factor", ErrReauthRequired)
)

// LinkSessionReady says whether the login session ls (nil: none) may link
// an identity, the one rule of the browser's link page and the API's PUT:
// linking changes how the account can be reached, so it needs a recent login
// (at most linked_identity.reauth_max_age old, ErrLinkLoginTooOld) that
// passed the second factor (aal2, ErrLinkNeedsSecondFactor): a partner
// relying on the link trusts it as much as the account.
func (p *Provider) LinkSessionReady(ls *storage.LoginSession) error {
	if ls == nil || !p.clock().Before(ls.ExpiresAt) || p.clock().Sub(ls.AuthTime) > p.cfg.LinkedIdentity.ReauthMaxAge {
		return ErrLinkLoginTooOld
	}
	if !ls.PassedLoginOTP {
		return ErrLinkNeedsSecondFactor
	}
	return nil
}

// LinkSessionReadyByID is LinkSessionReady for the login session sessionID of
// userID (a bearer token's sid): an unknown session, or another user's, is
// ErrLinkLoginTooOld.
func (p *Provider) LinkSessionReadyByID(ctx context.Context, sessionID, userID string) error {
	ls, err := p.store.GetLoginSession(ctx, sessionID)
	if errors.Is(err, storage.ErrNotFound) {
		return ErrLinkLoginTooOld
	}
	if err != nil {
		return err
	}
	if ls.UserID != userID {
		return ErrLinkLoginTooOld
	}
	return p.LinkSessionReady(ls)
}
