package storagetest

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"

	"github.com/google/uuid"
	"github.com/ory/fosite"
	"github.com/ory/fosite/handler/openid"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/otpstep/otpstep/storage"
)

// grantSet is a code, an access token and a refresh token issued under one
// login session, stored as fosite stores them.
type grantSet struct {
	code, access, refresh string
	req                   *fosite.Request
}

func newGrantSet(t *testing.T, s *storage.Store, clk *clock, client *storage.Client, ls *storage.LoginSession) grantSet {
	t.Helper()
	ctx := t.Context()
	req := newTestRequest(clk, client, ls.UserID)
	req.Session.(*openid.DefaultSession).Claims.Extra["sid"] = ls.ID
	g := grantSet{code: "code-" + uuid.NewString(), access: "at-" + uuid.NewString(), refresh: "rt-" + uuid.NewString(), req: req}
	require.NoError(t, s.CreateAuthorizeCodeSession(ctx, g.code, req))
	require.NoError(t, s.CreateAccessTokenSession(ctx, g.access, req))
	require.NoError(t, s.CreateRefreshTokenSession(ctx, g.refresh, g.access, req))
	return g
}

// requireGrantsLive asserts every part of g reads as active.
func requireGrantsLive(t *testing.T, s *storage.Store, g grantSet) {
	t.Helper()
	ctx := t.Context()
	_, err := s.GetAuthorizeCodeSession(ctx, g.code, newEmptySession())
	require.NoError(t, err, "code")
	_, err = s.GetAccessTokenSession(ctx, g.access, newEmptySession())
	require.NoError(t, err, "access token")
	_, err = s.GetRefreshTokenSession(ctx, g.refresh, newEmptySession())
	require.NoError(t, err, "refresh token")
}

// requireGrantsRevoked asserts every part of g reads as fosite reads a
// revoked one: the code invalidated, the access token gone, the refresh
// token inactive.
func requireGrantsRevoked(t *testing.T, s *storage.Store, g grantSet) {
	t.Helper()
	ctx := t.Context()
	_, err := s.GetAuthorizeCodeSession(ctx, g.code, newEmptySession())
	require.ErrorIs(t, err, fosite.ErrInvalidatedAuthorizeCode, "code")
	_, err = s.GetAccessTokenSession(ctx, g.access, newEmptySession())
	requireNotFound(t, err)
	_, err = s.GetRefreshTokenSession(ctx, g.refresh, newEmptySession())
	require.ErrorIs(t, err, fosite.ErrInactiveToken, "refresh token")
}

func newEmptySession() *openid.DefaultSession { return openid.NewDefaultSession() }

func endsTests() []conformanceTest {
	return []conformanceTest{
		{"TestEnds_EndLoginSessionIsFinalAndRevokesItsGrants", func(t *testing.T, s *storage.Store, clk *clock) {
			ctx := t.Context()
			client := newTestClient(t, s, "rp-"+uuid.NewString())
			ended := newTestLoginSession(t, s, clk)
			other := &storage.LoginSession{UserID: ended.UserID, AMR: []string{"pwd"}, AuthTime: clk.Now(), ExpiresAt: ended.ExpiresAt}
			require.NoError(t, s.CreateLoginSession(ctx, other))
			gEnded, gOther := newGrantSet(t, s, clk, client, ended), newGrantSet(t, s, clk, client, other)
			newTestOTPChallenge(t, s, clk, "login", ended.UserID, ended.ID)
			newTestOTPChallenge(t, s, clk, "login", other.UserID, other.ID)

			require.NoError(t, s.EndLoginSession(ctx, ended.ID))

			// The session is gone for Get, Update, Pass and the key.
			_, err := s.GetLoginSession(ctx, ended.ID)
			requireNotFound(t, err)
			requireNotFound(t, s.UpdateLoginSession(ctx, ended))
			requireNotFound(t, s.PassLoginSession(ctx, ended.ID, ended.UserID, "otp"))
			requireNotFound(t, s.SetLoginSessionBrowserKey(ctx, ended.ID, []byte{1}))
			// Its id is never taken again.
			err = s.CreateLoginSession(ctx, &storage.LoginSession{ID: ended.ID, UserID: ended.UserID, AuthTime: clk.Now(), ExpiresAt: ended.ExpiresAt})
			require.ErrorIs(t, err, storage.ErrAlreadyExists)
			// Its challenge is burned, its grants revoked; the other session keeps both.
			requireNotLive(t, s, "login", ended.UserID, ended.ID)
			requireGrantsRevoked(t, s, gEnded)
			_, err = s.LiveOTPChallenge(ctx, "login", other.UserID, other.ID)
			require.NoError(t, err)
			requireGrantsLive(t, s, gOther)
			// Ending again, or an unknown session → ErrNotFound.
			requireNotFound(t, s.EndLoginSession(ctx, ended.ID))
			requireNotFound(t, s.EndLoginSession(ctx, uuid.NewString()))
		}},
		{"TestEnds_DisableUserEndsEverySessionAndRevokesEveryGrant", func(t *testing.T, s *storage.Store, clk *clock) {
			ctx := t.Context()
			client := newTestClient(t, s, "rp-"+uuid.NewString())
			a := newTestLoginSession(t, s, clk)
			a2 := &storage.LoginSession{UserID: a.UserID, AMR: []string{"pwd"}, AuthTime: clk.Now(), ExpiresAt: a.ExpiresAt}
			require.NoError(t, s.CreateLoginSession(ctx, a2))
			b := newTestLoginSession(t, s, clk) // another user
			gA, gA2, gB := newGrantSet(t, s, clk, client, a), newGrantSet(t, s, clk, client, a2), newGrantSet(t, s, clk, client, b)
			newTestOTPChallenge(t, s, clk, "account", a.UserID, "")

			require.NoError(t, s.DisableUser(ctx, a.UserID))

			u, err := s.GetUser(ctx, a.UserID)
			require.NoError(t, err)
			assert.True(t, u.Disabled)
			for _, ls := range []*storage.LoginSession{a, a2} {
				_, err := s.GetLoginSession(ctx, ls.ID)
				requireNotFound(t, err)
			}
			requireNotLive(t, s, "account", a.UserID, "")
			requireGrantsRevoked(t, s, gA)
			requireGrantsRevoked(t, s, gA2)
			_, err = s.GetLoginSession(ctx, b.ID)
			require.NoError(t, err)
			requireGrantsLive(t, s, gB)
			requireNotFound(t, s.DisableUser(ctx, uuid.NewString()))
		}},
		{"TestEnds_GrantsOfAnEndedSessionOrDisabledUserAreRefused", func(t *testing.T, s *storage.Store, clk *clock) {
			// A grant still active when its session ended or its user was
			// disabled (issued by a transaction that raced the end) is
			// refused when it is used: code exchange and refresh alike.
			ctx := t.Context()
			client := newTestClient(t, s, "rp-"+uuid.NewString())
			ended := newTestLoginSession(t, s, clk)
			require.NoError(t, s.EndLoginSession(ctx, ended.ID))
			late := newGrantSet(t, s, clk, client, ended)
			disabled := newTestLoginSession(t, s, clk)
			gDisabled := newGrantSet(t, s, clk, client, disabled)
			require.NoError(t, s.SetUserDisabled(ctx, disabled.UserID, true))
			live := newTestLoginSession(t, s, clk)
			gLive := newGrantSet(t, s, clk, client, live)

			for name, g := range map[string]grantSet{"ended session": late, "disabled user": gDisabled} {
				for _, use := range []func(ctx context.Context) error{
					func(ctx context.Context) error { return s.InvalidateAuthorizeCodeSession(ctx, g.code) },
					func(ctx context.Context) error { return s.RotateRefreshToken(ctx, g.req.ID, g.refresh) },
				} {
					err := s.InTx(ctx, use)
					require.ErrorIs(t, err, storage.ErrGrantEnded, name)
					require.ErrorIs(t, err, fosite.ErrNotFound, name)
				}
				requireGrantsLive(t, s, g) // refused, nothing changed
			}
			require.NoError(t, s.InTx(ctx, func(ctx context.Context) error {
				return errors.Join(s.InvalidateAuthorizeCodeSession(ctx, gLive.code), s.RotateRefreshToken(ctx, gLive.req.ID, gLive.refresh))
			}))
		}},
		{"TestEnds_RefreshesRacingAnEndLeaveNothingActive", func(t *testing.T, s *storage.Store, clk *clock) {
			// Refresh chains of one session run while it ends, as fosite
			// runs a refresh: rotate, then the new pair, in one
			// transaction. Whatever the interleaving, once the end has
			// committed no token of the session is left active.
			ctx := t.Context()
			client := newTestClient(t, s, "rp-"+uuid.NewString())
			ls := newTestLoginSession(t, s, clk)
			const chains, maxRefreshes = 4, 300
			var (
				mu     sync.Mutex
				issued []grantSet
				wg     sync.WaitGroup
				warm   sync.WaitGroup // each chain has refreshed a few times
				start  = make(chan struct{})
			)
			warm.Add(chains)
			for c := range chains {
				g := newGrantSet(t, s, clk, client, ls)
				issued = append(issued, g)
				wg.Add(1)
				go func() {
					defer wg.Done()
					warmed := false
					defer func() {
						if !warmed {
							warm.Done()
						}
					}()
					<-start
					for i := 0; i < maxRefreshes; i++ {
						next := grantSet{access: fmt.Sprintf("at-%d-%d-%s", c, i, uuid.NewString()), refresh: fmt.Sprintf("rt-%d-%d-%s", c, i, uuid.NewString()), req: g.req}
						err := s.InTx(ctx, func(ctx context.Context) error {
							if err := s.RotateRefreshToken(ctx, g.req.ID, g.refresh); err != nil {
								return err
							}
							if err := s.CreateAccessTokenSession(ctx, next.access, g.req); err != nil {
								return err
							}
							return s.CreateRefreshTokenSession(ctx, next.refresh, next.access, g.req)
						})
						if err != nil {
							return // refused: the end came first, or a busy database
						}
						mu.Lock()
						issued = append(issued, next)
						mu.Unlock()
						g.access, g.refresh = next.access, next.refresh
						if i == 2 {
							warmed = true
							warm.Done()
						}
					}
				}()
			}
			close(start)
			warm.Wait()
			require.NoError(t, s.EndLoginSession(ctx, ls.ID))
			wg.Wait()
			for _, g := range issued {
				_, err := s.GetAccessTokenSession(ctx, g.access, newEmptySession())
				requireNotFound(t, err)
				_, err = s.GetRefreshTokenSession(ctx, g.refresh, newEmptySession())
				require.ErrorIs(t, err, fosite.ErrInactiveToken, "refresh token %s", g.refresh)
			}
			t.Logf("%d refreshes in all", len(issued)-chains)
		}},
	}
}
