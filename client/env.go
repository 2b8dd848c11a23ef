package client

import (
	"fmt"
	"os"

	"github.com/baton-sched/baton/tlsconf"
)

// FromEnv fills what opts leaves unset from the environment, as batonctl
// does: BATON_CACERT, BATON_CLIENT_CERT and BATON_CLIENT_KEY (mutual TLS
// with the cluster's CA) and BATON_TOKEN (the ACL token).
func FromEnv(opts Options) (Options, error) {
	if opts.Token == "" {
		opts.Token = os.Getenv("BATON_TOKEN")
	}
	if opts.TLS == nil {
		f := tlsconf.Files{CA: os.Getenv("BATON_CACERT"), Cert: os.Getenv("BATON_CLIENT_CERT"), Key: os.Getenv("BATON_CLIENT_KEY")}
		if f.Enabled() {
			c, err := tlsconf.Load(f)
			if err != nil {
				return opts, fmt.Errorf("client: BATON_CACERT, BATON_CLIENT_CERT, BATON_CLIENT_KEY: %w", err)
			}
			opts.TLS = c.Client(tlsconf.RoleServer)
		}
	}
	return opts, nil
}
