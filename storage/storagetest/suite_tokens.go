package storagetest

import (
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/ory/fosite"
	"github.com/ory/fosite/handler/openid"
	"github.com/ory/fosite/token/jwt"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/otpstep/otpstep/storage"
)

// racers is how many goroutines race for one code or refresh token.
const racers = 8

// race runs fn in racers goroutines released together and returns their errors.
func race(fn func(i int) error) []error {
	var (
		wg    sync.WaitGroup
		start = make(chan struct{})
		errs  = make([]error, racers)
	)
	for i := range racers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			errs[i] = fn(i)
		}()
	}
	close(start)
	wg.Wait()
	return errs
}

// redeemInTx does what fosite's token endpoint does with a code, in one
// transaction: invalidate it, then store the new tokens.
func redeemInTx(t *testing.T, s *storage.Store, code string, r *fosite.Request, i int) error {
	ctx, err := s.BeginTX(t.Context())
	if err != nil {
		return err
	}
	if err := s.InvalidateAuthorizeCodeSession(ctx, code); err != nil {
		_ = s.Rollback(ctx)
		return err
	}
	at := fmt.Sprintf("at-%d", i)
	if err := s.CreateAccessTokenSession(ctx, at, r); err != nil {
		_ = s.Rollback(ctx)
		return err
	}
	if err := s.CreateRefreshTokenSession(ctx, fmt.Sprintf("rt-%d", i), at, r); err != nil {
		_ = s.Rollback(ctx)
		return err
	}
	return s.Commit(ctx)
}

// refreshInTx does what fosite's refresh grant does, in one transaction:
// rotate the old refresh token, then store the new pair.
func refreshInTx(t *testing.T, s *storage.Store, oldRT string, r *fosite.Request, i int) error {
	ctx, err := s.BeginTX(t.Context())
	if err != nil {
		return err
	}
	if err := s.RotateRefreshToken(ctx, r.ID, oldRT); err != nil {
		_ = s.Rollback(ctx)
		return err
	}
	at := fmt.Sprintf("at-new-%d", i)
	if err := s.CreateAccessTokenSession(ctx, at, r); err != nil {
		_ = s.Rollback(ctx)
		return err
	}
	if err := s.CreateRefreshTokenSession(ctx, fmt.Sprintf("rt-new-%d", i), at, r); err != nil {
		_ = s.Rollback(ctx)
		return err
	}
	return s.Commit(ctx)
}

// oneWinner asserts exactly one nil error; every other must match loser.
func oneWinner(t *testing.T, errs []error, loser error) {
	t.Helper()
	wins := 0
	for _, err := range errs {
		switch {
		case err == nil:
			wins++
		case !errors.Is(err, loser):
			t.Errorf("loser failed with %v, want %v", err, loser)
		}
	}
	assert.Equal(t, 1, wins, "exactly one racer must win: %v", errs)
}

func authorizeCodeTests() []conformanceTest {
	return []conformanceTest{
		{"TestAuthorizeCode_CreateGetRoundTrip", func(t *testing.T, s *storage.Store, clk *clock) {
			want := newTestRequest(clk, newTestClient(t, s, "rp"), "alice")
			require.NoError(t, s.CreateAuthorizeCodeSession(t.Context(), "code-sig", want))
			got, err := s.GetAuthorizeCodeSession(t.Context(), "code-sig", openid.NewDefaultSession())
			require.NoError(t, err)
			requireRequest(t, want, got, true)
		}},
		{"TestAuthorizeCode_NilSessionStillReturnsRequest", func(t *testing.T, s *storage.Store, clk *clock) {
			want := newTestRequest(clk, newTestClient(t, s, "rp"), "alice")
			require.NoError(t, s.CreateAuthorizeCodeSession(t.Context(), "code-sig", want))
			got, err := s.GetAuthorizeCodeSession(t.Context(), "code-sig", nil)
			require.NoError(t, err)
			requireRequest(t, want, got, false)
		}},
		{"TestAuthorizeCode_DuplicateSignatureIsAlreadyExists", func(t *testing.T, s *storage.Store, clk *clock) {
			r := newTestRequest(clk, newTestClient(t, s, "rp"), "alice")
			require.NoError(t, s.CreateAuthorizeCodeSession(t.Context(), "code-sig", r))
			assert.ErrorIs(t, s.CreateAuthorizeCodeSession(t.Context(), "code-sig", r), storage.ErrAlreadyExists)
		}},
		{"TestAuthorizeCode_GetMissingIsNotFound", func(t *testing.T, s *storage.Store, _ *clock) {
			got, err := s.GetAuthorizeCodeSession(t.Context(), "nope", openid.NewDefaultSession())
			requireNotFound(t, err)
			assert.Nil(t, got)
		}},
		{"TestAuthorizeCode_ExpiredIsStillReturned", func(t *testing.T, s *storage.Store, clk *clock) {
			want := newTestRequest(clk, newTestClient(t, s, "rp"), "alice")
			require.NoError(t, s.CreateAuthorizeCodeSession(t.Context(), "code-sig", want))
			clk.Add(24 * time.Hour)
			got, err := s.GetAuthorizeCodeSession(t.Context(), "code-sig", openid.NewDefaultSession())
			require.NoError(t, err, "fosite checks expiry itself, on the session")
			requireRequest(t, want, got, true)
		}},
		{"TestAuthorizeCode_InvalidatedReturnsRequestAndErrInvalidatedAuthorizeCode", func(t *testing.T, s *storage.Store, clk *clock) {
			want := newTestRequest(clk, newTestClient(t, s, "rp"), "alice")
			require.NoError(t, s.CreateAuthorizeCodeSession(t.Context(), "code-sig", want))
			require.NoError(t, s.InvalidateAuthorizeCodeSession(t.Context(), "code-sig"))

			got, err := s.GetAuthorizeCodeSession(t.Context(), "code-sig", openid.NewDefaultSession())
			require.ErrorIs(t, err, fosite.ErrInvalidatedAuthorizeCode)
			requireRequest(t, want, got, true)

			err = s.InvalidateAuthorizeCodeSession(t.Context(), "code-sig")
			assert.ErrorIs(t, err, fosite.ErrInvalidatedAuthorizeCode)
		}},
		{"TestAuthorizeCode_InvalidateMissingIsNotFound", func(t *testing.T, s *storage.Store, _ *clock) {
			requireNotFound(t, s.InvalidateAuthorizeCodeSession(t.Context(), "nope"))
		}},
		{"TestAuthorizeCode_DoubleRedemptionOneWins", func(t *testing.T, s *storage.Store, clk *clock) {
			r := newTestRequest(clk, newTestClient(t, s, "rp"), "alice")
			require.NoError(t, s.CreateAuthorizeCodeSession(t.Context(), "code-sig", r))
			errs := race(func(i int) error { return redeemInTx(t, s, "code-sig", r, i) })
			oneWinner(t, errs, fosite.ErrInvalidatedAuthorizeCode)

			// Only the winner's tokens exist.
			found := 0
			for i := range racers {
				if _, err := s.GetAccessTokenSession(t.Context(), fmt.Sprintf("at-%d", i), nil); err == nil {
					found++
				} else {
					requireNotFound(t, err)
				}
			}
			assert.Equal(t, 1, found)
		}},
	}
}

func accessTokenTests() []conformanceTest {
	return []conformanceTest{
		{"TestAccessToken_CreateGetDelete", func(t *testing.T, s *storage.Store, clk *clock) {
			ctx := t.Context()
			want := newTestRequest(clk, newTestClient(t, s, "rp"), "alice")
			require.NoError(t, s.CreateAccessTokenSession(ctx, "at-sig", want))
			got, err := s.GetAccessTokenSession(ctx, "at-sig", openid.NewDefaultSession())
			require.NoError(t, err)
			requireRequest(t, want, got, true)

			got, err = s.GetAccessTokenSession(ctx, "at-sig", nil)
			require.NoError(t, err)
			requireRequest(t, want, got, false)

			require.NoError(t, s.DeleteAccessTokenSession(ctx, "at-sig"))
			_, err = s.GetAccessTokenSession(ctx, "at-sig", openid.NewDefaultSession())
			requireNotFound(t, err)
			assert.NoError(t, s.DeleteAccessTokenSession(ctx, "at-sig"), "deleting twice is not an error")
		}},
		{"TestAccessToken_SessionDecodesIntoAnEmptySession", func(t *testing.T, s *storage.Store, clk *clock) {
			// What fosite's introspection hands in: an empty session, which
			// storage decodes without reflection when it can (see decodeSession).
			ctx := t.Context()
			client := newTestClient(t, s, "rp")
			plain, odd := newTestRequest(clk, client, "alice"), newTestRequest(clk, client, "bob")
			odd.Session.(*openid.DefaultSession).Username = "Bob \"the\" Büilder\t<b@example.com>"
			odd.Session.(*openid.DefaultSession).Claims.Extra["n"] = 1.5
			for sig, want := range map[string]*fosite.Request{"at-plain": plain, "at-odd": odd} {
				require.NoError(t, s.CreateAccessTokenSession(ctx, sig, want))
				got, err := s.GetAccessTokenSession(ctx, sig, &openid.DefaultSession{Claims: &jwt.IDTokenClaims{}, Headers: &jwt.Headers{}})
				require.NoError(t, err)
				requireRequest(t, want, got, true)
			}
		}},
		{"TestAccessToken_ExpiredIsStillReturned", func(t *testing.T, s *storage.Store, clk *clock) {
			want := newTestRequest(clk, newTestClient(t, s, "rp"), "alice")
			require.NoError(t, s.CreateAccessTokenSession(t.Context(), "at-sig", want))
			clk.Add(48 * time.Hour)
			got, err := s.GetAccessTokenSession(t.Context(), "at-sig", openid.NewDefaultSession())
			require.NoError(t, err)
			requireRequest(t, want, got, true)
		}},
		{"TestAccessToken_RevokeDeletesEveryTokenOfTheRequest", func(t *testing.T, s *storage.Store, clk *clock) {
			ctx := t.Context()
			client := newTestClient(t, s, "rp")
			r, other := newTestRequest(clk, client, "alice"), newTestRequest(clk, client, "alice")
			require.NoError(t, s.CreateAccessTokenSession(ctx, "at-1", r))
			require.NoError(t, s.CreateAccessTokenSession(ctx, "at-2", r))
			require.NoError(t, s.CreateAccessTokenSession(ctx, "at-other", other))

			require.NoError(t, s.RevokeAccessToken(ctx, r.ID))
			for _, sig := range []string{"at-1", "at-2"} {
				_, err := s.GetAccessTokenSession(ctx, sig, openid.NewDefaultSession())
				requireNotFound(t, err)
			}
			_, err := s.GetAccessTokenSession(ctx, "at-other", openid.NewDefaultSession())
			assert.NoError(t, err)
			assert.NoError(t, s.RevokeAccessToken(ctx, "unknown-request"))
		}},
	}
}

func refreshTokenTests() []conformanceTest {
	return []conformanceTest{
		{"TestRefreshToken_CreateGetDelete", func(t *testing.T, s *storage.Store, clk *clock) {
			ctx := t.Context()
			want := newTestRequest(clk, newTestClient(t, s, "rp"), "alice")
			require.NoError(t, s.CreateRefreshTokenSession(ctx, "rt-sig", "at-sig", want))
			got, err := s.GetRefreshTokenSession(ctx, "rt-sig", openid.NewDefaultSession())
			require.NoError(t, err)
			requireRequest(t, want, got, true)

			require.NoError(t, s.DeleteRefreshTokenSession(ctx, "rt-sig"))
			_, err = s.GetRefreshTokenSession(ctx, "rt-sig", openid.NewDefaultSession())
			requireNotFound(t, err)
		}},
		{"TestRefreshToken_InactiveReturnsRequestAndErrInactiveToken", func(t *testing.T, s *storage.Store, clk *clock) {
			ctx := t.Context()
			want := newTestRequest(clk, newTestClient(t, s, "rp"), "alice")
			require.NoError(t, s.CreateRefreshTokenSession(ctx, "rt-sig", "at-sig", want))
			require.NoError(t, s.RevokeRefreshToken(ctx, want.ID))

			got, err := s.GetRefreshTokenSession(ctx, "rt-sig", openid.NewDefaultSession())
			require.ErrorIs(t, err, fosite.ErrInactiveToken)
			requireRequest(t, want, got, true)
		}},
		{"TestRefreshToken_RevokeDeactivatesEveryTokenOfTheRequest", func(t *testing.T, s *storage.Store, clk *clock) {
			ctx := t.Context()
			client := newTestClient(t, s, "rp")
			r, other := newTestRequest(clk, client, "alice"), newTestRequest(clk, client, "alice")
			require.NoError(t, s.CreateRefreshTokenSession(ctx, "rt-1", "at-1", r))
			require.NoError(t, s.CreateRefreshTokenSession(ctx, "rt-2", "at-2", r))
			require.NoError(t, s.CreateRefreshTokenSession(ctx, "rt-other", "at-other", other))

			require.NoError(t, s.RevokeRefreshToken(ctx, r.ID))
			for _, sig := range []string{"rt-1", "rt-2"} {
				_, err := s.GetRefreshTokenSession(ctx, sig, openid.NewDefaultSession())
				assert.ErrorIs(t, err, fosite.ErrInactiveToken)
			}
			_, err := s.GetRefreshTokenSession(ctx, "rt-other", openid.NewDefaultSession())
			assert.NoError(t, err)
			assert.NoError(t, s.RevokeRefreshToken(ctx, "unknown-request"))
		}},
		{"TestRefreshToken_RotateDeactivatesItAndDeletesAccessTokens", func(t *testing.T, s *storage.Store, clk *clock) {
			ctx := t.Context()
			client := newTestClient(t, s, "rp")
			r, other := newTestRequest(clk, client, "alice"), newTestRequest(clk, client, "alice")
			require.NoError(t, s.CreateAccessTokenSession(ctx, "at-1", r))
			require.NoError(t, s.CreateRefreshTokenSession(ctx, "rt-1", "at-1", r))
			require.NoError(t, s.CreateAccessTokenSession(ctx, "at-other", other))

			require.NoError(t, s.RotateRefreshToken(ctx, r.ID, "rt-1"))
			_, err := s.GetRefreshTokenSession(ctx, "rt-1", openid.NewDefaultSession())
			assert.ErrorIs(t, err, fosite.ErrInactiveToken)
			_, err = s.GetAccessTokenSession(ctx, "at-1", openid.NewDefaultSession())
			requireNotFound(t, err)
			_, err = s.GetAccessTokenSession(ctx, "at-other", openid.NewDefaultSession())
			assert.NoError(t, err)

			assert.ErrorIs(t, s.RotateRefreshToken(ctx, r.ID, "rt-1"), fosite.ErrInactiveToken, "a token rotates once")
			requireNotFound(t, s.RotateRefreshToken(ctx, r.ID, "no-such-token"))
		}},
		{"TestRefreshToken_ConcurrentRotationOneWins", func(t *testing.T, s *storage.Store, clk *clock) {
			r := newTestRequest(clk, newTestClient(t, s, "rp"), "alice")
			require.NoError(t, s.CreateAccessTokenSession(t.Context(), "at-0", r))
			require.NoError(t, s.CreateRefreshTokenSession(t.Context(), "rt-0", "at-0", r))
			errs := race(func(i int) error { return refreshInTx(t, s, "rt-0", r, i) })
			oneWinner(t, errs, fosite.ErrInactiveToken)
		}},
	}
}

func pkceTests() []conformanceTest {
	return []conformanceTest{
		{"TestPKCE_CreateGetDelete", func(t *testing.T, s *storage.Store, clk *clock) {
			ctx := t.Context()
			want := newTestRequest(clk, newTestClient(t, s, "rp"), "alice")
			require.NoError(t, s.CreatePKCERequestSession(ctx, "code-sig", want))
			got, err := s.GetPKCERequestSession(ctx, "code-sig", openid.NewDefaultSession())
			require.NoError(t, err)
			requireRequest(t, want, got, true)
			assert.Equal(t, "S256", got.GetRequestForm().Get("code_challenge_method"))

			require.NoError(t, s.DeletePKCERequestSession(ctx, "code-sig"))
			_, err = s.GetPKCERequestSession(ctx, "code-sig", openid.NewDefaultSession())
			requireNotFound(t, err)
		}},
	}
}

func openIDConnectTests() []conformanceTest {
	return []conformanceTest{
		{"TestOpenIDConnectSession_GetHydratesTheRequesterSession", func(t *testing.T, s *storage.Store, clk *clock) {
			ctx := t.Context()
			want := newTestRequest(clk, newTestClient(t, s, "rp"), "alice")
			const rawCode = "ory_ac_raw-code.signature"
			require.NoError(t, s.CreateOpenIDConnectSession(ctx, rawCode, want))

			ar := fosite.NewAccessRequest(openid.NewDefaultSession())
			got, err := s.GetOpenIDConnectSession(ctx, rawCode, ar)
			require.NoError(t, err)
			requireRequest(t, want, got, true)
			assert.Same(t, ar.GetSession(), got.GetSession(), "the stored session is decoded into the requester's")

			require.NoError(t, s.DeleteOpenIDConnectSession(ctx, rawCode))
			_, err = s.GetOpenIDConnectSession(ctx, rawCode, fosite.NewAccessRequest(openid.NewDefaultSession()))
			assert.ErrorIs(t, err, openid.ErrNoSessionFound)
			requireNotFound(t, err)
		}},
	}
}
