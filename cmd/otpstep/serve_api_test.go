package main

import (
	"go/parser"
	"go/token"
	"strconv"
	"strings"
	"testing"
)

// TestServe_UsesOnlyThePublicPluginAPI: `otpstep serve` (serve.go, and the
// configuration, logger and plugin helpers of root.go) imports nothing of
// otpstep but package plugin, so everything serve needs is public there —
// what an embedder can build, serve is built from.
func TestServe_UsesOnlyThePublicPluginAPI(t *testing.T) {
	fset := token.NewFileSet()
	for _, name := range []string{"serve.go", "root.go"} {
		f, err := parser.ParseFile(fset, name, nil, parser.ImportsOnly)
		if err != nil {
			t.Fatal(err)
		}
		for _, imp := range f.Imports {
			path, _ := strconv.Unquote(imp.Path.Value)
			if strings.HasPrefix(path, "github.com/otpstep/otpstep/") && path != "github.com/otpstep/otpstep/plugin" {
				t.Errorf("%s imports %s: serve must use only the public plugin API", name, path)
			}
		}
	}
}
