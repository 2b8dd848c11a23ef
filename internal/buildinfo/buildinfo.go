// Package buildinfo says which build of Baton a process is: the module
// version and VCS revision Go recorded in the binary, for `batonctl
// version` and the baton_build_info metric every process exports.
package buildinfo

import (
	"fmt"
	"runtime"
	"runtime/debug"

	"github.com/prometheus/client_golang/prometheus"
)

// Info is a build's identity.
type Info struct {
	Version   string // the main module's version ("(devel)" for a source build)
	Revision  string // the VCS revision, "+dirty" when modified ("" if unknown)
	GoVersion string
}

// Get returns the running binary's build information.
func Get() Info {
	info := Info{Version: "(devel)", GoVersion: runtime.Version()}
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		return info
	}
	if v := bi.Main.Version; v != "" {
		info.Version = v
	}
	dirty := false
	for _, s := range bi.Settings {
		switch s.Key {
		case "vcs.revision":
			info.Revision = s.Value
		case "vcs.modified":
			dirty = s.Value == "true"
		}
	}
	if dirty && info.Revision != "" {
		info.Revision += "+dirty"
	}
	return info
}

// String is the build in one line.
func (i Info) String() string {
	rev := i.Revision
	if rev == "" {
		rev = "unknown revision"
	}
	return fmt.Sprintf("baton %s (%s, %s)", i.Version, rev, i.GoVersion)
}

// Collector is the baton_build_info gauge: 1, labelled with the build.
func Collector() prometheus.Collector {
	i := Get()
	g := prometheus.NewGauge(prometheus.GaugeOpts{Name: "baton_build_info",
		Help:        "The build of this process: always 1, its labels say which (version, revision, go version).",
		ConstLabels: prometheus.Labels{"version": i.Version, "revision": i.Revision, "goversion": i.GoVersion}})
	g.Set(1)
	return g
}
