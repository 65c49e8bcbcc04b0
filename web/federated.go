package web

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/mail"
	"time"

	"github.com/google/uuid"
	"github.com/gorilla/mux"

	"github.com/otpstep/otpstep/provider"
	"github.com/otpstep/otpstep/storage"
	"github.com/otpstep/otpstep/web/jsonapi"
)

// Scopes of the federated-identity routes (docs/api.md).
const (
	ScopeFederatedIdentitySet    = "user:federated-identity:set"
	ScopeFederatedIdentityDelete = "user:federated-identity:delete"
	ScopeFederatedIdentityRead   = "user:federated-identity:read"
	// ScopeFederatedIdentityToken is GrantFederatedToken's. PACE's SDKs and
	// API reference declare no scope (nor a bearer token) for it; otpstep
	// requires both, since the answer is the user's partner tokens.
	ScopeFederatedIdentityToken = "user:federated-identity:token"
	// ScopeAdminFederatedIdentityWrite is for partners' client-credentials
	// tokens only.
	ScopeAdminFederatedIdentityWrite = "admin:federated-identity:write"
)

// maxSubjectLength is OpenID Connect Core §2's limit on sub.
const maxSubjectLength = 255

// linkedIdentityJSON is openapi.yaml's LinkedIdentity.
type linkedIdentityJSON struct {
	ID        string    `json:"id"`
	Provider  string    `json:"provider"`
	Subject   string    `json:"subject"`
	Email     string    `json:"email,omitempty"`
	CreatedAt time.Time `json:"createdAt"`
}

func linkedIdentityOf(li *storage.LinkedIdentity) linkedIdentityJSON {
	return linkedIdentityJSON{ID: li.ID, Provider: li.Provider, Subject: li.Subject, Email: li.Email, CreatedAt: li.CreatedAt.UTC()}
}

// listFederatedIdentities is GET {prefix}/federated-identities: the token's
// user's links, oldest first.
func (s *Server) listFederatedIdentities(w http.ResponseWriter, r *http.Request, c *apiCaller) error {
	lis, err := s.p.LinkedIdentities(r.Context(), c.user.ID)
	if err != nil {
		return err
	}
	out := struct {
		Data []linkedIdentityJSON `json:"data"`
	}{Data: make([]linkedIdentityJSON, 0, len(lis))}
	for i := range lis {
		out.Data = append(out.Data, linkedIdentityOf(&lis[i]))
	}
	writeJSON(w, http.StatusOK, out)
	return nil
}

type setFederatedIdentityBody struct {
	IDToken *string `json:"idToken"`
}

// setFederatedIdentity is PUT {prefix}/federated-identities/{identityProvider}:
// the steps are the upstream (404), the token's login session, which must
// have passed the second factor within linked_identity.reauth_max_age as the
// browser's link page requires (401 with an RFC 9470 step-up challenge),
// then the body:
//   - none (PACE's SDKs send none): the upstream identity the token's login
//     session signed in with (sign-in with the partner), 404 when it signed
//     in otherwise or with another upstream;
//   - {"idToken"} (422 on /idToken when missing): the ID token's checks,
//     each token accepted once (422 on /idToken, whatever failed; 503 when
//     the upstream's keys cannot be fetched);
//
// then the link (409 when the subject is another user's): 204, which is
// what PACE's SDKs expect (they decode no body).
func (s *Server) setFederatedIdentity(w http.ResponseWriter, r *http.Request, c *apiCaller) error {
	name := mux.Vars(r)["identityProvider"]
	if _, err := s.p.Upstream(name); err != nil {
		return err
	}
	if err := s.p.LinkSessionReadyByID(r.Context(), c.principal.SessionID, c.user.ID); err != nil {
		if errors.Is(err, provider.ErrReauthRequired) {
			// RFC 9470 §3: the login the token stands for is not enough.
			w.Header().Set("WWW-Authenticate", fmt.Sprintf(`Bearer error="insufficient_user_authentication", `+
				`error_description="A recent login past the second factor is required", acr_values="%s", max_age=%d`,
				provider.ACRSecondFactor, int64(s.p.Config().LinkedIdentity.ReauthMaxAge/time.Second)))
		}
		return err
	}
	lr := provider.LinkRequest{
		UserID: c.user.ID, Upstream: name, By: provider.LinkByAPI,
		ClientID: c.principal.ClientID, SessionID: c.principal.SessionID, IP: s.clientIP(r),
	}
	var body setFederatedIdentityBody
	present, derr := jsonapi.DecodeOptionalBody(r, &body)
	if derr != nil {
		return derr
	}
	var err error
	if present {
		if body.IDToken == nil || *body.IDToken == "" {
			return jsonapi.Validation("/idToken", "idToken is required.")
		}
		_, err = s.p.LinkWithIDToken(r.Context(), lr, *body.IDToken, "")
	} else {
		_, err = s.p.LinkSessionUpstream(r.Context(), lr)
	}
	if err != nil {
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

// deleteFederatedIdentity is DELETE {prefix}/federated-identities/{identityProvider}.
func (s *Server) deleteFederatedIdentity(w http.ResponseWriter, r *http.Request, c *apiCaller) error {
	err := s.p.UnlinkIdentity(r.Context(), provider.LinkRequest{
		UserID: c.user.ID, Upstream: mux.Vars(r)["identityProvider"], By: provider.LinkByAPI,
		ClientID: c.principal.ClientID, SessionID: c.principal.SessionID, IP: s.clientIP(r),
	})
	if err != nil {
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

// federatedTokenJSON is openapi.yaml's FederatedToken, PACE's AccessToken
// model (RFC 6749 §5.1's names).
type federatedTokenJSON struct {
	AccessToken  string `json:"access_token"`
	TokenType    string `json:"token_type"`
	RefreshToken string `json:"refresh_token,omitempty"`
	ExpiresIn    int64  `json:"expires_in,omitempty"`
	Scope        string `json:"scope"`
}

// grantFederatedToken is POST {prefix}/federated-identities/{identityProvider}/token
// (PACE's GrantFederatedToken): the upstream's token for the caller's link
// there, refreshed first when it has expired (provider.GrantFederatedToken).
// There is no request body. 404 when no such upstream, no link or no kept
// token; 503 when the upstream cannot be reached for a refresh.
func (s *Server) grantFederatedToken(w http.ResponseWriter, r *http.Request, c *apiCaller) error {
	t, err := s.p.GrantFederatedToken(r.Context(), provider.LinkRequest{
		UserID: c.user.ID, Upstream: mux.Vars(r)["identityProvider"], By: provider.LinkByAPI,
		ClientID: c.principal.ClientID, SessionID: c.principal.SessionID, IP: s.clientIP(r),
	})
	if err != nil {
		return err
	}
	// RFC 6749 §5.1: an answer carrying tokens is not cached.
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("Pragma", "no-cache")
	writeJSON(w, http.StatusOK, federatedTokenJSON{AccessToken: t.AccessToken, TokenType: t.TokenType,
		RefreshToken: t.RefreshToken, ExpiresIn: int64(t.ExpiresIn / time.Second), Scope: t.Scope})
	return nil
}

// ---------------------------------------------------------------- admin API

type adminHandler func(w http.ResponseWriter, r *http.Request, pr *provider.Principal) error

// mountAdminAPI registers the partner provisioning routes.
func (s *Server) mountAdminAPI(r *mux.Router) {
	const path = "/admin/users/{userId}/federated-identities/{identityProvider}"
	r.Handle(path, s.adminAPI(ScopeAdminFederatedIdentityWrite, s.adminSetFederatedIdentity)).Methods(http.MethodPut)
	r.Handle(path, s.adminAPI(ScopeAdminFederatedIdentityWrite, s.adminDeleteFederatedIdentity)).Methods(http.MethodDelete)
}

// adminAPI wraps a partner route like userAPI wraps a user route: content
// negotiation (406/415), the bearer token (401), a client-credentials token
// (403: a token issued to a login session, which carries a sid, speaks for
// a user and never provisions), the route's scope (403). Errors go through
// apiError.
func (s *Server) adminAPI(scope string, h adminHandler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if err := jsonapi.CheckNegotiation(r); err != nil {
			jsonapi.Write(w, r, err)
			return
		}
		pr, err := s.adminAuthenticate(r.Context(), r, scope)
		if err == nil {
			err = h(w, r, pr)
		}
		if err != nil {
			s.writeAPIError(w, r, err)
		}
	})
}

func (s *Server) adminAuthenticate(ctx context.Context, r *http.Request, scope string) (*provider.Principal, error) {
	pr, err := s.p.AuthenticateBearer(ctx, provider.BearerToken(r))
	if err != nil {
		return nil, err
	}
	// RFC 6749 §4.4: a client-credentials token's subject is its client, and
	// it carries no sid.
	if pr.SessionID != "" || pr.Subject != pr.ClientID {
		return nil, &jsonapi.Error{Status: http.StatusForbidden, Code: jsonapi.CodeInsufficientScope,
			Detail: "Only a client-credentials token may provision linked identities."}
	}
	if !pr.Scopes.Has(scope) {
		return nil, jsonapi.InsufficientScope(scope)
	}
	return pr, nil
}

type adminSetFederatedIdentityBody struct {
	Subject *string `json:"subject"`
	Email   *string `json:"email"`
}

// adminUserID is the {userId} of an admin route, a uuid (else 422).
func adminUserID(r *http.Request) (string, error) {
	id := mux.Vars(r)["userId"]
	if _, err := uuid.Parse(id); err != nil || len(id) != 36 {
		return "", jsonapi.ValidationParam("userId", "userId must be a uuid.")
	}
	return id, nil
}

// adminSetFederatedIdentity is PUT /admin/users/{userId}/federated-identities/{identityProvider}.
func (s *Server) adminSetFederatedIdentity(w http.ResponseWriter, r *http.Request, pr *provider.Principal) error {
	userID, err := adminUserID(r)
	if err != nil {
		return err
	}
	name := mux.Vars(r)["identityProvider"]
	if _, err := s.p.Upstream(name); err != nil {
		return err
	}
	var body adminSetFederatedIdentityBody
	if err := jsonapi.DecodeBody(r, &body); err != nil {
		return err
	}
	if body.Subject == nil || *body.Subject == "" {
		return jsonapi.Validation("/subject", "subject is required.")
	}
	if len(*body.Subject) > maxSubjectLength {
		return jsonapi.Validation("/subject", "subject is longer than 255 characters.")
	}
	email := ""
	if body.Email != nil && *body.Email != "" {
		a, err := mail.ParseAddress(*body.Email)
		if err != nil || a.Address != *body.Email {
			return jsonapi.Validation("/email", "email is not an email address.")
		}
		email = *body.Email
	}
	li, err := s.p.LinkIdentity(r.Context(), provider.LinkRequest{
		UserID: userID, Upstream: name, Subject: *body.Subject, Email: email,
		By: provider.LinkByPartner, ClientID: pr.ClientID, IP: s.clientIP(r),
	})
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, linkedIdentityOf(li))
	return nil
}

// adminDeleteFederatedIdentity is DELETE /admin/users/{userId}/federated-identities/{identityProvider}.
func (s *Server) adminDeleteFederatedIdentity(w http.ResponseWriter, r *http.Request, pr *provider.Principal) error {
	userID, err := adminUserID(r)
	if err != nil {
		return err
	}
	err = s.p.UnlinkIdentity(r.Context(), provider.LinkRequest{
		UserID: userID, Upstream: mux.Vars(r)["identityProvider"],
		By: provider.LinkByPartner, ClientID: pr.ClientID, IP: s.clientIP(r),
	})
	if err != nil {
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}
