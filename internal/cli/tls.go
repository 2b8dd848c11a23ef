package cli

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/baton-sched/baton/tlsconf"
	pflag "github.com/spf13/pflag"
)

// The tls commands make the cluster's certificates, as `nomad tls` does:
// a CA, then one certificate per server (named after its node id), per
// executor (named after its id) and per user or program (clients).

func init() {
	register(&command{name: "tls ca create", summary: "create the cluster's certificate authority (baton-ca.pem, baton-ca-key.pem)", examples: "batonctl tls ca create                 # baton-ca.pem, baton-ca-key.pem here\nbatonctl tls ca create --dir /etc/baton",
		run: runCACreate, flags: caFlags})
	register(&command{name: "tls cert create", args: "-server|-executor|-client -name NAME", summary: "create a certificate signed by the CA for a server, an executor or a client", examples: "batonctl tls cert create --server --name a      # one per schedd, named after its -id\nbatonctl tls cert create --executor --name e1   # one per execd\nbatonctl tls cert create --client --name alice  # one per user or program",
		run: runCertCreate, flags: certFlags})
}

var caOpts struct {
	dir, name string
	days      int
}

func caFlags(fs *pflag.FlagSet) {
	fs.StringVar(&caOpts.dir, "dir", ".", "where to write the CA's files")
	fs.StringVar(&caOpts.name, "common-name", "Baton CA", "the CA's name")
	fs.IntVar(&caOpts.days, "days", 5*365, "how long the CA is valid")
}

func runCACreate(ctx context.Context, c *common, args []string) error {
	if len(args) > 0 {
		return usagef("tls ca create takes no arguments")
	}
	cert, key, err := tlsconf.WriteCA(caOpts.dir, caOpts.name, time.Duration(caOpts.days)*24*time.Hour)
	if err != nil {
		return err
	}
	fmt.Fprintf(c.env.Stdout, "==> CA certificate saved to: %s\n==> CA key saved to: %s (keep it secret: it signs certificates)\n", cert, key)
	return nil
}

var certOpts struct {
	server, executor, client bool
	name, dir, ca, key       string
	hosts                    string
	days                     int
}

func certFlags(fs *pflag.FlagSet) {
	fs.BoolVar(&certOpts.server, "server", false, "a scheduler node's certificate (name: its -id)")
	fs.BoolVar(&certOpts.executor, "executor", false, "an executor's certificate (name: its id)")
	fs.BoolVar(&certOpts.client, "client", false, "a client's certificate, for batonctl and programs (name: who holds it)")
	fs.StringVar(&certOpts.name, "name", "", "the holder's name (required)")
	fs.StringVar(&certOpts.dir, "dir", ".", "where to write the certificate and key")
	fs.StringVar(&certOpts.ca, "ca", tlsconf.CAFile, "the CA certificate")
	fs.StringVar(&certOpts.key, "ca-key", tlsconf.CAKeyFile, "the CA key")
	fs.StringVar(&certOpts.hosts, "additional-dnsname", "", "extra DNS names or IP addresses the holder serves on, comma-separated (localhost and 127.0.0.1 are always in servers' and executors' certificates)")
	fs.IntVar(&certOpts.days, "days", 365, "how long the certificate is valid")
}

func runCertCreate(ctx context.Context, c *common, args []string) error {
	if len(args) > 0 {
		return usagef("tls cert create takes flags only")
	}
	var roles []string
	for _, r := range []struct {
		set  bool
		role string
	}{{certOpts.server, tlsconf.RoleServer}, {certOpts.executor, tlsconf.RoleExecutor}, {certOpts.client, tlsconf.RoleClient}} {
		if r.set {
			roles = append(roles, r.role)
		}
	}
	if len(roles) != 1 {
		return usagef("tls cert create needs exactly one of -server, -executor and -client")
	}
	if certOpts.name == "" {
		return usagef("tls cert create needs -name")
	}
	var hosts []string
	for _, h := range strings.Split(certOpts.hosts, ",") {
		if h = strings.TrimSpace(h); h != "" {
			hosts = append(hosts, h)
		}
	}
	f, err := tlsconf.WriteCert(certOpts.ca, certOpts.key, certOpts.dir, tlsconf.CertRequest{Role: roles[0], Name: certOpts.name, Hosts: hosts,
		Valid: time.Duration(certOpts.days) * 24 * time.Hour})
	if err != nil {
		return err
	}
	fmt.Fprintf(c.env.Stdout, "==> %s certificate for %s saved to: %s\n==> key saved to: %s\n", roles[0], certOpts.name, f.Cert, f.Key)
	return nil
}
