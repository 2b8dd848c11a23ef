package buildinfo

import (
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
)

func TestBuildInfo(t *testing.T) {
	i := Get()
	if i.Version == "" || !strings.HasPrefix(i.GoVersion, "go") || !strings.HasPrefix(i.String(), "baton ") {
		t.Fatalf("build info %+v (%s)", i, i)
	}
	reg := prometheus.NewRegistry()
	reg.MustRegister(Collector())
	mfs, err := reg.Gather()
	if err != nil || len(mfs) != 1 || mfs[0].GetName() != "baton_build_info" || len(mfs[0].GetMetric()) != 1 || mfs[0].GetMetric()[0].GetGauge().GetValue() != 1 {
		t.Fatalf("baton_build_info: %v %v", mfs, err)
	}
}
