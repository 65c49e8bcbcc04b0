package provider

import (
	"go/ast"
	"go/parser"
	"go/token"
	"path/filepath"
	"strings"
	"testing"
)

// TestAuditTypes_AreConstants: audit event types were string literals in a
// dozen places beside four constants, so a typo made a new event type no
// query finds. Every AuditEvent built outside tests in provider, web, plugin
// and cmd names its type with one of the Audit* constants of audit.go.
func TestAuditTypes_AreConstants(t *testing.T) {
	fset := token.NewFileSet()
	for _, dir := range []string{".", "../web", "../plugin", "../cmd/otpstep"} {
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
			ast.Inspect(f, func(n ast.Node) bool {
				lit, ok := n.(*ast.CompositeLit)
				if !ok || !strings.HasSuffix(typeName(lit.Type), "AuditEvent") {
					return true
				}
				for _, el := range lit.Elts {
					kv, ok := el.(*ast.KeyValueExpr)
					if k, _ := kv.Key.(*ast.Ident); !ok || k == nil || k.Name != "Type" {
						continue
					}
					if _, isLit := kv.Value.(*ast.BasicLit); isLit {
						t.Errorf("%s: audit type %s is a literal, not an Audit* constant", fset.Position(kv.Pos()), kv.Value.(*ast.BasicLit).Value)
					}
				}
				return true
			})
		}
	}
}

func typeName(e ast.Expr) string {
	switch e := e.(type) {
	case *ast.Ident:
		return e.Name
	case *ast.SelectorExpr:
		return typeName(e.X) + "." + e.Sel.Name
	}
	return ""
}
