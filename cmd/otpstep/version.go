package main

import (
	"fmt"
	"runtime/debug"

	"github.com/spf13/cobra"
)

// buildVersion is what the binary knows of its own build: the module
// version, and the VCS revision and time that `go build` stamps into it.
type buildVersion struct {
	Module   string
	Version  string
	Revision string
	Time     string
	Modified bool
	Go       string
}

// readBuildVersion reads the build info through read (debug.ReadBuildInfo
// in the binary; a fixed value in tests).
func readBuildVersion(read func() (*debug.BuildInfo, bool)) buildVersion {
	v := buildVersion{Version: "(unknown)"}
	info, ok := read()
	if !ok {
		return v
	}
	v.Module, v.Go = info.Main.Path, info.GoVersion
	if info.Main.Version != "" {
		v.Version = info.Main.Version
	}
	for _, s := range info.Settings {
		switch s.Key {
		case "vcs.revision":
			v.Revision = s.Value
		case "vcs.time":
			v.Time = s.Value
		case "vcs.modified":
			v.Modified = s.Value == "true"
		}
	}
	return v
}

func (v buildVersion) String() string {
	s := fmt.Sprintf("otpstep %s", v.Version)
	if v.Revision != "" {
		s += " revision " + v.Revision
		if v.Modified {
			s += " (modified)"
		}
	}
	if v.Time != "" {
		s += " built from a commit of " + v.Time
	}
	if v.Go != "" {
		s += " " + v.Go
	}
	return s
}

func (a *app) versionCommand() *cobra.Command {
	return &cobra.Command{
		Use:   "version",
		Short: "Print the module version, VCS revision and commit time of this binary",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			_, err := fmt.Fprintln(a.out, readBuildVersion(debug.ReadBuildInfo))
			return err
		},
	}
}
