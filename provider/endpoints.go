package provider

// The paths of the OAuth2 and OpenID Connect endpoints, under the issuer:
// Discovery and fosite's TokenURL name them here; web registers them (its
// Path* constants are these).
const (
	PathAuthorize  = "/oauth2/auth"
	PathToken      = "/oauth2/token"
	PathIntrospect = "/oauth2/introspect"
	PathRevoke     = "/oauth2/revoke"
	PathUserinfo   = "/userinfo"
	PathJWKS       = "/.well-known/jwks.json"
	PathEndSession = "/oauth2/sessions/logout"
)
