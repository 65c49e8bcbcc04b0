package provider

import (
	"context"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/ory/fosite"
	"github.com/ory/fosite/handler/openid"

	"github.com/otpstep/otpstep/storage"
)

// Prompt values otpstep honours (OIDC Core §3.1.2.1), advertised as
// prompt_values_supported: none answers without a page or fails, login
// asks for the password (and then the second factor) again, consent shows
// the consent page even to a client that skips it. select_account is not
// offered (one account per browser session) and is refused as an unknown
// value.
var PromptValues = []string{"none", "login", "consent"}

// authTimeSkew is how far a login's auth_time may lie ahead of this
// instance's clock (another instance on the same database stamped it):
// more means the session is corrupt, not that the clocks differ.
const authTimeSkew = 5 * time.Second

// CheckPrompt refuses a prompt parameter that OIDC Core §3.1.2.1 or
// otpstep does not allow: a value outside PromptValues, or none with any
// other value ("If this parameter contains none with any other value, an
// error is returned"). Both are invalid_request.
func CheckPrompt(form url.Values) error {
	prompts := ParseAuthorizeParams(form).Prompts
	for _, v := range prompts {
		if !slices.Contains(PromptValues, v) {
			return fosite.ErrInvalidRequest.WithHintf("The prompt value %q is not supported (supported: %s).", v, strings.Join(PromptValues, " "))
		}
	}
	if slices.Contains(prompts, "none") && len(prompts) > 1 {
		return fosite.ErrInvalidRequest.WithHint("prompt=none cannot be combined with other prompt values.")
	}
	return nil
}

// MaxAge is the request's max_age in seconds and whether it carries a
// valid one (a non-negative integer, OIDC Core §3.1.2.1).
func MaxAge(form url.Values) (time.Duration, bool) {
	n, err := strconv.ParseInt(form.Get("max_age"), 10, 64)
	if err != nil || n < 0 || n > int64(time.Duration(1<<63-1)/time.Second) {
		return 0, false
	}
	return time.Duration(n) * time.Second, true
}

// NeedsReauthentication reports whether the login session ls cannot answer
// an authorize request with form as of now (OIDC Core §3.1.2.1): the
// request asks for a new login (prompt=login), or its max_age is exceeded
// ("If the elapsed time is greater than the allowed number of seconds, the
// End-User MUST be re-authenticated"; elapsed time counts whole seconds, as
// auth_time does). The standalone authorize endpoint and an embedder's gate
// (plugin.CheckAuthorize) both ask it; a new login that follows satisfies
// the request (ReauthSatisfied).
func NeedsReauthentication(ls *storage.LoginSession, form url.Values, now time.Time) bool {
	if ParseAuthorizeParams(form).Prompt("login") {
		return true
	}
	maxAge, ok := MaxAge(form)
	return ok && now.Unix()-ls.AuthTime.Unix() > int64(maxAge/time.Second)
}

// ReauthSatisfied is an authorize request's form for the visit after the
// login about to happen (or the second factor about to be asked after
// one): without prompt=login and max_age, which that login satisfies, so
// coming back does not ask for it again (and a user who takes longer than
// max_age over the emailed code is not sent round in a loop). The ID
// token's auth_time is the new login's.
func ReauthSatisfied(form url.Values) url.Values {
	out := url.Values{}
	for k, v := range form {
		out[k] = slices.Clone(v)
	}
	out.Del("max_age")
	if !out.Has("prompt") {
		return out
	}
	kept := slices.DeleteFunc(ParseAuthorizeParams(form).Prompts, func(v string) bool { return v == "login" })
	if len(kept) == 0 {
		out.Del("prompt")
	} else {
		out.Set("prompt", strings.Join(kept, " "))
	}
	return out
}

// oidcParameters are the authorize parameters kept with the code for the
// token endpoint (the ID token's nonce among them).
var oidcParameters = []string{"grant_type", "max_age", "prompt", "acr_values", "id_token_hint", "nonce"}

// openIDConnectExplicit is the OpenID Connect part of the code flow on
// otpstep's clock. The token endpoint is fosite's
// (openid.OpenIDConnectExplicitHandler, signing through idTokenStrategy);
// the authorize endpoint is its own: fosite's checks of auth_time read the
// machine's clock, and it decodes id_token_hint with the default key only,
// so an ES256 hint failed while RS256 was the default.
type openIDConnectExplicit struct {
	*openid.OpenIDConnectExplicitHandler
	storage openid.OpenIDConnectRequestStorage
	keys    *KeySet
	issuer  string
	clock   Clock
	entropy int
}

// HandleAuthorizeEndpointRequest checks an OpenID Connect code request
// once the user is known (OIDC Core §3.1.2.2) and keeps its parameters
// with the code:
//
//  1. redirect_uri is present (§3.1.2.1: REQUIRED);
//  2. prompt holds supported values only (CheckPrompt);
//  3. the session has a subject and an auth_time not ahead of the clock;
//  4. max_age is met and prompt=login was answered by a new login (the web
//     layer sends the browser to the login first; it drops both from the
//     request that comes back, ReauthSatisfied), else login_required;
//  5. a nonce has the minimum entropy (fosite.MinParameterEntropy);
//  6. id_token_hint, when present, is an ID token of ours (any of our
//     keys, expired accepted, §3.1.2.1) about the session's subject, else
//     login_required.
func (h *openIDConnectExplicit) HandleAuthorizeEndpointRequest(ctx context.Context, ar fosite.AuthorizeRequester, resp fosite.AuthorizeResponder) error {
	if !ar.GetGrantedScopes().Has("openid") || !ar.GetResponseTypes().ExactOne("code") {
		return nil
	}
	if resp.GetCode() == "" {
		return fosite.ErrMisconfiguration.WithDebug("The authorization code has not been issued yet.")
	}
	form := ar.GetRequestForm()
	if form.Get("redirect_uri") == "" {
		return fosite.ErrInvalidRequest.WithHint("The 'redirect_uri' parameter is required when using OpenID Connect 1.0.")
	}
	if err := CheckPrompt(form); err != nil {
		return err
	}
	sess, ok := ar.GetSession().(openid.Session)
	if !ok || sess.IDTokenClaims().Subject == "" {
		return fosite.ErrServerError.WithDebug("The session is not an OpenID Connect session with a subject.")
	}
	claims := sess.IDTokenClaims()
	now := h.clock()
	if claims.AuthTime.IsZero() || claims.AuthTime.After(now.Add(authTimeSkew)) {
		return fosite.ErrServerError.WithDebugf("The session's auth_time %s is missing or ahead of the clock (%s).", claims.AuthTime, now)
	}
	if NeedsReauthentication(&storage.LoginSession{AuthTime: claims.AuthTime}, form, now) {
		return fosite.ErrLoginRequired.WithHint("The request asks for a newer login (prompt=login or max_age).")
	}
	if nonce := form.Get("nonce"); nonce != "" && len(nonce) < h.entropy {
		return fosite.ErrInsufficientEntropy.WithHintf("Parameter 'nonce' is set but does not satisfy the minimum entropy of %d characters.", h.entropy)
	}
	if raw := form.Get("id_token_hint"); raw != "" {
		hint, err := verifyIDTokenHint(ctx, h.keys, h.issuer, raw)
		if err != nil {
			if storage.IsUnavailable(ctx, err) {
				return fosite.ErrTemporarilyUnavailable.WithWrap(err)
			}
			return fosite.ErrInvalidRequest.WithHint("The id_token_hint is not an ID token of this provider.").WithDebug(err.Error())
		}
		if hint.Subject != claims.Subject {
			return fosite.ErrLoginRequired.WithHint("The id_token_hint names another user than the one signed in.")
		}
	}
	if err := h.storage.CreateOpenIDConnectSession(ctx, resp.GetCode(), ar.Sanitize(oidcParameters)); err != nil {
		return fosite.ErrServerError.WithWrap(err).WithDebug(err.Error())
	}
	return nil
}
