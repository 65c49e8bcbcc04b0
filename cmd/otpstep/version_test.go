package main

import (
	"runtime/debug"
	"strings"
	"testing"
)

func TestVersion_ReadsModuleRevisionAndTimeFromTheBuildInfo(t *testing.T) {
	v := readBuildVersion(func() (*debug.BuildInfo, bool) {
		return &debug.BuildInfo{
			GoVersion: "go1.26.8",
			Main:      debug.Module{Path: "github.com/otpstep/otpstep", Version: "v0.3.0"},
			Settings: []debug.BuildSetting{
				{Key: "vcs.revision", Value: "853ffdf0"},
				{Key: "vcs.time", Value: "2026-12-07T01:00:00Z"},
				{Key: "vcs.modified", Value: "true"},
			},
		}, true
	})
	want := "otpstep v0.3.0 revision 853ffdf0 (modified) built from a commit of 2026-12-07T01:00:00Z go1.26.8"
	if got := v.String(); got != want {
		t.Fatalf("got %q, want %q", got, want)
	}
	if got := readBuildVersion(func() (*debug.BuildInfo, bool) { return nil, false }).String(); got != "otpstep (unknown)" {
		t.Fatalf("without build info: %q", got)
	}
}

func TestVersion_TheCommandPrintsOneLine(t *testing.T) {
	out, err := newCLI(t).run("version")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(out, "otpstep ") || strings.Count(out, "\n") != 1 {
		t.Fatalf("version printed %q", out)
	}
}
