package web

import (
	"context"
	"errors"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/google/uuid"
	"github.com/gorilla/mux"

	"github.com/otpstep/otpstep/provider"
	"github.com/otpstep/otpstep/provider/upstream"
	"github.com/otpstep/otpstep/storage"
	"github.com/otpstep/otpstep/web/jsonapi"
)

// Scopes of the user API (docs/api.md, one per route).
const (
	ScopeSessionsUpdate = "user:sessions:update"
	ScopeOTPVerify      = "user:otp:verify"
	ScopeOTPCreate      = "user:otp:create"
)

// apiCaller is who called the user API: the token's principal and its user.
type apiCaller struct {
	principal *provider.Principal
	user      *storage.User
}

type apiHandler func(w http.ResponseWriter, r *http.Request, c *apiCaller) error

// mountUserAPI registers the PACE-compatible user API under each of
// api.prefixes, the same routes under every one.
func (s *Server) mountUserAPI(r *mux.Router) {
	for _, prefix := range s.p.Config().API.Paths() {
		s.mountUserAPIAt(r.PathPrefix(prefix).Subrouter())
	}
}

// mountUserAPIAt registers the user API's routes on api, a subrouter of
// one prefix.
func (s *Server) mountUserAPIAt(api *mux.Router) {
	api.Handle("/sessions/{sessionId}", s.userAPI(ScopeSessionsUpdate, s.updateSession)).Methods(http.MethodPut)
	api.Handle("/user/otp/verify", s.userAPI(ScopeOTPVerify, s.verifyOTP)).Methods(http.MethodPost)
	api.Handle("/user/otp", s.userAPI(ScopeOTPCreate, s.createOTP)).Methods(http.MethodPost)
	api.Handle("/user/otp/sendmail", s.userAPI(ScopeOTPCreate, s.sendmailOTP)).Methods(http.MethodPost)
	// PACE's credential checks and the PIN (userapi_pin.go).
	api.Handle("/user/pin", s.userAPI(ScopePINCheck, s.checkUserPIN)).Methods(http.MethodGet)
	api.Handle("/user/pin", s.userAPI(ScopePINUpdate, s.updateUserPIN)).Methods(http.MethodPut)
	api.Handle("/user/pin-or-password", s.userAPI(ScopePINCheck, s.checkUserPinOrPassword)).Methods(http.MethodGet)
	api.Handle("/user/password", s.userAPI(ScopePasswordCheck, s.checkUserPassword)).Methods(http.MethodGet)
	// PACE's device TOTP (userapi_totp.go): either scope.
	api.Handle("/user/devices/totp", s.userAPIAnyScope([]string{ScopeDeviceTOTPCreate, ScopeDeviceTOTPCreateAfterLogin}, s.createTOTP)).Methods(http.MethodPost)
	// Linking is how a user comes to satisfy the linked-identity policy, so
	// linking and listing are exempt from it; unlinking is not.
	api.Handle("/federated-identities", s.userAPIWithoutLinkPolicy(ScopeFederatedIdentityRead, s.listFederatedIdentities)).Methods(http.MethodGet)
	api.Handle("/federated-identities/{identityProvider}", s.userAPIWithoutLinkPolicy(ScopeFederatedIdentitySet, s.setFederatedIdentity)).Methods(http.MethodPut)
	api.Handle("/federated-identities/{identityProvider}", s.userAPI(ScopeFederatedIdentityDelete, s.deleteFederatedIdentity)).Methods(http.MethodDelete)
	api.Handle("/federated-identities/{identityProvider}/token", s.userAPI(ScopeFederatedIdentityToken, s.grantFederatedToken)).Methods(http.MethodPost)
}

// userAPI wraps a handler with what every user-API route does, in order:
// content negotiation (406/415), the bearer token (401), the route's scope
// (403), the linked-identity policy (401 missing-linked-identity). Errors
// the handler returns are mapped to JSON:API in one place (apiError).
func (s *Server) userAPI(scope string, h apiHandler) http.Handler {
	return s.userAPIWith([]string{scope}, true, h)
}

// userAPIAnyScope is userAPI for a route that any one of scopes allows (the
// handler reads which from c.principal.Scopes).
func (s *Server) userAPIAnyScope(scopes []string, h apiHandler) http.Handler {
	return s.userAPIWith(scopes, true, h)
}

// userAPIWithoutLinkPolicy is userAPI without the linked-identity policy,
// for the routes a user without a link needs to get one: PUT and GET
// federated-identities. Everything else userAPI does still applies.
func (s *Server) userAPIWithoutLinkPolicy(scope string, h apiHandler) http.Handler {
	return s.userAPIWith([]string{scope}, false, h)
}

func (s *Server) userAPIWith(scopes []string, linkPolicy bool, h apiHandler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if err := jsonapi.CheckNegotiation(r); err != nil {
			jsonapi.Write(w, r, err)
			return
		}
		c, err := s.apiAuthenticate(r.Context(), r, scopes, linkPolicy)
		if err == nil {
			err = h(w, r, c)
		}
		if err != nil {
			s.writeAPIError(w, r, err)
		}
	})
}

func (s *Server) apiAuthenticate(ctx context.Context, r *http.Request, scopes []string, linkPolicy bool) (*apiCaller, error) {
	pr, err := s.p.AuthenticateBearer(ctx, provider.BearerToken(r))
	if err != nil {
		return nil, err
	}
	// Only tokens issued to a login session (they carry its sid) act for a
	// user; a client-credentials token speaks for its client only.
	if pr.SessionID == "" {
		return nil, jsonapi.Unauthorized("The access token does not belong to a user.")
	}
	if !slices.ContainsFunc(scopes, func(scope string) bool { return pr.Scopes.Has(scope) }) {
		return nil, jsonapi.InsufficientScope(strings.Join(scopes, " or "))
	}
	// A token with a sid but no subject: the host issued it with a session
	// whose subject is empty (plugin.Claims.Apply sets it), which is not
	// the same as a subject otpstep does not know.
	if pr.Subject == "" {
		return nil, jsonapi.Unauthorized("The access token has no subject.")
	}
	user, err := pr.User, error(nil) // read with the token, when it could be
	if user == nil {
		user, err = s.p.Store().GetUser(ctx, pr.Subject)
	}
	if errors.Is(err, storage.ErrNotFound) || err == nil && user.Disabled {
		return nil, jsonapi.Unauthorized("The access token's user is unknown or disabled.")
	}
	if err != nil {
		return nil, err
	}
	if !linkPolicy {
		return &apiCaller{principal: pr, user: user}, nil
	}
	ok, err := s.p.HasRequiredLinkedIdentity(ctx, user.ID)
	if err != nil {
		return nil, err
	}
	if !ok {
		return nil, jsonapi.MissingLinkedIdentity()
	}
	return &apiCaller{principal: pr, user: user}, nil
}

// writeAPIError answers err as JSON:API (apiError) and logs what an
// operator needs of a refusal that is not the client's mistake alone: every
// 429 (the limit and whom it counted) and a failed re-authentication (the
// user, never the email or password).
func (s *Server) writeAPIError(w http.ResponseWriter, r *http.Request, err error) {
	var tooMany *provider.TooManyAttemptsError
	switch {
	case errors.As(err, &tooMany):
		s.logLimited(r, tooMany)
	case errors.Is(err, provider.ErrInvalidCredentials):
		s.log.InfoContext(r.Context(), "login failed", "request_id", RequestIDFrom(r.Context()), loginFailureAttr(err), "ip", s.clientIP(r))
	}
	s.errs.Write(w, r, s.apiError(r.Context(), err))
}

// limitDetails name, by its config key (provider.TooManyAttemptsError.Limit),
// the limit that refused a request of the user API; Retry-After says when.
var limitDetails = map[string]string{
	"otp.resend_interval":               "A code was sent for this session or account less than otp.resend_interval ago; ask again after Retry-After seconds.",
	"otp.max_sends_per_hour":            "Too many codes sent for this account in the last hour; ask again after Retry-After seconds.",
	"otp.max_failures_per_user":         "Too many wrong codes for this account; try again after Retry-After seconds.",
	"otp.max_attempts":                  "This code had too many wrong tries and no longer works; ask for a new code.",
	"login.max_failures_per_account":    "Too many failed sign-ins for this account; try again after Retry-After seconds.",
	"login.max_failures_per_ip":         "Too many failed sign-ins from this address; try again after Retry-After seconds.",
	"recovery.max_requests_per_account": "Too many recovery codes asked for this account; ask again after Retry-After seconds.",
	"recovery.max_requests_per_ip":      "Too many recovery codes asked from this address; ask again after Retry-After seconds.",
	"recovery.max_code_failures_per_ip": "Too many wrong recovery codes from this address; try again after Retry-After seconds.",
}

// apiError maps domain errors to JSON:API errors: the one place that does.
// An unavailable database (in err, or noted in ctx by the request's storage
// work) comes first: whatever else the error says is no verdict then.
func (s *Server) apiError(ctx context.Context, err error) error {
	var je *jsonapi.Error
	var tooMany *provider.TooManyAttemptsError
	switch {
	case storage.IsUnavailable(ctx, err):
		return jsonapi.Unavailable(unavailableRetryAfter, err)
	case errors.As(err, &je):
		return je
	case errors.Is(err, provider.ErrNoBearer):
		return jsonapi.Unauthorized("A bearer access token is required.")
	case errors.Is(err, provider.ErrTokenInactive):
		return jsonapi.Unauthorized("The access token is inactive, expired, revoked or not an access token.")
	case errors.Is(err, provider.ErrSessionNotFound):
		return jsonapi.NotFound("The session does not exist.")
	case errors.Is(err, provider.ErrReauthRequired):
		return &jsonapi.Error{Status: http.StatusUnauthorized, Code: jsonapi.CodeUnauthorized, Cause: err,
			Detail: "Linking needs a login that passed the second factor within linked_identity.reauth_max_age; sign in again."}
	case errors.Is(err, provider.ErrRecoveredSession):
		return &jsonapi.Error{Status: http.StatusUnauthorized, Code: jsonapi.CodeUnauthorized, Cause: err,
			Detail: "The session came from an account recovery by email; no emailed code passes its second factor. Sign in again with the password."}
	case errors.Is(err, provider.ErrNotLoginUI):
		return &jsonapi.Error{Status: http.StatusForbidden, Code: jsonapi.CodeInsufficientScope, Cause: err,
			Detail: "Only a client registered as a login UI (permission login-ui) may pass the second factor."}
	case errors.Is(err, provider.ErrPINNotSecure):
		return &jsonapi.Error{Status: http.StatusNotAcceptable, Code: jsonapi.CodePINNotSecure, Pointer: "/data/attributes/pin", Cause: err,
			Detail: "The PIN must have 4 digits, at least 3 of them different, and not be a series (1234, 4321)."}
	// Before ErrOTPMismatch and ErrInvalidCredentials, which it wraps:
	// CreateTOTP's wrong credentials are 403.
	case errors.Is(err, provider.ErrDeviceTOTPUnauthorized):
		return &jsonapi.Error{Status: http.StatusForbidden, Code: jsonapi.CodeInvalidCredentials, Cause: err,
			Detail: "The one-time password, password or PIN is not valid, or none was sent and the account is not new."}
	// Before ErrOTPMismatch, which it wraps: a wrong code setting a PIN is 403.
	case errors.Is(err, provider.ErrPINOTPInvalid):
		return &jsonapi.Error{Status: http.StatusForbidden, Code: jsonapi.CodeInvalidCredentials, Cause: err,
			Detail: "The one-time password is not valid."}
	case errors.Is(err, provider.ErrOTPMismatch):
		return jsonapi.NotFound("The one-time password is not valid.")
	case errors.Is(err, provider.ErrInvalidCredentials):
		return jsonapi.NotFound("The credentials are not valid.")
	case errors.As(err, &tooMany):
		e := jsonapi.TooManyRequests(tooMany.RetryAfter)
		e.Cause = err
		e.Detail = limitDetails[tooMany.Limit] // "" keeps the generic detail
		return e
	case errors.Is(err, upstream.ErrUnavailable):
		return jsonapi.Unavailable(unavailableRetryAfter, err)
	case errors.Is(err, provider.ErrUnknownUpstream):
		return &jsonapi.Error{Status: http.StatusNotFound, Code: jsonapi.CodeNotFound,
			Detail: "The identity provider is not configured.", Cause: err}
	case errors.Is(err, provider.ErrIdentityNotLinked):
		return &jsonapi.Error{Status: http.StatusNotFound, Code: jsonapi.CodeNotFound,
			Detail: "There is no linked identity at this identity provider.", Cause: err}
	case errors.Is(err, provider.ErrNoSessionUpstream):
		return &jsonapi.Error{Status: http.StatusNotFound, Code: jsonapi.CodeNotFound,
			Detail: "The token's login session did not sign in with this identity provider; send an idToken to link.", Cause: err}
	case errors.Is(err, provider.ErrNoFederatedToken):
		return &jsonapi.Error{Status: http.StatusNotFound, Code: jsonapi.CodeNotFound,
			Detail: "There is no token of this identity provider for the user.", Cause: err}
	case errors.Is(err, provider.ErrUserNotFound):
		return &jsonapi.Error{Status: http.StatusNotFound, Code: jsonapi.CodeNotFound,
			Detail: "The user does not exist.", Cause: err}
	case errors.Is(err, provider.ErrIdentityAlreadyLinked):
		e := jsonapi.Conflict(jsonapi.CodeIdentityAlreadyLinked, "This identity is already linked to another user.")
		e.Cause = err
		return e
	case errors.Is(err, upstream.ErrInvalidIDToken):
		// Every failed check answers the same; the reason is in the log
		// and the audit trail.
		e := jsonapi.Validation("/idToken", "The ID token is not valid.")
		e.Cause = err
		return e
	}
	return jsonapi.Internal(err)
}

type updateSessionBody struct {
	UserID         *string `json:"userId"`
	PassedLoginOTP *bool   `json:"passedLoginOTP"`
}

// otpResponse is the 200 body of PACE's UpdateSession
// (docs/pace-update-session.txt); otp is left out when
// otp.return_in_response is false.
type otpResponse struct {
	OTP       string   `json:"otp,omitempty"`
	ExpiresAt paceTime `json:"expiresAt"`
}

// paceTime is a time as PACE's SDKs decode it: UTC, milliseconds, Z. The
// iOS SDK's dateDecoder (API/Generated/Common/Coding.swift) reads exactly
// yyyy-MM-dd'T'HH:mm:ss.SSS'Z' or whole seconds; time.Time's own encoding
// has up to nine fractional digits, and drops trailing zeros.
type paceTime time.Time

// paceTimeLayout is paceTime's RFC 3339 form (the Z literal: always UTC).
const paceTimeLayout = "2006-01-02T15:04:05.000Z"

func (t paceTime) MarshalJSON() ([]byte, error) {
	return []byte(`"` + time.Time(t).UTC().Format(paceTimeLayout) + `"`), nil
}

// updateSession is PUT {prefix}/sessions/{sessionId} (docs/pace-update-session.txt).
func (s *Server) updateSession(w http.ResponseWriter, r *http.Request, c *apiCaller) error {
	sessionID := mux.Vars(r)["sessionId"]
	if _, err := uuid.Parse(sessionID); err != nil || len(sessionID) != 36 {
		return jsonapi.ValidationParam("sessionId", "sessionId must be a uuid.")
	}
	var body updateSessionBody
	if err := jsonapi.DecodeBody(r, &body); err != nil {
		return err
	}
	if body.UserID == nil {
		return jsonapi.Validation("/userId", "userId is required.")
	}
	if _, err := uuid.Parse(*body.UserID); err != nil || len(*body.UserID) != 36 {
		return jsonapi.Validation("/userId", "userId must be a uuid.")
	}
	if body.PassedLoginOTP == nil {
		return jsonapi.Validation("/passedLoginOTP", "passedLoginOTP is required.")
	}
	// A token may only act on its own user's sessions; anything else looks
	// exactly like an unknown session (404, never 403).
	if *body.UserID != c.user.ID {
		return provider.ErrSessionNotFound
	}
	issued, err := s.p.UpdateSessionOTP(r.Context(), s.otpRequest(r, c, provider.OTPKindLogin, sessionID), *body.PassedLoginOTP)
	if err != nil {
		return err
	}
	if issued == nil {
		w.WriteHeader(http.StatusNoContent)
		return nil
	}
	s.writeOTP(w, issued, http.StatusOK)
	return nil
}

// otpRequest is the caller's request for an OTP of kind: the code leaves in
// the response body only when otp.return_in_response allows and, for a login
// code, the client is a login UI (see writeOTP).
func (s *Server) otpRequest(r *http.Request, c *apiCaller, kind, sessionID string) provider.OTPRequest {
	return provider.OTPRequest{Kind: kind, User: c.user, SessionID: sessionID, ClientID: c.principal.ClientID,
		IP: s.clientIP(r), InResponse: s.p.Config().OTP.ReturnInResponse, LoginUI: c.principal.LoginUI,
		// The mail's language: the login UI's Accept-Language, as its user's.
		Locale: s.pages.Locale(r).Tag()}
}

// writeOTP answers a freshly issued code, putting it in the body only when
// the provider let it leave in the response (its otp.issued audit event
// says which).
func (s *Server) writeOTP(w http.ResponseWriter, issued *provider.IssuedOTP, status int) {
	// Truncated, not rounded: the code never outlives what the answer says.
	resp := otpResponse{ExpiresAt: paceTime(issued.ExpiresAt.Truncate(time.Millisecond))}
	if issued.InResponse {
		resp.OTP = issued.Code
	}
	writeJSON(w, status, resp)
}

type verifyOTPBody struct {
	OTP   *string  `json:"otp"`
	Types []string `json:"types"`
}

// defaultVerifyTypes is PACE's documented default for VerifyOTP.
var defaultVerifyTypes = []string{provider.OTPKindDeviceTOTP, provider.OTPKindAccount}

// verifyOTP is POST {prefix}/user/otp/verify.
func (s *Server) verifyOTP(w http.ResponseWriter, r *http.Request, c *apiCaller) error {
	var body verifyOTPBody
	if err := jsonapi.DecodeBody(r, &body); err != nil {
		return err
	}
	if body.OTP == nil || *body.OTP == "" {
		return jsonapi.Validation("/otp", "otp is required.")
	}
	if len(*body.OTP) > 64 {
		return jsonapi.Validation("/otp", "otp is too long.")
	}
	types := body.Types
	if types == nil {
		types = defaultVerifyTypes
	}
	if len(types) == 0 || len(types) > 4 {
		return jsonapi.Validation("/types", "types must list one to four of login, account, totp, device-totp.")
	}
	for _, t := range types {
		switch t {
		case provider.OTPKindLogin, provider.OTPKindAccount, provider.OTPKindTOTP, provider.OTPKindDeviceTOTP:
		default:
			return jsonapi.Validation("/types", "types must list only login, account, totp or device-totp.")
		}
	}
	if _, err := s.p.VerifyOTP(r.Context(), types, c.user, c.principal.SessionID, *body.OTP); err != nil {
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

type createOTPBody struct {
	Password *string `json:"password"`
	PIN      *string `json:"pin"`
}

// createOTP is POST {prefix}/user/otp: re-authenticate with the password
// or, without one, the PIN (provider.CheckPIN, limited per user), then
// issue an account OTP (201).
func (s *Server) createOTP(w http.ResponseWriter, r *http.Request, c *apiCaller) error {
	var body createOTPBody
	if err := jsonapi.DecodeBody(r, &body); err != nil {
		return err
	}
	switch {
	case body.Password != nil:
		if _, err := s.p.Authenticate(r.Context(), c.user.Email, *body.Password, s.clientIP(r)); err != nil {
			return err
		}
	case body.PIN != nil:
		if err := s.p.CheckPIN(r.Context(), c.user, *body.PIN); err != nil {
			return err
		}
	default:
		return jsonapi.Validation("/password", "password or pin is required.")
	}
	issued, err := s.p.IssueOTP(r.Context(), s.otpRequest(r, c, provider.OTPKindAccount, ""))
	if err != nil {
		return err
	}
	s.writeOTP(w, issued, http.StatusCreated)
	return nil
}

// sendmailOTP is POST {prefix}/user/otp/sendmail: an account OTP by email only.
func (s *Server) sendmailOTP(w http.ResponseWriter, r *http.Request, c *apiCaller) error {
	req := s.otpRequest(r, c, provider.OTPKindAccount, "")
	req.InResponse = false // by mail only
	if _, err := s.p.IssueOTP(r.Context(), req); err != nil {
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}
