package storagetest

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/otpstep/otpstep/storage"
)

func signingKeyTests() []conformanceTest {
	addKeys := func(t *testing.T, s *storage.Store, clk *clock) {
		t.Helper()
		for _, kid := range []string{"k1", "k2", "k3"} {
			require.NoError(t, s.AddSigningKey(t.Context(), &storage.SigningKey{
				KID: kid, Algorithm: "ES256",
				PublicJWK: []byte(`{"kty":"EC","kid":"` + kid + `"}`),
				SealedJWK: []byte{0x00, 0xff, 0x10, byte(len(kid))},
			}))
			clk.Add(time.Second)
		}
	}
	kids := func(keys []storage.SigningKey) []string {
		var out []string
		for _, k := range keys {
			out = append(out, k.KID)
		}
		return out
	}
	return []conformanceTest{
		{"TestSigningKeys_ListNewestFirst", func(t *testing.T, s *storage.Store, clk *clock) {
			start := clk.Now()
			addKeys(t, s, clk)
			keys, err := s.ListSigningKeys(t.Context())
			require.NoError(t, err)
			assert.Equal(t, []string{"k3", "k2", "k1"}, kids(keys))
			assert.Equal(t, storage.SigningKey{
				KID: "k1", Algorithm: "ES256", PublicJWK: []byte(`{"kty":"EC","kid":"k1"}`),
				SealedJWK: []byte{0x00, 0xff, 0x10, 2}, CreatedAt: start,
			}, keys[2])
		}},
		{"TestSigningKeys_DuplicateKIDIsAlreadyExists", func(t *testing.T, s *storage.Store, clk *clock) {
			addKeys(t, s, clk)
			err := s.AddSigningKey(t.Context(), &storage.SigningKey{KID: "k1", Algorithm: "RS256", PublicJWK: []byte("{}"), SealedJWK: []byte{1}})
			assert.ErrorIs(t, err, storage.ErrAlreadyExists)
		}},
		{"TestSigningKeys_RetireAllButOneKeepsEarlierRetirements", func(t *testing.T, s *storage.Store, clk *clock) {
			addKeys(t, s, clk)
			r1, p1 := clk.Now(), clk.Now().Add(24*time.Hour)
			require.NoError(t, s.RetireSigningKeys(t.Context(), "", "k3", r1, p1))
			clk.Add(time.Hour)
			require.NoError(t, s.RetireSigningKeys(t.Context(), "", "k3", clk.Now(), clk.Now().Add(time.Hour)))

			keys, err := s.ListSigningKeys(t.Context())
			require.NoError(t, err)
			require.Equal(t, []string{"k3", "k2", "k1"}, kids(keys))
			assert.Nil(t, keys[0].RetiredAt)
			assert.Nil(t, keys[0].PublishUntil)
			for _, k := range keys[1:] {
				require.NotNil(t, k.RetiredAt, k.KID)
				require.NotNil(t, k.PublishUntil, k.KID)
				assert.Equal(t, r1, *k.RetiredAt, k.KID)
				assert.Equal(t, p1, *k.PublishUntil, k.KID)
			}
		}},
		{"TestSigningKeys_RetireOneAlgorithmKeepsTheOthers", func(t *testing.T, s *storage.Store, clk *clock) {
			addKeys(t, s, clk) // k1..k3, ES256
			require.NoError(t, s.AddSigningKey(t.Context(), &storage.SigningKey{KID: "r1", Algorithm: "RS256",
				PublicJWK: []byte(`{"kty":"RSA","kid":"r1"}`), SealedJWK: []byte{1}}))
			require.NoError(t, s.RetireSigningKeys(t.Context(), "ES256", "k3", clk.Now(), clk.Now().Add(time.Hour)))
			keys, err := s.ListSigningKeys(t.Context())
			require.NoError(t, err)
			retired := map[string]bool{}
			for _, k := range keys {
				retired[k.KID] = k.RetiredAt != nil
			}
			assert.Equal(t, map[string]bool{"k1": true, "k2": true, "k3": false, "r1": false}, retired)
		}},
		{"TestSigningKeys_DeleteUnpublished", func(t *testing.T, s *storage.Store, clk *clock) {
			addKeys(t, s, clk)
			publishUntil := clk.Now().Add(24 * time.Hour)
			require.NoError(t, s.RetireSigningKeys(t.Context(), "", "k3", clk.Now(), publishUntil))

			require.NoError(t, s.DeleteUnpublishedSigningKeys(t.Context(), publishUntil))
			keys, err := s.ListSigningKeys(t.Context())
			require.NoError(t, err)
			assert.Len(t, keys, 3, "publish_until is not before now yet")

			require.NoError(t, s.DeleteUnpublishedSigningKeys(t.Context(), publishUntil.Add(time.Microsecond)))
			keys, err = s.ListSigningKeys(t.Context())
			require.NoError(t, err)
			assert.Equal(t, []string{"k3"}, kids(keys))
		}},
	}
}

func auditTests() []conformanceTest {
	return []conformanceTest{
		{"TestAudit_AddAndListNewestFirstPerUser", func(t *testing.T, s *storage.Store, clk *clock) {
			ctx := t.Context()
			first := &storage.AuditEvent{Type: "login.failed", UserID: "u1", IP: "192.0.2.1"}
			require.NoError(t, s.AddAuditEvent(ctx, first))
			assert.Equal(t, clk.Now(), first.At)
			assert.Positive(t, first.ID)

			clk.Add(200 * time.Microsecond) // crosses a second boundary
			second := &storage.AuditEvent{Type: "login.passed", UserID: "u1", ClientID: "rp", SessionID: "sid-1",
				IP: "2001:db8::1", Detail: map[string]any{"amr": []any{"pwd", "otp"}, "acr": "otp"}}
			require.NoError(t, s.AddAuditEvent(ctx, second))
			other := &storage.AuditEvent{Type: "session.created", UserID: "u2", At: clk.Now().Add(time.Second)}
			require.NoError(t, s.AddAuditEvent(ctx, other))
			// Given explicitly, older than everything: sorted by At, not by insertion.
			old := &storage.AuditEvent{Type: "login.failed", UserID: "u1", At: clk.Now().Add(-time.Hour)}
			require.NoError(t, s.AddAuditEvent(ctx, old))

			events, err := s.ListAuditEvents(ctx, "u1", 10)
			require.NoError(t, err)
			require.Len(t, events, 3)
			assert.Equal(t, *second, events[0])
			assert.Equal(t, *first, events[1])
			assert.Equal(t, *old, events[2])

			events, err = s.ListAuditEvents(ctx, "u1", 2)
			require.NoError(t, err)
			require.Len(t, events, 2)
			assert.Equal(t, second.ID, events[0].ID)

			events, err = s.ListAuditEvents(ctx, "", 0)
			require.NoError(t, err)
			require.Len(t, events, 4)
			assert.Equal(t, other.ID, events[0].ID)
		}},
		{"TestAudit_AddSeveralInOneStatement", func(t *testing.T, s *storage.Store, clk *clock) {
			ctx := t.Context()
			created := &storage.AuditEvent{Type: "session.created", UserID: "u1", ClientID: "rp", SessionID: "sid-1", IP: "192.0.2.1"}
			issued := &storage.AuditEvent{Type: "otp.issued", UserID: "u1", ClientID: "rp", SessionID: "sid-1",
				At: clk.Now().Add(time.Second), Detail: map[string]any{"in_response": true, "kind": "login"}}
			require.NoError(t, s.AddAuditEvents(ctx, created, issued))
			assert.Equal(t, clk.Now(), created.At, "a zero At is set from the clock")
			require.NoError(t, s.AddAuditEvents(ctx))

			events, err := s.ListAuditEvents(ctx, "u1", 0)
			require.NoError(t, err)
			require.Len(t, events, 2)
			for i, want := range []*storage.AuditEvent{issued, created} {
				assert.Positive(t, events[i].ID)
				got := events[i]
				got.ID = 0
				assert.Equal(t, *want, got)
			}

			// In a transaction that rolls back, none of them stays.
			err = s.InTx(ctx, func(ctx context.Context) error {
				require.NoError(t, s.AddAuditEvents(ctx, &storage.AuditEvent{Type: "a", UserID: "u2"}, &storage.AuditEvent{Type: "b", UserID: "u2"}))
				return errors.New("rolled back")
			})
			require.Error(t, err)
			events, err = s.ListAuditEvents(ctx, "u2", 0)
			require.NoError(t, err)
			assert.Empty(t, events)
		}},
	}
}
