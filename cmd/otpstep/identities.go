package main

import (
	"errors"
	"fmt"

	"github.com/spf13/cobra"

	"github.com/otpstep/otpstep/storage"
)

func (a *app) identitiesCommand() *cobra.Command {
	cmd := &cobra.Command{Use: "identities", Short: "Linked identities (a user's account at a partner's identity provider)"}
	var user, provider, subject, email string
	link := &cobra.Command{
		Use: "link", Short: "Link --user to --subject at --provider; prints the link as JSON", Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if user == "" || provider == "" || subject == "" {
				return errors.New("--user, --provider and --subject are required")
			}
			p, _, err := a.openPlugin(cmd.Context())
			if err != nil {
				return err
			}
			defer p.Close()
			if _, err := p.Store().GetUser(cmd.Context(), user); errors.Is(err, storage.ErrNotFound) {
				return fmt.Errorf("no user %q", user)
			} else if err != nil {
				return err
			}
			li := &storage.LinkedIdentity{UserID: user, Provider: provider, Subject: subject, Email: email}
			if err := p.Store().UpsertLinkedIdentity(cmd.Context(), li); errors.Is(err, storage.ErrAlreadyExists) {
				return fmt.Errorf("subject %q at %q is linked to another user", subject, provider)
			} else if err != nil {
				return err
			}
			_ = p.Provider.Audit(cmd.Context(), storage.AuditEvent{Type: "identity.linked", UserID: user, Detail: map[string]any{"provider": provider, "subject": subject, "by": "cli"}})
			return a.printJSON(li)
		},
	}
	link.Flags().StringVar(&user, "user", "", "the user's id")
	link.Flags().StringVar(&provider, "provider", "", "the identity provider's name")
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
			lis, err := p.Store().ListLinkedIdentities(cmd.Context(), user)
			if err != nil {
				return err
			}
			if lis == nil {
				lis = []storage.LinkedIdentity{}
			}
			return a.printJSON(lis)
		},
	}
	list.Flags().StringVar(&user, "user", "", "the user's id")
	unlink := &cobra.Command{
		Use: "unlink", Short: "Remove --user's link at --provider", Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if user == "" || provider == "" {
				return errors.New("--user and --provider are required")
			}
			p, _, err := a.openPlugin(cmd.Context())
			if err != nil {
				return err
			}
			defer p.Close()
			if err := p.Store().DeleteLinkedIdentity(cmd.Context(), user, provider); errors.Is(err, storage.ErrNotFound) {
				return fmt.Errorf("user %q has no link at %q", user, provider)
			} else if err != nil {
				return err
			}
			_ = p.Provider.Audit(cmd.Context(), storage.AuditEvent{Type: "identity.unlinked", UserID: user, Detail: map[string]any{"provider": provider, "by": "cli"}})
			fmt.Fprintf(a.out, "unlinked %s from %s\n", user, provider)
			return nil
		},
	}
	unlink.Flags().StringVar(&user, "user", "", "the user's id")
	unlink.Flags().StringVar(&provider, "provider", "", "the identity provider's name")
	cmd.AddCommand(link, list, unlink)
	return cmd
}
