package main

import (
	"fmt"

	"github.com/spf13/cobra"

	"github.com/otpstep/otpstep/provider"
	"github.com/otpstep/otpstep/storage"
)

// addLogoutFlags adds the logout registration's flags to clients create.
func addLogoutFlags(create *cobra.Command, l *storage.ClientLogout) {
	f := create.Flags()
	f.StringArrayVar(&l.PostLogoutRedirectURIs, "post-logout-redirect-uri", nil,
		"where an RP-initiated logout may return the browser, absolute, matched exactly (repeat for several)")
	f.StringVar(&l.BackchannelLogoutURI, "backchannel-logout-uri", "",
		"the client's back-channel logout endpoint, absolute: it is POSTed a logout token when a login session it got tokens for ends")
	f.BoolVar(&l.BackchannelLogoutSessionRequired, "backchannel-logout-session-required", false,
		"the client needs sid in its logout tokens (otpstep always sends it)")
}

// checkLogoutFlags checks the logout flags' URLs, naming the flag.
func checkLogoutFlags(l storage.ClientLogout) error {
	for _, u := range l.PostLogoutRedirectURIs {
		if err := provider.CheckRedirectURI(u); err != nil {
			return fmt.Errorf("--post-logout-redirect-uri %q: %v", u, err)
		}
	}
	if l.BackchannelLogoutURI != "" {
		if err := provider.CheckRedirectURI(l.BackchannelLogoutURI); err != nil {
			return fmt.Errorf("--backchannel-logout-uri %q: %v", l.BackchannelLogoutURI, err)
		}
	} else if l.BackchannelLogoutSessionRequired {
		return fmt.Errorf("--backchannel-logout-session-required needs --backchannel-logout-uri")
	}
	return nil
}
