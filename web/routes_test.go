package web

import (
	"go/ast"
	"go/parser"
	"go/token"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// TestRoutes_PathsAreWrittenOnce: route paths were string literals in
// server.go, embedded.go, the pages and discovery. Outside routes.go and
// provider/endpoints.go, no non-test source of web, plugin or provider
// spells one (alone or before a query).
func TestRoutes_PathsAreWrittenOnce(t *testing.T) {
	paths := []string{PathDiscovery, PathJWKS, PathAuthorize, PathConsent, PathToken, PathIntrospect, PathRevoke, PathUserinfo,
		PathEndSession, PathLogin, PathOTP, PathOTPResend, PathOTPAuthenticator, PathLogout, PathSettingsTOTP, PathSettingsTOTPConfirm, PathSettingsTOTPDelete, PathFederatedIdentities, PathStatic, PathAlive, PathReady,
		PathMetrics, PathPprof, PathOpenAPI, PathRecover, PathRecoverCode, PathRecoverAuthenticator, PathRecoverPassword, PathRecoverDone}
	fset := token.NewFileSet()
	for _, dir := range []string{".", "../plugin", "../provider"} {
		files, err := filepath.Glob(filepath.Join(dir, "*.go"))
		if err != nil {
			t.Fatal(err)
		}
		for _, path := range files {
			if base := filepath.Base(path); strings.HasSuffix(base, "_test.go") || base == "routes.go" || base == "endpoints.go" {
				continue
			}
			f, err := parser.ParseFile(fset, path, nil, 0)
			if err != nil {
				t.Fatal(err)
			}
			ast.Inspect(f, func(n ast.Node) bool {
				lit, ok := n.(*ast.BasicLit)
				if !ok || lit.Kind != token.STRING {
					return true
				}
				v, err := strconv.Unquote(lit.Value)
				if err != nil {
					return true
				}
				for _, p := range paths {
					if v == p || strings.HasPrefix(v, p+"?") {
						t.Errorf("%s: %q is a route path; use the Path* constant of web/routes.go", fset.Position(lit.Pos()), v)
						break
					}
				}
				return true
			})
		}
	}
}
