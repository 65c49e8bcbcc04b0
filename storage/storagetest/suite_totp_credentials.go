package storagetest

import (
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/otpstep/otpstep/storage"
)

// totpCredentialTests: device and authenticator TOTPs (issue 14).
func totpCredentialTests() []conformanceTest {
	device := func(userID, deviceID string, sealed string) *storage.TOTPCredential {
		return &storage.TOTPCredential{UserID: userID, Kind: storage.TOTPKindDevice, DeviceID: deviceID,
			Sealed: []byte(sealed), Period: 30, Digits: 6, Algorithm: "SHA1"}
	}
	return []conformanceTest{
		{"TestTOTPCredentials_CreateGetListDelete", func(t *testing.T, s *storage.Store, clk *clock) {
			ctx := t.Context()
			u, other := newTestUser(t, s), newTestUser(t, s)
			d := device(u.ID, uuid.NewString(), "sealed-1")
			d.ConfirmedAt = clk.Now()
			require.NoError(t, s.CreateTOTPCredential(ctx, d))
			require.NotEmpty(t, d.ID)
			clk.Add(time.Second)
			a := &storage.TOTPCredential{UserID: u.ID, Kind: storage.TOTPKindAuthenticator, DeviceID: "ignored",
				Sealed: []byte{0, 1, 2, 255}, Period: 60, Digits: 8, Algorithm: "SHA512"}
			require.NoError(t, s.CreateTOTPCredential(ctx, a))

			got, err := s.GetTOTPCredential(ctx, u.ID, a.ID)
			require.NoError(t, err)
			assert.Equal(t, a, got)
			assert.Equal(t, "", got.DeviceID)
			assert.True(t, got.ConfirmedAt.IsZero())
			assert.Nil(t, got.LastUsedStep)
			assert.Equal(t, []byte{0, 1, 2, 255}, got.Sealed)
			got, err = s.GetTOTPCredential(ctx, u.ID, d.ID)
			require.NoError(t, err)
			assert.Equal(t, d, got)

			all, err := s.ListTOTPCredentials(ctx, u.ID, "")
			require.NoError(t, err)
			require.Len(t, all, 2)
			assert.Equal(t, []string{d.ID, a.ID}, []string{all[0].ID, all[1].ID})
			devices, err := s.ListTOTPCredentials(ctx, u.ID, storage.TOTPKindDevice)
			require.NoError(t, err)
			require.Len(t, devices, 1)
			assert.Equal(t, d.ID, devices[0].ID)
			none, err := s.ListTOTPCredentials(ctx, other.ID, "")
			require.NoError(t, err)
			assert.Empty(t, none)

			// Another user's credential is not found, never deleted.
			_, err = s.GetTOTPCredential(ctx, other.ID, d.ID)
			requireNotFound(t, err)
			requireNotFound(t, s.DeleteTOTPCredential(ctx, other.ID, d.ID))
			require.NoError(t, s.DeleteTOTPCredential(ctx, u.ID, d.ID))
			requireNotFound(t, s.DeleteTOTPCredential(ctx, u.ID, d.ID))
			_, err = s.GetTOTPCredential(ctx, u.ID, d.ID)
			requireNotFound(t, err)

			requireNotFound(t, s.CreateTOTPCredential(ctx, device("no-such-user", uuid.NewString(), "x")))
			require.Error(t, s.CreateTOTPCredential(ctx, &storage.TOTPCredential{UserID: u.ID, Kind: "sms", Sealed: []byte("x")}))
		}},
		{"TestTOTPCredentials_DeviceReplacedWhole", func(t *testing.T, s *storage.Store, clk *clock) {
			ctx := t.Context()
			u, other := newTestUser(t, s), newTestUser(t, s)
			deviceID := uuid.NewString()
			first := device(u.ID, deviceID, "first")
			require.NoError(t, s.CreateTOTPCredential(ctx, first))
			ok, err := s.UseTOTPStep(ctx, first.ID, 100)
			require.NoError(t, err)
			require.True(t, ok)
			// The same device id of another user is another credential.
			require.NoError(t, s.CreateTOTPCredential(ctx, device(other.ID, deviceID, "other")))

			clk.Add(time.Minute)
			second := device(u.ID, deviceID, "second")
			second.Algorithm, second.Digits = "SHA256", 8
			require.NoError(t, s.CreateTOTPCredential(ctx, second))
			list, err := s.ListTOTPCredentials(ctx, u.ID, storage.TOTPKindDevice)
			require.NoError(t, err)
			require.Len(t, list, 1)
			assert.Equal(t, *second, list[0])
			assert.Nil(t, list[0].LastUsedStep, "a replaced device starts with no used step")
			_, err = s.GetTOTPCredential(ctx, u.ID, first.ID)
			requireNotFound(t, err)
			theirs, err := s.ListTOTPCredentials(ctx, other.ID, "")
			require.NoError(t, err)
			require.Len(t, theirs, 1)
			assert.Equal(t, []byte("other"), theirs[0].Sealed)

			// Concurrent creations for one device leave exactly one.
			var wg sync.WaitGroup
			for i := range 8 {
				wg.Add(1)
				go func() {
					defer wg.Done()
					assert.NoError(t, s.CreateTOTPCredential(ctx, device(u.ID, deviceID, string(rune('a'+i)))))
				}()
			}
			wg.Wait()
			list, err = s.ListTOTPCredentials(ctx, u.ID, "")
			require.NoError(t, err)
			assert.Len(t, list, 1)
		}},
		{"TestTOTPCredentials_StepUsedOnceAndNeverAnEarlierOne", func(t *testing.T, s *storage.Store, _ *clock) {
			ctx := t.Context()
			u := newTestUser(t, s)
			d := device(u.ID, uuid.NewString(), "x")
			require.NoError(t, s.CreateTOTPCredential(ctx, d))
			// Of concurrent uses of one step, on any connection, one wins.
			var won atomic.Int32
			var wg sync.WaitGroup
			for range 10 {
				wg.Add(1)
				go func() {
					defer wg.Done()
					ok, err := s.UseTOTPStep(ctx, d.ID, 5000)
					assert.NoError(t, err)
					if ok {
						won.Add(1)
					}
				}()
			}
			wg.Wait()
			assert.Equal(t, int32(1), won.Load())
			for _, tc := range []struct {
				step int64
				want bool
			}{{5000, false}, {4999, false}, {5001, true}, {5001, false}, {5003, true}} {
				ok, err := s.UseTOTPStep(ctx, d.ID, tc.step)
				require.NoError(t, err)
				assert.Equal(t, tc.want, ok, "step %d", tc.step)
			}
			got, err := s.GetTOTPCredential(ctx, u.ID, d.ID)
			require.NoError(t, err)
			require.NotNil(t, got.LastUsedStep)
			assert.Equal(t, int64(5003), *got.LastUsedStep)
			ok, err := s.UseTOTPStep(ctx, "no-such-credential", 1)
			require.NoError(t, err)
			assert.False(t, ok)
		}},
		{"TestTOTPCredentials_AuthenticatorEnrollment", func(t *testing.T, s *storage.Store, clk *clock) {
			ctx := t.Context()
			u, other := newTestUser(t, s), newTestUser(t, s)
			pending := func() *storage.TOTPCredential {
				return &storage.TOTPCredential{UserID: u.ID, Kind: storage.TOTPKindAuthenticator, Sealed: []byte("s"), Period: 30, Digits: 6, Algorithm: "SHA1"}
			}
			first := pending()
			require.NoError(t, s.CreateTOTPCredential(ctx, first))
			requireNotFound(t, s.ConfirmTOTPCredential(ctx, other.ID, first.ID, 10))
			clk.Add(time.Second)
			require.NoError(t, s.ConfirmTOTPCredential(ctx, u.ID, first.ID, 10))
			got, err := s.GetTOTPCredential(ctx, u.ID, first.ID)
			require.NoError(t, err)
			assert.Equal(t, clk.Now().UTC().Truncate(time.Microsecond), got.ConfirmedAt)
			require.NotNil(t, got.LastUsedStep)
			assert.Equal(t, int64(10), *got.LastUsedStep)
			requireNotFound(t, s.ConfirmTOTPCredential(ctx, u.ID, first.ID, 11)) // confirmed once

			// An enrollment begun again replaces the unconfirmed one, never a
			// confirmed one.
			second, third := pending(), pending()
			require.NoError(t, s.CreateTOTPCredential(ctx, second))
			require.NoError(t, s.CreateTOTPCredential(ctx, third))
			list, err := s.ListTOTPCredentials(ctx, u.ID, storage.TOTPKindAuthenticator)
			require.NoError(t, err)
			require.Len(t, list, 2)
			assert.Equal(t, []string{first.ID, third.ID}, []string{list[0].ID, list[1].ID})
			requireNotFound(t, s.ConfirmTOTPCredential(ctx, u.ID, second.ID, 20))
			// A step used before confirmation (a refused try is no use; a
			// device's step is its own) does not block another credential.
			require.NoError(t, s.ConfirmTOTPCredential(ctx, u.ID, third.ID, 10))
		}},
	}
}
