package cli

import (
	"context"
	"fmt"

	"github.com/baton-sched/baton/internal/buildinfo"
)

func init() {
	register(&command{name: "version", summary: "batonctl's build: version, VCS revision, Go version (every process exports it as baton_build_info on /metrics)", examples: "batonctl version\nbatonctl version -o json",
		run: runVersion})
}

func runVersion(ctx context.Context, c *common, args []string) error {
	if len(args) > 0 {
		return usagef("version takes no arguments")
	}
	i := buildinfo.Get()
	if c.json() {
		return printJSON(c.env.Stdout, map[string]string{"version": i.Version, "revision": i.Revision, "go_version": i.GoVersion})
	}
	fmt.Fprintln(c.env.Stdout, i.String())
	return nil
}
