package provider

import (
	"fmt"

	"github.com/otpstep/otpstep/storage"
)

// checkClientLogout checks a client's logout registration: every
// post-logout redirect URI and the back-channel logout URI are absolute
// https URLs (http on loopback) without a fragment, as redirect URIs are
// (RP-Initiated Logout 1.0 §3.1 compares them exactly; Back-Channel Logout
// 1.0 §2.2: "MUST NOT include a fragment component"). Session required
// asks for a back channel.
func checkClientLogout(l storage.ClientLogout) error {
	for _, u := range l.PostLogoutRedirectURIs {
		if err := checkRedirectURI(u); err != nil {
			return fmt.Errorf("post-logout redirect URI %q: %v", u, err)
		}
	}
	if l.BackchannelLogoutURI != "" {
		if err := checkRedirectURI(l.BackchannelLogoutURI); err != nil {
			return fmt.Errorf("back-channel logout URI %q: %v", l.BackchannelLogoutURI, err)
		}
	} else if l.BackchannelLogoutSessionRequired {
		return fmt.Errorf("back-channel logout session required needs a back-channel logout URI")
	}
	return nil
}
