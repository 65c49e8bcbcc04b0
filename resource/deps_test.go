package resource

import (
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
)

// The package is for resource servers, which must not pull in otpstep's
// server: `go list -deps` of it (not of its tests) names only the standard
// library and the package itself.
func TestResource_ImportsOnlyTheStandardLibrary(t *testing.T) {
	goTool := filepath.Join(runtime.GOROOT(), "bin", "go")
	out, err := exec.Command(goTool, "list", "-deps", "-f", "{{if not .Standard}}{{.ImportPath}}{{end}}", ".").CombinedOutput()
	if err != nil {
		t.Fatalf("go list -deps: %v\n%s", err, out)
	}
	for _, dep := range strings.Fields(string(out)) {
		if dep != "github.com/otpstep/otpstep/resource" {
			t.Errorf("package resource depends on %s; it may import the standard library only", dep)
		}
	}
}
