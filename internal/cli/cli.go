package cli

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"sort"
	"strings"
	"syscall"
	"time"

	"github.com/baton-sched/baton/client"
	"github.com/baton-sched/baton/tlsconf"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
)

// Env is what a command runs with.
type Env struct {
	Stdout, Stderr io.Writer
	// Getenv reads the environment (os.Getenv by default).
	Getenv func(string) string
}

// usageError is a command line that makes no sense: exit code 2.
type usageError struct{ msg string }

func (e usageError) Error() string { return e.msg }

func usagef(format string, args ...any) error { return usageError{fmt.Sprintf(format, args...)} }

// common holds the flags every command takes.
type common struct {
	addr    string
	output  string
	timeout time.Duration
	stale   bool
	env     Env
	tls     tlsconf.Files
	token   string
}

func (c *common) register(fs *flag.FlagSet) {
	fs.StringVar(&c.addr, "addr", c.addr, "API addresses of quorum members, comma-separated (default $BATON_ADDR, else 127.0.0.1:7101)")
	fs.StringVar(&c.output, "o", c.output, "output: table or json")
	fs.DurationVar(&c.timeout, "timeout", c.timeout, "give up after this long")
	fs.BoolVar(&c.stale, "stale", c.stale, "read from the answering member's replica instead of through the leader (faster, may lag)")
	fs.StringVar(&c.tls.CA, "ca-file", c.tls.CA, "the cluster's CA certificate, for TLS (default $BATON_CACERT)")
	fs.StringVar(&c.tls.Cert, "cert-file", c.tls.Cert, "a client certificate of the CA (default $BATON_CLIENT_CERT)")
	fs.StringVar(&c.tls.Key, "key-file", c.tls.Key, "the key of -cert-file (default $BATON_CLIENT_KEY)")
	fs.StringVar(&c.token, "token", c.token, "the ACL token calls carry (default $BATON_TOKEN)")
}

// options returns the client options the flags and environment ask for.
func (c *common) options() (client.Options, error) {
	opts := client.Options{RetryFor: c.timeout, Token: c.token}
	if opts.Token == "" {
		opts.Token = c.env.Getenv("BATON_TOKEN")
	}
	f := c.tls
	for _, v := range []struct {
		dst *string
		env string
	}{{&f.CA, "BATON_CACERT"}, {&f.Cert, "BATON_CLIENT_CERT"}, {&f.Key, "BATON_CLIENT_KEY"}} {
		if *v.dst == "" {
			*v.dst = c.env.Getenv(v.env)
		}
	}
	if f.Enabled() {
		tc, err := tlsconf.Load(f)
		if err != nil {
			return opts, err
		}
		opts.TLS = tc.Client(tlsconf.RoleServer)
	}
	return opts, nil
}

func (c *common) dial() (*client.Client, error) {
	addr := c.addr
	if addr == "" {
		addr = c.env.Getenv("BATON_ADDR")
	}
	if addr == "" {
		addr = "127.0.0.1:7101"
	}
	opts, err := c.options()
	if err != nil {
		return nil, err
	}
	return client.Dial([]string{addr}, opts)
}

func (c *common) json() bool { return c.output == "json" }

// command is one batonctl command.
type command struct {
	name    string // "job status"
	args    string // "ID"
	summary string
	run     func(ctx context.Context, c *common, fs *flag.FlagSet, args []string) error
	flags   func(fs *flag.FlagSet) // extra flags
}

var commands []*command

func register(c *command) { commands = append(commands, c) }

// Main runs batonctl with os.Args and the process environment.
func Main() int {
	return Run(os.Args[1:], Env{Stdout: os.Stdout, Stderr: os.Stderr, Getenv: os.Getenv})
}

// Run runs batonctl and returns its exit code.
func Run(args []string, env Env) int {
	if env.Getenv == nil {
		env.Getenv = os.Getenv
	}
	c := &common{output: "table", timeout: 30 * time.Second, env: env}
	global := flag.NewFlagSet("batonctl", flag.ContinueOnError)
	global.SetOutput(env.Stderr)
	c.register(global)
	global.Usage = func() { usage(env.Stderr) }
	if err := global.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	rest := global.Args()
	cmd, args := find(rest)
	if cmd == nil {
		if len(rest) == 0 || rest[0] == "help" {
			usage(env.Stderr)
			if len(rest) == 0 {
				return 2
			}
			return 0
		}
		fmt.Fprintf(env.Stderr, "batonctl: unknown command %q\n", strings.Join(rest, " "))
		usage(env.Stderr)
		return 2
	}
	fs := flag.NewFlagSet("batonctl "+cmd.name, flag.ContinueOnError)
	fs.SetOutput(env.Stderr)
	c.register(fs)
	if cmd.flags != nil {
		cmd.flags(fs)
	}
	fs.Usage = func() {
		fmt.Fprintf(env.Stderr, "usage: batonctl %s [flags] %s\n\n%s\n\nflags:\n", cmd.name, cmd.args, cmd.summary)
		fs.PrintDefaults()
	}
	positional, err := parseInterleaved(fs, args)
	if err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	if c.output != "table" && c.output != "json" {
		fmt.Fprintf(env.Stderr, "batonctl: -o must be table or json, got %q\n", c.output)
		return 2
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	ctx, cancel := context.WithTimeout(ctx, c.timeout)
	defer cancel()
	err = cmd.run(ctx, c, fs, positional)
	var ue usageError
	switch {
	case err == nil:
		return 0
	case errors.As(err, &ue):
		fmt.Fprintf(env.Stderr, "batonctl %s: %s\n", cmd.name, ue.msg)
		fs.Usage()
		return 2
	default:
		if st, ok := status.FromError(err); ok {
			err = errors.New(st.Message())
		}
		fmt.Fprintf(env.Stderr, "batonctl %s: %v\n", cmd.name, err)
		return 1
	}
}

// parseInterleaved parses flags that may come before, between or after
// positional arguments ("job status 7 -o json"); "--" ends the flags.
func parseInterleaved(fs *flag.FlagSet, args []string) ([]string, error) {
	var positional []string
	for {
		if err := fs.Parse(args); err != nil {
			return nil, err
		}
		rest := fs.Args()
		if len(rest) == 0 {
			return positional, nil
		}
		if len(args) > 0 && len(rest) < len(args) && args[len(args)-len(rest)-1] == "--" {
			return append(positional, rest...), nil
		}
		positional = append(positional, rest[0])
		args = rest[1:]
	}
}

// find matches the longest command name at the start of args.
func find(args []string) (*command, []string) {
	var best *command
	n := 0
	for _, c := range commands {
		words := strings.Fields(c.name)
		if len(words) <= len(args) && len(words) > n && equal(words, args[:len(words)]) {
			best, n = c, len(words)
		}
	}
	return best, args[n:]
}

func equal(a, b []string) bool {
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

func usage(w io.Writer) {
	fmt.Fprintln(w, "usage: batonctl [-addr a,b,c] [-o table|json] COMMAND [flags] [args]")
	fmt.Fprintln(w, "\ncommands:")
	sorted := append([]*command(nil), commands...)
	sort.Slice(sorted, func(a, b int) bool { return sorted[a].name < sorted[b].name })
	for _, c := range sorted {
		fmt.Fprintf(w, "  %-40s %s\n", strings.TrimSpace(c.name+" "+c.args), c.summary)
	}
	fmt.Fprintln(w, "\nRun 'batonctl COMMAND -h' for a command's flags.")
}

// printJSON writes a protobuf message or any value as indented JSON.
func printJSON(w io.Writer, v any) error {
	var b []byte
	var err error
	if m, ok := v.(proto.Message); ok {
		b, err = protojson.MarshalOptions{UseProtoNames: true, EmitUnpopulated: true, Indent: "  "}.Marshal(m)
	} else {
		b, err = json.MarshalIndent(v, "", "  ")
	}
	if err != nil {
		return err
	}
	_, err = fmt.Fprintln(w, string(b))
	return err
}

// rawJSON turns a protobuf message into a generic JSON value, to embed in
// a larger JSON document.
func rawJSON(m proto.Message) json.RawMessage {
	b, _ := protojson.MarshalOptions{UseProtoNames: true, EmitUnpopulated: true}.Marshal(m)
	return b
}
