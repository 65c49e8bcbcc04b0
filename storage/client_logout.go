package storage

import (
	"context"
	"fmt"
)

// setClientLogout writes c's logout registration (ClientLogout) to its row.
func (s *Store) setClientLogout(ctx context.Context, c *Client) error {
	l := c.Logout
	if _, err := s.exec(ctx, `UPDATE oauth2_clients SET post_logout_redirect_uris = $2, backchannel_logout_uri = $3,
		backchannel_logout_session_required = $4 WHERE id = $1`,
		c.ID, encodeList(l.PostLogoutRedirectURIs), l.BackchannelLogoutURI, l.BackchannelLogoutSessionRequired); err != nil {
		return fmt.Errorf("logout registration: %w", err)
	}
	return nil
}
