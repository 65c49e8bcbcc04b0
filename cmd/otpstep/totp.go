package main

import (
	"errors"
	"fmt"
	"time"

	"github.com/spf13/cobra"

	"github.com/otpstep/otpstep/provider"
)

// totpJSON is a user's TOTP as the CLI prints it: never its secret.
type totpJSON struct {
	ID          string     `json:"id"`
	UserID      string     `json:"user_id"`
	Kind        string     `json:"kind"`
	DeviceID    string     `json:"device_id,omitempty"`
	Period      int        `json:"period"`
	Digits      int        `json:"digits"`
	Algorithm   string     `json:"algorithm"`
	Confirmed   bool       `json:"confirmed"`
	CreatedAt   time.Time  `json:"created_at"`
	ConfirmedAt *time.Time `json:"confirmed_at,omitempty"`
	LastUsedAt  *time.Time `json:"last_used_at,omitempty"`
}

func toTOTPJSON(userID string, t provider.TOTPInfo) totpJSON {
	out := totpJSON{ID: t.ID, UserID: userID, Kind: t.Kind, DeviceID: t.DeviceID, Period: t.Period, Digits: t.Digits,
		Algorithm: t.Algorithm, Confirmed: t.Confirmed, CreatedAt: t.CreatedAt.UTC()}
	if !t.ConfirmedAt.IsZero() {
		at := t.ConfirmedAt.UTC()
		out.ConfirmedAt = &at
	}
	if !t.LastUsedAt.IsZero() {
		at := t.LastUsedAt.UTC()
		out.LastUsedAt = &at
	}
	return out
}

// totpCommand is for support staff: a user's TOTPs (device TOTPs from
// PACE's CreateTOTP, authenticator apps), listed without secrets, and
// removed when a device or phone is lost.
func (a *app) totpCommand() *cobra.Command {
	cmd := &cobra.Command{Use: "totp", Short: "A user's TOTPs (devices and authenticator apps)"}
	var user, id string
	list := &cobra.Command{
		Use: "list", Short: "List --user's TOTPs as JSON (no secrets)", Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if user == "" {
				return errors.New("--user is required")
			}
			p, _, err := a.openPlugin(cmd.Context())
			if err != nil {
				return err
			}
			defer p.Close()
			totps, err := p.Provider.ListTOTPs(cmd.Context(), user)
			if err != nil {
				return err
			}
			out := make([]totpJSON, 0, len(totps))
			for _, t := range totps {
				out = append(out, toTOTPJSON(user, t))
			}
			return a.printJSON(out)
		},
	}
	list.Flags().StringVar(&user, "user", "", "the user's id")
	del := &cobra.Command{
		Use: "delete", Short: "Remove --user's TOTP --id (audited); its codes no longer verify", Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if user == "" || id == "" {
				return errors.New("--user and --id are required")
			}
			p, _, err := a.openPlugin(cmd.Context())
			if err != nil {
				return err
			}
			defer p.Close()
			err = p.Provider.DeleteTOTP(cmd.Context(), user, id)
			if errors.Is(err, provider.ErrTOTPNotFound) {
				return fmt.Errorf("user %q has no TOTP %q (see: otpstep totp list --user %s)", user, id, user)
			}
			if err != nil {
				return err
			}
			fmt.Fprintf(a.out, "deleted TOTP %s of %s\n", id, user)
			return nil
		},
	}
	del.Flags().StringVar(&user, "user", "", "the user's id")
	del.Flags().StringVar(&id, "id", "", "the TOTP's id (totp list)")
	cmd.AddCommand(list, del)
	return cmd
}
