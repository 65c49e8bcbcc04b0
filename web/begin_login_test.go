package web

import (
	"go/ast"
	"go/parser"
	"go/token"
	"path/filepath"
	"strings"
	"testing"
)

// TestBeginLogin_IsTheOnlyStartOfALoginSession: the login form, the upstream
// sign-in and plugin.BeginLogin each ended the old session, started one,
// audited and set the cookie in their own words. Outside tests, only
// Server.BeginLogin calls Provider.StartLoginSession in web and plugin.
func TestBeginLogin_IsTheOnlyStartOfALoginSession(t *testing.T) {
	fset := token.NewFileSet()
	for _, dir := range []string{".", "../plugin"} {
		files, err := filepath.Glob(filepath.Join(dir, "*.go"))
		if err != nil {
			t.Fatal(err)
		}
		for _, path := range files {
			if strings.HasSuffix(path, "_test.go") {
				continue
			}
			f, err := parser.ParseFile(fset, path, nil, 0)
			if err != nil {
				t.Fatal(err)
			}
			for _, decl := range f.Decls {
				fn, ok := decl.(*ast.FuncDecl)
				if !ok || fn.Body == nil || fn.Recv != nil && fn.Name.Name == "BeginLogin" && dir == "." {
					continue
				}
				ast.Inspect(fn.Body, func(n ast.Node) bool {
					if sel, ok := n.(*ast.SelectorExpr); ok && sel.Sel.Name == "StartLoginSession" {
						t.Errorf("%s: %s starts a login session itself; call Server.BeginLogin", fset.Position(sel.Pos()), fn.Name.Name)
					}
					return true
				})
			}
		}
	}
}
