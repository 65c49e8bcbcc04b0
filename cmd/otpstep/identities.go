package main

import (
	"errors"
	"fmt"
	"time"

	"github.com/spf13/cobra"

	"github.com/otpstep/otpstep/provider"
	"github.com/otpstep/otpstep/storage"
)

// linkedIdentityJSON is a link as the CLI prints it, in snake_case like
// clients list and users list.
type linkedIdentityJSON struct {
	ID        string    `json:"id"`
	UserID    string    `json:"user_id"`
	Provider  string    `json:"provider"`
	Subject   string    `json:"subject"`
	Email     string    `json:"email,omitempty"`
	CreatedAt time.Time `json:"created_at"`
}

func toLinkedIdentityJSON(li *storage.LinkedIdentity) linkedIdentityJSON {
	return linkedIdentityJSON{ID: li.ID, UserID: li.UserID, Provider: li.Provider, Subject: li.Subject, Email: li.Email, CreatedAt: li.CreatedAt.UTC()}
}

// linkError words provider.LinkIdentity's and UnlinkIdentity's refusals for
// an operator.
func linkError(err error, user, upstream string) error {
	switch {
	case errors.Is(err, provider.ErrUnknownUpstream):
		return fmt.Errorf("unknown upstream %q: not in the configuration's upstreams", upstream)
	case errors.Is(err, provider.ErrUserNotFound):
		return fmt.Errorf("no user %q, or it is disabled", user)
	case errors.Is(err, provider.ErrIdentityNotLinked):
		return fmt.Errorf("user %q has no link at %q", user, upstream)
	case errors.Is(err, provider.ErrIdentityAlreadyLinked):
		return fmt.Errorf("that subject at %q is linked to another user", upstream)
	}
	return err
}

func (a *app) identitiesCommand() *cobra.Command {
	cmd := &cobra.Command{Use: "identities", Short: "Linked identities (a user's account at a partner's identity provider)"}
	var user, upstream, subject, email string
	link := &cobra.Command{
		Use: "link", Short: "Link --user to --subject at --provider; prints the link as JSON", Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if user == "" || upstream == "" || subject == "" {
				return errors.New("--user, --provider and --subject are required")
			}
			p, _, err := a.openPlugin(cmd.Context())
			if err != nil {
				return err
			}
			defer p.Close()
			li, err := p.Provider.LinkIdentity(cmd.Context(), provider.LinkRequest{UserID: user, Upstream: upstream, Subject: subject, Email: email, By: provider.LinkByCLI})
			if err != nil {
				return linkError(err, user, upstream)
			}
			return a.printJSON(toLinkedIdentityJSON(li))
		},
	}
	link.Flags().StringVar(&user, "user", "", "the user's id")
	link.Flags().StringVar(&upstream, "provider", "", "the identity provider's name")
	link.Flags().StringVar(&subject, "subject", "", "the user's subject at the provider")
	link.Flags().StringVar(&email, "email", "", "the email the provider knows (informational)")
	list := &cobra.Command{
		Use: "list", Short: "List a user's linked identities as JSON", Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if user == "" {
				return errors.New("--user is required")
			}
			p, _, err := a.openPlugin(cmd.Context())
			if err != nil {
				return err
			}
			defer p.Close()
			lis, err := p.Provider.LinkedIdentities(cmd.Context(), user)
			if err != nil {
				return err
			}
			out := make([]linkedIdentityJSON, 0, len(lis))
			for i := range lis {
				out = append(out, toLinkedIdentityJSON(&lis[i]))
			}
			return a.printJSON(out)
		},
	}
	list.Flags().StringVar(&user, "user", "", "the user's id")
	unlink := &cobra.Command{
		Use: "unlink", Short: "Remove --user's link at --provider", Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if user == "" || upstream == "" {
				return errors.New("--user and --provider are required")
			}
			p, _, err := a.openPlugin(cmd.Context())
			if err != nil {
				return err
			}
			defer p.Close()
			if err := p.Provider.UnlinkIdentity(cmd.Context(), provider.LinkRequest{UserID: user, Upstream: upstream, By: provider.LinkByCLI}); err != nil {
				return linkError(err, user, upstream)
			}
			fmt.Fprintf(a.out, "unlinked %s from %s\n", user, upstream)
			return nil
		},
	}
	unlink.Flags().StringVar(&user, "user", "", "the user's id")
	unlink.Flags().StringVar(&upstream, "provider", "", "the identity provider's name")
	cmd.AddCommand(link, list, unlink)
	return cmd
}
