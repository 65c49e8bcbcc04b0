package web

import (
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"mime"
	"net/http"
	"net/url"

	"github.com/ory/fosite"
	"github.com/ory/fosite/handler/openid"

	"github.com/otpstep/otpstep/provider"
	"github.com/otpstep/otpstep/storage"
)

// authorize is /oauth2/auth (RFC 6749 §4.1.1, OIDC Core §3.1.2). fosite keeps
// nothing between redirects, so every visit re-parses the original query:
// the login and consent pages carry it in return_to.
func (s *Server) authorize(w http.ResponseWriter, r *http.Request) {
	s.authorizeWith(w, r, false)
}

// authorizePost is POST /oauth2/auth: OIDC Core §3.1.2.1 has the
// authorization endpoint take its parameters form-encoded in a POST too
// (mod_auth_openidc's OIDCProviderAuthRequestMethod POST sends them so).
// The form carries no CSRF token of ours and changes nothing: the browser
// is sent to GET /oauth2/auth with the body's parameters, which decides,
// and whose query the login, OTP and consent pages carry on.
func (s *Server) authorizePost(w http.ResponseWriter, r *http.Request) {
	if err := r.ParseForm(); err != nil {
		s.errorPage(w, r, http.StatusBadRequest, "error.form", err)
		return
	}
	http.Redirect(w, r, PathAuthorize+"?"+r.PostForm.Encode(), http.StatusSeeOther)
}

func (s *Server) authorizeWith(w http.ResponseWriter, r *http.Request, consented bool) {
	ctx := r.Context()
	oauth2 := s.p.OAuth2
	if refused, ok := requestObjectRefusal(r); ok {
		s.refuseRequestObject(w, r, refused)
		return
	}
	ar, err := oauth2.NewAuthorizeRequest(ctx, r)
	allowRedirectOf(w, ar) // the consent form ends at the redirect URI
	if err != nil {
		s.authorizeError(w, r, ar, err)
		return
	}
	if err := s.p.PrecheckAuthorize(ar); err != nil {
		s.authorizeError(w, r, ar, err)
		return
	}
	params := provider.ParseAuthorizeParams(ar.GetRequestForm())
	ls, user, err := s.currentSession(r)
	if err != nil && !errors.Is(err, provider.ErrLoginSessionGone) {
		s.authorizeError(w, r, ar, fosite.ErrServerError.WithWrap(err))
		return
	}
	// OIDC Core §3.1.2.1: prompt=login and an exceeded max_age ask for a
	// new login: the password, then the second factor again when the
	// request needs it (a new session is aal1 until its code passes).
	if ls == nil || provider.NeedsReauthentication(ls, ar.GetRequestForm(), s.p.Now()) {
		if params.Prompt("none") {
			hint := "The user is not logged in."
			if ls != nil {
				hint = "The request asks for a newer login (max_age)."
			}
			s.authorizeError(w, r, ar, fosite.ErrLoginRequired.WithHint(hint))
			return
		}
		s.redirectToLogin(w, r)
		return
	}
	client, ok := ar.GetClient().(*storage.Client)
	if !ok {
		s.authorizeError(w, r, ar, fosite.ErrServerError.WithDebug("unexpected client type"))
		return
	}
	if s.p.NeedsSecondFactor(client, ar) && !ls.PassedLoginOTP {
		if params.Prompt("none") {
			s.authorizeError(w, r, ar, fosite.ErrLoginRequired.WithHint("The login needs its second factor."))
			return
		}
		s.redirectToOTP(w, r, ls, user, client.ID)
		return
	}
	// OIDC Core §3.1.2.1 prompt=consent: asked even of a client that skips it.
	if (!client.SkipConsent || params.Prompt("consent")) && !consented {
		if params.Prompt("none") {
			s.authorizeError(w, r, ar, fosite.ErrConsentRequired.WithHint("The client needs the user's consent."))
			return
		}
		s.pages.Render(w, r, http.StatusOK, "consent", ConsentPage{
			ClientName:     client.Name,
			Scopes:         ar.GetRequestedScopes(),
			AuthorizeQuery: r.URL.RawQuery,
			CSRFField:      csrfField(r),
			Email:          user.Email,
			NotYouURL:      s.notYouURL(r),
		})
		return
	}
	for _, scope := range ar.GetRequestedScopes() {
		ar.GrantScope(scope)
	}
	for _, aud := range ar.GetRequestedAudience() {
		ar.GrantAudience(aud)
	}
	session := s.p.NewSession(ls, s.p.Now())
	if ar.GetGrantedScopes().Has("email") {
		session.Claims.Extra["email"] = user.Email
		session.Claims.Extra["email_verified"] = user.EmailVerified
	}
	resp, err := oauth2.NewAuthorizeResponse(ctx, ar, session)
	if err != nil {
		s.authorizeError(w, r, ar, err)
		return
	}
	oauth2.WriteAuthorizeResponse(ctx, w, ar, resp)
}

// requestObjectRefusal is the error for an authorize request carrying a
// request object (OIDC Core §6): otpstep advertises
// request_parameter_supported and request_uri_parameter_supported false,
// and fosite would otherwise read one for a client with a JWK Set (even
// unsigned, alg none).
func requestObjectRefusal(r *http.Request) (*fosite.RFC6749Error, bool) {
	q := r.URL.Query()
	switch {
	case q.Has("request_uri"):
		return fosite.ErrRequestURINotSupported.WithHint("otpstep does not read request_uri (request_uri_parameter_supported is false)."), true
	case q.Has("request"):
		return fosite.ErrRequestNotSupported.WithHint("otpstep does not read request objects (request_parameter_supported is false)."), true
	}
	return nil, false
}

// refuseRequestObject answers a request object's refusal to the client's
// redirect URI, which fosite verifies on the request without it.
func (s *Server) refuseRequestObject(w http.ResponseWriter, r *http.Request, refused *fosite.RFC6749Error) {
	q := r.URL.Query()
	q.Del("request")
	q.Del("request_uri")
	without := r.Clone(r.Context())
	without.URL.RawQuery = q.Encode()
	without.Form = nil
	ar, err := s.p.OAuth2.NewAuthorizeRequest(r.Context(), without)
	if err != nil {
		s.authorizeError(w, r, ar, err)
		return
	}
	s.authorizeError(w, r, ar, refused)
}

// notYouURL is the consent page's "Not you?": the login page for another
// account, continuing with this authorize request once signed in.
func (s *Server) notYouURL(r *http.Request) string {
	if s.p.Embedded() {
		return "" // the host's login is its own
	}
	return PathLogin + "?" + url.Values{"account": {"other"}, "return_to": {PathAuthorize + "?" + r.URL.RawQuery}}.Encode()
}

// redirectToLogin sends the browser to /login carrying the authorize query
// without prompt=login and max_age: the login about to happen satisfies
// them (provider.ReauthSatisfied).
func (s *Server) redirectToLogin(w http.ResponseWriter, r *http.Request) {
	returnTo := PathAuthorize + "?" + provider.ReauthSatisfied(r.URL.Query()).Encode()
	http.Redirect(w, r, PathLogin+"?"+url.Values{"return_to": {returnTo}}.Encode(), http.StatusSeeOther)
}

// authorizeError answers an authorize error: to the client's redirect URI when
// fosite validated it, otherwise as a page (RFC 6749 §4.1.2.1: never redirect
// to an unverified URI).
func (s *Server) authorizeError(w http.ResponseWriter, r *http.Request, ar fosite.AuthorizeRequester, err error) {
	if storage.IsUnavailable(r.Context(), err) {
		// RFC 6749 §4.1.2.1 temporarily_unavailable: to a verified client's
		// redirect URI, else the error page, 503 (errorPage logs it).
		if ar != nil && ar.GetRedirectURI() != nil && ar.GetClient() != nil {
			s.storageUnavailable(r.Context(), r.URL.Path, err)
			setUnavailableRetryAfter(w)
			s.p.OAuth2.WriteAuthorizeError(r.Context(), w, ar, fosite.ErrTemporarilyUnavailable.WithWrap(err))
			return
		}
		s.errorPage(w, r, http.StatusServiceUnavailable, unavailablePageMessage, err)
		return
	}
	s.logOAuthError(r, "authorize request refused", err)
	var rfc *fosite.RFC6749Error
	errors.As(err, &rfc)
	// A response_mode otpstep does not offer is refused in the one it
	// offers (response_modes_supported: query), not in the one refused.
	if fr, ok := ar.(*fosite.AuthorizeRequest); ok && errors.Is(err, fosite.ErrUnsupportedResponseMode) {
		fr.ResponseMode = fosite.ResponseModeQuery
	}
	if ar != nil && ar.GetRedirectURI() != nil && ar.GetClient() != nil {
		s.p.OAuth2.WriteAuthorizeError(r.Context(), w, ar, err)
		return
	}
	s.errorPageFor(w, r, http.StatusBadRequest, clientErrorPage(ar), authorizeErrorKey(ar, rfc), nil) // logged above
}

// authorizeErrorKey says in words why an authorize request that cannot go
// back to the client was refused: its client is unknown, or its
// redirect_uri is not one the client registered (RFC 6749 §3.1.2.4: the
// user is told, not redirected), or another OAuth error.
func authorizeErrorKey(ar fosite.AuthorizeRequester, rfc *fosite.RFC6749Error) string {
	if rfc == nil {
		return "error.oauth.other"
	}
	switch rfc.ErrorField {
	case fosite.ErrInvalidClient.ErrorField:
		return "error.oauth.invalid_client"
	case fosite.ErrInvalidRequest.ErrorField:
		if ar != nil && ar.GetClient() != nil && ar.GetRedirectURI() == nil {
			return "error.oauth.invalid_redirect"
		}
		return "error.oauth.invalid_request"
	case fosite.ErrInvalidScope.ErrorField:
		return "error.oauth.invalid_scope"
	case fosite.ErrUnsupportedResponseType.ErrorField:
		return "error.oauth.unsupported_response_type"
	}
	return "error.oauth.other"
}

// clientErrorPage is an error page offering the way back to the client of
// ar (its client_uri), when it is known.
func clientErrorPage(ar fosite.AuthorizeRequester) ErrorPage {
	if ar == nil {
		return ErrorPage{}
	}
	if c, ok := ar.GetClient().(*storage.Client); ok && c != nil {
		return ErrorPage{ClientName: c.Name, ClientURI: c.ClientURI}
	}
	return ErrorPage{}
}

// consent is the consent form's POST: the user's answer plus the original
// authorize query.
func (s *Server) consent(w http.ResponseWriter, r *http.Request) {
	if err := r.ParseForm(); err != nil {
		s.errorPage(w, r, http.StatusBadRequest, "error.form", err)
		return
	}
	query := r.PostForm.Get("authorize_query")
	replay := r.Clone(r.Context())
	replay.Method = http.MethodGet
	replay.URL.Path = PathAuthorize
	replay.URL.RawQuery = query
	replay.Body = http.NoBody
	replay.ContentLength = 0
	replay.Form, replay.PostForm = nil, nil
	replay.Header.Del("Content-Type")
	if r.PostForm.Get("consent") != "allow" {
		ar, err := s.p.OAuth2.NewAuthorizeRequest(r.Context(), replay)
		if err != nil {
			s.authorizeError(w, r, ar, err)
			return
		}
		s.authorizeError(w, r, ar, fosite.ErrAccessDenied.WithHint("The user denied the request."))
		return
	}
	s.authorizeWith(w, replay, true)
}

// token is /oauth2/token (RFC 6749 §3.2).
func (s *Server) token(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	oauth2 := s.p.OAuth2
	session := provider.EmptySession()
	ar, err := oauth2.NewAccessRequest(ctx, r, session)
	if s.oauth2Unavailable(w, r, err) {
		return
	}
	if err != nil {
		s.logOAuthError(r, "token request refused", err)
		oauth2.WriteAccessError(ctx, w, ar, err)
		return
	}
	if ar.GetGrantTypes().ExactOne("client_credentials") {
		// RFC 6749 §4.4: the client acts on its own behalf.
		session.Subject = ar.GetClient().GetID()
		session.Claims.Subject = ar.GetClient().GetID()
		for _, scope := range ar.GetRequestedScopes() {
			ar.GrantScope(scope)
		}
		for _, aud := range ar.GetRequestedAudience() {
			ar.GrantAudience(aud)
		}
	}
	// OpenID Connect Dynamic Client Registration §2
	// id_token_signed_response_alg: the client's ID tokens are signed with a
	// key of the algorithm it registered (the default key otherwise).
	if c, ok := ar.GetClient().(*storage.Client); ok && c.IDTokenSignedResponseAlg != "" {
		ctx = provider.WithSigningAlg(ctx, c.IDTokenSignedResponseAlg)
	}
	resp, err := oauth2.NewAccessResponse(ctx, ar)
	if s.oauth2Unavailable(w, r, err) {
		return
	}
	if err != nil {
		s.logOAuthError(r, "token response failed", err)
		oauth2.WriteAccessError(ctx, w, ar, err)
		return
	}
	oauth2.WriteAccessResponse(ctx, w, ar, resp)
}

// introspect is /oauth2/introspect (RFC 7662): the caller authenticates as a
// client, as at the token endpoint, and sees only the tokens it may know
// about (provider.Introspect). RFC 6749 §5.2: a client that tried the
// Authorization header and failed gets a WWW-Authenticate challenge.
func (s *Server) introspect(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	ir, err := s.p.Introspect(ctx, r)
	// fosite answers a failed token read as inactive and keeps only the
	// message of its cause: the request's note tells an outage apart.
	if s.oauth2Unavailable(w, r, err) {
		return
	}
	if err != nil {
		s.logOAuthError(r, "introspection", err)
		if errors.Is(err, fosite.ErrInvalidClient) && r.Header.Get("Authorization") != "" {
			w.Header().Set("WWW-Authenticate", `Basic realm="otpstep"`)
		}
		s.p.OAuth2.WriteAccessError(ctx, w, nil, err)
		return
	}
	// RFC 9470 §6.2: an active access token's answer names its login's
	// acr, auth_time and amr.
	s.p.OAuth2.WriteIntrospectionResponse(ctx, w, provider.WithLoginClaims(ir))
}

// revoke is /oauth2/revoke (RFC 7009).
func (s *Server) revoke(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	err := s.p.OAuth2.NewRevocationRequest(ctx, r)
	if s.oauth2Unavailable(w, r, err) {
		return
	}
	if err != nil {
		s.logOAuthError(r, "revocation", err)
	}
	s.p.OAuth2.WriteRevocationResponse(ctx, w, err)
}

// userinfo is OIDC Core §5.3: the claims of an access token's user.
// userinfoToken is the access token of a UserInfo request: the
// Authorization header's Bearer token (RFC 6750 §2.1) or, in a POST of
// application/x-www-form-urlencoded, the body's access_token (§2.2; OIDC
// Core §5.3.1 lets the client POST, as mod_auth_openidc's
// OIDCUserInfoTokenMethod post_param does). Both at once is an error (§2:
// one method per request). A request it cannot take has a problem, the
// error_description of its invalid_request.
func userinfoToken(r *http.Request) (token, problem string) {
	header := provider.BearerToken(r)
	if r.Method != http.MethodPost {
		return header, ""
	}
	if mt, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type")); mt != "application/x-www-form-urlencoded" {
		return header, ""
	}
	if err := r.ParseForm(); err != nil {
		return "", "The form body cannot be read."
	}
	body := r.PostForm["access_token"]
	switch {
	case len(body) > 1 || len(body) == 1 && header != "":
		return "", "The access token is sent more than once."
	case len(body) == 1:
		return body[0], ""
	}
	return header, ""
}

func (s *Server) userinfo(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	unauthorized := func(desc string) {
		w.Header().Set("WWW-Authenticate", `Bearer error="invalid_token", error_description="`+desc+`"`)
		writeJSON(w, http.StatusUnauthorized, map[string]string{"error": "invalid_token", "error_description": desc})
	}
	token, problem := userinfoToken(r)
	if problem != "" {
		w.Header().Set("WWW-Authenticate", `Bearer error="invalid_request", error_description="`+problem+`"`)
		writeJSON(w, http.StatusBadRequest, map[string]string{"error": "invalid_request", "error_description": problem})
		return
	}
	pr, err := s.p.AuthenticateBearer(ctx, token)
	if s.oauth2Unavailable(w, r, err) {
		return
	}
	if err != nil {
		if !errors.Is(err, provider.ErrNoBearer) && !errors.Is(err, provider.ErrTokenInactive) {
			s.errs.Write(w, r, err)
			return
		}
		unauthorized("The access token is missing, expired or revoked.")
		return
	}
	if !pr.Scopes.Has("openid") || pr.SessionID == "" && pr.Subject == pr.ClientID {
		w.Header().Set("WWW-Authenticate", `Bearer error="insufficient_scope"`)
		writeJSON(w, http.StatusForbidden, map[string]string{"error": "insufficient_scope", "error_description": "The token was not granted the openid scope for a user."})
		return
	}
	user, err := s.p.Store().GetUser(ctx, pr.Subject)
	if s.oauth2Unavailable(w, r, err) {
		return
	}
	if errors.Is(err, storage.ErrNotFound) {
		unauthorized("The user no longer exists.")
		return
	}
	if err != nil {
		s.errs.Write(w, r, err)
		return
	}
	claims := map[string]any{"sub": user.ID}
	if pr.Scopes.Has("email") {
		claims["email"] = user.Email
		claims["email_verified"] = user.EmailVerified
	}
	writeJSON(w, http.StatusOK, claims)
}

func (s *Server) discovery(w http.ResponseWriter, r *http.Request) {
	d, err := s.p.Discovery(r.Context())
	if err != nil {
		s.errs.Write(w, r, s.apiError(r.Context(), err))
		return
	}
	w.Header().Set("Cache-Control", "public, max-age=300")
	writeJSON(w, http.StatusOK, d)
}

func (s *Server) jwks(w http.ResponseWriter, r *http.Request) {
	set, err := s.p.Keys.JWKS(r.Context())
	if err != nil {
		s.errs.Write(w, r, s.apiError(r.Context(), err))
		return
	}
	w.Header().Set("Cache-Control", "public, max-age=60")
	writeJSON(w, http.StatusOK, set)
}

// logOAuthError logs a fosite error as one line. A 4xx is the client's
// mistake: info level with fosite's error, description, hint and debug
// text, never a stack (the wrapped ory/x error would print one). A 5xx is
// otpstep's: error level with its cause and the stack, once.
func (s *Server) logOAuthError(r *http.Request, msg string, err error) {
	level, attrs := oauthErrorAttrs(err)
	attrs = append([]slog.Attr{slog.String("request_id", RequestIDFrom(r.Context()))}, attrs...)
	s.log.LogAttrs(r.Context(), level, msg, attrs...)
}

func oauthErrorAttrs(err error) (slog.Level, []slog.Attr) {
	var rfc *fosite.RFC6749Error
	if !errors.As(err, &rfc) {
		rfc = fosite.ErrServerError.WithWrap(err)
	}
	status := rfc.CodeField
	if status == 0 {
		status = http.StatusInternalServerError
	}
	attrs := []slog.Attr{slog.Int("status", status), slog.String("error", rfc.ErrorField), slog.String("description", rfc.DescriptionField)}
	for _, a := range []slog.Attr{slog.String("hint", rfc.HintField), slog.String("debug", rfc.DebugField)} {
		if a.Value.String() != "" {
			attrs = append(attrs, a)
		}
	}
	if status < 500 {
		return slog.LevelInfo, attrs
	}
	cause := "<none>"
	if c := errors.Unwrap(rfc); c != nil {
		cause = c.Error()
	}
	return slog.LevelError, append(attrs, slog.String("cause", cause), slog.String("stack", fmt.Sprintf("%+v", err)))
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

var _ openid.Session = (*openid.DefaultSession)(nil)
