package web

import "github.com/otpstep/otpstep/provider"

// The paths of otpstep's routes, written once (the OAuth2 and OpenID Connect
// endpoints in provider, which names them in the discovery document): Mount and MountSecondFactor
// register them, the pages and redirects link to them, return-to validation
// accepts them, and tests request them. Embedded, the page routes sit under
// the host's prefix (mountInfo.base).
const (
	PathDiscovery  = "/.well-known/openid-configuration"
	PathJWKS       = provider.PathJWKS
	PathAuthorize  = provider.PathAuthorize
	PathConsent    = "/oauth2/consent"
	PathToken      = provider.PathToken
	PathIntrospect = provider.PathIntrospect
	PathRevoke     = provider.PathRevoke
	PathUserinfo   = provider.PathUserinfo
	// PathEndSession is the OpenID Connect RP-initiated logout: PathLogout's form.
	PathEndSession = provider.PathEndSession
	PathLogin      = "/login"
	PathOTP        = "/login/otp"
	PathOTPResend  = "/login/otp/resend"
	// PathOTPAuthenticator is the OTP page's second form: a code of the
	// user's authenticator app instead of the emailed one.
	PathOTPAuthenticator = "/login/otp/authenticator"
	PathLogout           = "/logout"
	// PathSettingsTOTP is the authenticator app's page: enroll one (its
	// POST begins an enrollment), confirm it with a first code, remove it.
	PathSettingsTOTP        = "/settings/totp"
	PathSettingsTOTPConfirm = "/settings/totp/confirm"
	PathSettingsTOTPDelete  = "/settings/totp/delete"
	// PathRecover is "Forgot password?": the email form; PathRecover +
	// "/code", "/authenticator", "/password" and "/done" are its next steps.
	PathRecover              = "/login/recover"
	PathRecoverCode          = "/login/recover/code"
	PathRecoverAuthenticator = "/login/recover/authenticator"
	PathRecoverPassword      = "/login/recover/password"
	PathRecoverDone          = "/login/recover/done"
	// PathFederatedIdentities is the prefix of the pages of an upstream
	// provider: PathFederatedIdentities + name + "/login", "/link", "/callback".
	PathFederatedIdentities = "/federated-identities/"
	PathStatic              = "/static/"
	PathAlive               = "/health/alive"
	// PathReady, PathMetrics and PathPprof (a prefix) are the admin
	// listener's (AdminHandler), not Mount's.
	PathReady   = "/health/ready"
	PathMetrics = "/metrics"
	PathPprof   = "/debug/pprof/"
	PathOpenAPI = "/openapi.yaml"
)
