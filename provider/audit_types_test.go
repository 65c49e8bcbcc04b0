package provider

import (
	"fmt"
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
// and cmd names its type with one of the Audit* constants of audit.go (the
// one list), or takes it from a parameter of a helper (LinkRequest.audit)
// every call of which passes such a constant.
func TestAuditTypes_AreConstants(t *testing.T) {
	fset := token.NewFileSet()
	known := auditConstants(t, fset)
	if len(known) < 20 {
		t.Fatalf("audit.go declares %d Audit* constants; the list was not found", len(known))
	}
	var files []*ast.File
	for _, dir := range []string{".", "../web", "../plugin", "../cmd/otpstep"} {
		paths, err := filepath.Glob(filepath.Join(dir, "*.go"))
		if err != nil {
			t.Fatal(err)
		}
		for _, path := range paths {
			if strings.HasSuffix(path, "_test.go") {
				continue
			}
			f, err := parser.ParseFile(fset, path, nil, 0)
			if err != nil {
				t.Fatal(err)
			}
			files = append(files, f)
		}
	}
	// forwarders: helper name → the index of the parameter its AuditEvent's
	// Type comes from.
	forwarders := map[string]int{}
	for _, f := range files {
		for _, d := range f.Decls {
			fd, ok := d.(*ast.FuncDecl)
			if !ok || fd.Body == nil {
				continue
			}
			params := paramIndex(fd)
			ast.Inspect(fd.Body, func(n ast.Node) bool {
				v, ok := auditTypeOf(n)
				if !ok {
					return true
				}
				if id, isIdent := v.(*ast.Ident); isIdent && !known[id.Name] {
					if i, isParam := params[id.Name]; isParam {
						forwarders[fd.Name.Name] = i
						return true
					}
				}
				if !known[constName(v)] {
					t.Errorf("%s: audit type %s is not one of audit.go's Audit* constants", fset.Position(v.Pos()), exprString(v))
				}
				return true
			})
		}
	}
	calls := 0
	for _, f := range files {
		ast.Inspect(f, func(n ast.Node) bool {
			call, ok := n.(*ast.CallExpr)
			if !ok {
				return true
			}
			sel, ok := call.Fun.(*ast.SelectorExpr)
			if !ok {
				return true
			}
			if i, ok := forwarders[sel.Sel.Name]; ok && i < len(call.Args) {
				calls++
				if !known[constName(call.Args[i])] {
					t.Errorf("%s: %s gets audit type %s, not an Audit* constant", fset.Position(call.Pos()), sel.Sel.Name, exprString(call.Args[i]))
				}
			}
			return true
		})
	}
	if _, ok := forwarders["audit"]; !ok || calls == 0 {
		t.Errorf("LinkRequest.audit not found as a helper that takes the type (forwarders %v, %d calls)", forwarders, calls)
	}
}

// auditTypeOf is the Type value of n when n is an AuditEvent literal that
// sets it.
func auditTypeOf(n ast.Node) (ast.Expr, bool) {
	lit, ok := n.(*ast.CompositeLit)
	if !ok || !strings.HasSuffix(typeName(lit.Type), "AuditEvent") {
		return nil, false
	}
	for _, el := range lit.Elts {
		if kv, ok := el.(*ast.KeyValueExpr); ok {
			if k, _ := kv.Key.(*ast.Ident); k != nil && k.Name == "Type" {
				return kv.Value, true
			}
		}
	}
	return nil, false
}

// paramIndex maps fd's parameter names to their positions.
func paramIndex(fd *ast.FuncDecl) map[string]int {
	out := map[string]int{}
	i := 0
	for _, field := range fd.Type.Params.List {
		for _, n := range field.Names {
			out[n.Name] = i
			i++
		}
		if len(field.Names) == 0 {
			i++
		}
	}
	return out
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

// auditConstants are the names of the constants audit.go declares: the one
// list of audit event types.
func auditConstants(t *testing.T, fset *token.FileSet) map[string]bool {
	t.Helper()
	f, err := parser.ParseFile(fset, "audit.go", nil, 0)
	if err != nil {
		t.Fatal(err)
	}
	known := map[string]bool{}
	for _, d := range f.Decls {
		gd, ok := d.(*ast.GenDecl)
		if !ok || gd.Tok != token.CONST {
			continue
		}
		for _, spec := range gd.Specs {
			for _, n := range spec.(*ast.ValueSpec).Names {
				if strings.HasPrefix(n.Name, "Audit") {
					known[n.Name] = true
				}
			}
		}
	}
	return known
}

// constName is the constant e names: Audit… in package provider, or
// provider.Audit… elsewhere; "" for anything else (a literal, a variable, a
// call).
func constName(e ast.Expr) string {
	switch e := e.(type) {
	case *ast.Ident:
		return e.Name
	case *ast.SelectorExpr:
		if x, ok := e.X.(*ast.Ident); ok && x.Name == "provider" {
			return e.Sel.Name
		}
	}
	return ""
}

func exprString(e ast.Expr) string {
	if lit, ok := e.(*ast.BasicLit); ok {
		return lit.Value
	}
	return fmt.Sprintf("%T", e)
}
