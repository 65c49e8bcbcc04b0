// Package plugin adds otpstep's second-factor stage — a one-time password
// sent by email — to an OAuth2 / OpenID Connect server built on ory/fosite.
// It is otpstep's public entry point: `otpstep serve` is a thin command over
// it, and teams embed it in their own fosite server.
//
// # Two modes
//
// Standalone (Options.OAuth2 nil): the plugin is otpstep itself, with its own
// fosite, signing keys, users with passwords, login pages and OAuth2
// endpoints; Mount puts every route at the router's root.
//
// Embedded (Options.OAuth2 set to the host's fosite.OAuth2Provider): the host
// owns fosite, its clients and tokens, its users and its password login. The
// plugin adds the login session's second factor: the OTP pages and the
// PACE-compatible user API (PUT /sessions/{sessionId}, VerifyOTP, …), and
// linking upstream identities (config upstreams) through the user API and
// the browser's /federated-identities/{identityProvider}/link page, all of
// which Handler(prefix) serves under the host's prefix (any router, e.g.
// net/http's ServeMux) and Mount registers on a gorilla/mux subrouter. Signing in
// with an upstream, the partner admin API and otpstep's own login stay
// standalone-only: the first factor is the host's. otpstep composes no
// fosite and creates no signing keys then; its tables (users it is told
// about, login sessions, OTP challenges, the mail outbox) live in the
// database the host gives it (Options.DB, a *gorm.DB) or in its own
// (database.dsn).
//
// # Embedded flow
//
//  1. The host's login handler checks the password and calls BeginLogin with
//     the user's id and email. The plugin records the user, starts a login
//     session (its sid; acr aal1, amr ["pwd"]) and binds the browser to it
//     with its own session cookie (login.cookie_name, path /). The host then
//     redirects the browser back to the authorize request
//     (ResumeAuthorizeURI); BeginLogin writes only the cookie.
//  2. The host's authorize endpoint is wrapped in RequireSecondFactor, which
//     parses the authorize request once and hands it on
//     (AuthorizeRequestFrom; a second NewAuthorizeRequest would fail for a
//     pushed request, PAR, whose request_uri fosite consumed), or calls
//     CheckAuthorize after its own NewAuthorizeRequest. While the
//     session has not passed the second factor, the authorize request is
//     held: a code is emailed through the Mailer and the browser goes to
//     the OTP page under the plugin's prefix, which sends it back to the
//     same authorize URL once the code is right. A login UI may pass the
//     same session through the user API instead: only the host clients
//     Options.LoginUIClient names may (any other gets 403 on PUT /sessions
//     passedLoginOTP:true, and no code in the response).
//     The gate also asks for a new login (OIDC Core §3.1.2.1): with
//     prompt=login, or a max_age the session's auth_time is older than (on
//     Options.Clock), the host's handler runs without claims
//     (CheckAuthorize: ErrReauthRequired, an ErrNoLogin), so its login runs
//     again and BeginLogin starts a new session, aal1 until its code passes;
//     ResumeAuthorizeURI leaves prompt=login and max_age out (the new login
//     answered them), and the claims then carry the new auth_time. With
//     prompt=none the gate answers login_required instead.
//  3. The session passed, the host issues the code with the session's
//     claims (ClaimsFrom, or SessionClaims(ctx, sid)): Claims.Apply puts
//     the subject (the session's and the ID token's), sid, auth_time, acr
//     (aal2) and amr (["pwd","otp"], RFC 8176) into its
//     openid.DefaultSession, so ID tokens carry them and access tokens carry
//     the subject and sid the user API needs.
//
// # Decisions an embedder should know
//
// The browser's login session is found by the plugin's cookie. A host that
// keeps the sid in its own session sets Options.SessionFromRequest instead
// (and BeginLogin then sets no cookie).
//
// The user API authenticates bearer tokens by introspecting them with the
// host's fosite (compose it with compose.OAuth2TokenIntrospectionFactory).
// The token's subject must be the user's id as given to BeginLogin, and its
// session must name the sid: Claims.Apply puts it in the ID token claims'
// Extra["sid"], which is read by default; a host session type may implement
// interface{ SessionID() string } instead, or the host sets
// Options.SessionIDFromToken (and Options.TokenSession for its session type).
//
// User ids are the host's, and must be uuids: the user API's PUT /sessions
// takes uuids for the user and the session, so BeginLogin and SyncUser
// refuse anything else (ErrInvalidUserID).
//
// Embedded, server.public_url is required (the host's URL; otpstep's
// standalone default is refused), and the dev relaxations are Options.Dev.
//
// The login UI's own client must be exempted by Options.SecondFactorRequired:
// it passes the second factor through the user API with the token its
// authorize request gets. Only the authorize endpoint RequireSecondFactor
// wraps is held: grants the plugin does not see (the password grant
// compose.ComposeAllEnabled enables, client credentials) issue tokens with
// no second factor, so compose only the factories the host serves.
//
// The user API answers 401 "The access token has no subject." for a token
// whose session has a sid and an empty subject (Claims.Apply sets it), and
// 401 "The access token's user is unknown or disabled." for a subject
// otpstep was not told about (BeginLogin, SyncUser) or a disabled user.
//
// The OTP page only returns to local paths: its own and the host's authorize
// endpoint (Options.AuthorizePaths, default /oauth2/auth).
//
// The browser's link page, and the user API's PUT federated-identities, need
// a login no older than linked_identity.reauth_max_age that has passed the
// second factor,
// whatever Options.SecondFactorRequired says: a partner trusts a linked
// identity as much as the account. A login that has not passed gets a code
// and goes through the OTP page, which returns it to the link page; one
// without a recent login gets a page asking to sign in again.
//
// # Lifecycle and instances
//
// New validates the options (an error names the Options field or the config
// key), opens storage and runs migrations when database.migrate_on_start is
// set; Migrate runs them on demand. No goroutine starts before Start, which
// runs, until Close, the outbox dispatcher that delivers mail and the purge
// of expired rows every database.purge_interval; codes issued before Start
// wait in the outbox. Shutdown takes the HTTP server and that work down in
// order (grace, drain, a last pass over the outbox), as otpstep serve does
// on SIGTERM.
//
// The package keeps no state of its own: two plugins in one process, on two
// databases and two prefixes, do not see each other's users, sessions or
// mail. If they serve the same browser origin, give them different
// login.cookie_name values, since both cookies have path /.
package plugin
