package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/baton-sched/baton/client"
	"github.com/baton-sched/baton/tlsconf"
	pflag "github.com/spf13/pflag"
	"google.golang.org/grpc/status"
)

// Env is what a command runs with.
type Env struct {
	Stdout, Stderr io.Writer
	// Getenv reads the environment (os.Getenv by default).
	Getenv func(string) string
	// Interrupt, when set, delivers the interrupts that stop a command
	// (default: SIGINT and SIGTERM).
	Interrupt <-chan os.Signal
}

// Exit codes, as documented in batonctl help.
const (
	exitOK          = 0
	exitFailure     = 1
	exitUsage       = 2
	exitInterrupted = 130
)

// errInterrupted is the cause of a command's context when Ctrl-C (or
// SIGTERM) stopped it.
var errInterrupted = errors.New("interrupted")

// errTimeout is its cause when -timeout passed.
var errTimeout = errors.New("timed out")

// usageError is a command line that makes no sense: exit code 2.
type usageError struct{ msg string }

func (e usageError) Error() string { return e.msg }

func usagef(format string, args ...any) error { return usageError{fmt.Sprintf(format, args...)} }

// saidError is a failure a command has put in words for people: printed
// as it is.
type saidError struct{ msg string }

func (e saidError) Error() string { return e.msg }

func saidf(format string, args ...any) error { return saidError{fmt.Sprintf(format, args...)} }

// Client behaviour of every command: a member that does not answer at
// all is reported after downFor (gRPC fails a refused or wrong-protocol
// dial at once; this rides through a member restarting), and members
// answering without a leader after noLeaderFor (an election takes well
// under a second).
const (
	downFor     = 500 * time.Millisecond
	noLeaderFor = 3 * time.Second
	// retryFor is how long calls keep trying members that answer
	// "unavailable, retry" for another reason, without -timeout.
	retryFor = 30 * time.Second
)

// common holds the flags every command takes and what the command runs
// with.
type common struct {
	addr    string
	output  string
	timeout time.Duration
	stale   bool
	env     Env
	tls     tlsconf.Files
	token   string
	// cmd is the command running, and code its exit code once it ran.
	cmd  *command
	code int
	// args is the command line, normalized.
	args []string
}

// register declares the global flags, once, on the root command: every
// command takes them, before or after its name.
func (c *common) register(fs *pflag.FlagSet) {
	fs.StringVar(&c.addr, "addr", c.addr, "API addresses of quorum members, comma-separated (default $BATON_ADDR, else 127.0.0.1:7101)")
	fs.StringVarP(&c.output, "output", "o", c.output, "output: table, json or name (ids only, one a line)")
	fs.DurationVar(&c.timeout, "timeout", c.timeout, "give up after this long, waiting (--wait, --watch) included (default: calls retry for 30s, waits have no deadline)")
	fs.BoolVar(&c.stale, "stale", c.stale, "read from the answering member's replica instead of through the leader (faster, may lag; works without a leader)")
	fs.StringVar(&c.tls.CA, "ca-file", c.tls.CA, "the cluster's CA certificate, for TLS (default $BATON_CACERT)")
	fs.StringVar(&c.tls.Cert, "cert-file", c.tls.Cert, "a client certificate of the CA (default $BATON_CLIENT_CERT)")
	fs.StringVar(&c.tls.Key, "key-file", c.tls.Key, "the key of --cert-file (default $BATON_CLIENT_KEY)")
	fs.StringVar(&c.token, "token", c.token, "the ACL token calls carry (default $BATON_TOKEN)")
}

// options returns the client options the flags and environment ask for.
func (c *common) options() (client.Options, error) {
	opts := client.Options{RetryFor: retryFor, DownFor: downFor, NoLeaderFor: noLeaderFor, Token: c.token}
	if c.timeout > 0 {
		opts.RetryFor = c.timeout
	}
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

// addrs returns the member addresses -addr or $BATON_ADDR give, checked:
// an address that is not host:port, or whose host does not resolve, is
// a usage error at once.
func (c *common) addrs() ([]string, error) {
	addr, from := c.addr, "-addr"
	if addr == "" {
		addr, from = c.env.Getenv("BATON_ADDR"), "$BATON_ADDR"
	}
	if addr == "" {
		addr = "127.0.0.1:7101"
	}
	var out []string
	for _, a := range strings.Split(addr, ",") {
		if a = strings.TrimSpace(a); a == "" {
			continue
		}
		host, port, err := net.SplitHostPort(a)
		if err != nil {
			return nil, usagef("%s %q: not host:port (such as 127.0.0.1:7101)", from, a)
		}
		if n, err := strconv.Atoi(port); err != nil || n < 1 || n > 65535 {
			return nil, usagef("%s %q: port %q is not a number from 1 to 65535", from, a, port)
		}
		if host != "" && net.ParseIP(host) == nil {
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
			_, err := net.DefaultResolver.LookupHost(ctx, host)
			cancel()
			if err != nil {
				return nil, usagef("%s %q: host %q does not resolve", from, a, host)
			}
		}
		out = append(out, a)
	}
	if len(out) == 0 {
		return nil, usagef("%s is empty", from)
	}
	return out, nil
}

func (c *common) dial() (*client.Client, error) {
	addrs, err := c.addrs()
	if err != nil {
		return nil, err
	}
	opts, err := c.options()
	if err != nil {
		return nil, err
	}
	return client.Dial(addrs, opts)
}

func (c *common) json() bool { return c.output == "json" }
func (c *common) name() bool { return c.output == "name" }

// command is one batonctl command.
type command struct {
	name     string // "job status"
	args     string // "ID"
	summary  string
	examples string // lines of examples for its help
	run      func(ctx context.Context, c *common, args []string) error
	flags    func(fs *pflag.FlagSet) // its own flags
	// read: the command reads through the leader, and -stale reads the
	// answering member's replica instead (said when there is no leader).
	read bool
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
	c := &common{output: "table", env: env}
	root := c.tree()
	c.args = normalize(root, args)
	root.SetArgs(c.args)
	ran, err := root.ExecuteC()
	if err == nil {
		return c.code
	}
	return c.usage(ran, err)
}

// context is the command's: cancelled by an interrupt (cause
// errInterrupted) and, with -timeout, by its deadline (errTimeout).
func (c *common) context() (context.Context, func()) {
	ctx, cancel := context.WithCancelCause(context.Background())
	sigs := c.env.Interrupt
	var ch chan os.Signal
	if sigs == nil {
		ch = make(chan os.Signal, 1)
		signal.Notify(ch, os.Interrupt, syscall.SIGTERM)
		sigs = ch
	}
	go func() {
		select {
		case <-sigs:
			cancel(errInterrupted)
		case <-ctx.Done():
		}
	}()
	stop := func() {
		if ch != nil {
			signal.Stop(ch)
		}
		cancel(nil)
	}
	if c.timeout <= 0 {
		return ctx, stop
	}
	tctx, tcancel := context.WithTimeoutCause(ctx, c.timeout, errTimeout)
	return tctx, func() { tcancel(); stop() }
}

// exit prints what went wrong, in one plain line, and returns the exit
// code: 1 failure, 2 usage, 130 interrupted.
func (c *common) exit(ctx context.Context, err error) int {
	if err == nil {
		return exitOK
	}
	name := c.cmd.name
	var ue usageError
	if errors.As(err, &ue) {
		fmt.Fprintf(c.env.Stderr, "batonctl %s: %s\nRun 'batonctl %s -h' for usage.\n", name, ue.msg, name)
		return exitUsage
	}
	code := exitFailure
	if errors.Is(context.Cause(ctx), errInterrupted) {
		code = exitInterrupted
	}
	fmt.Fprintf(c.env.Stderr, "batonctl %s: %s\n", name, c.plain(ctx, err))
	return code
}

// plain says err in one line: no gRPC codes or transport internals.
func (c *common) plain(ctx context.Context, err error) string {
	var said saidError
	if errors.As(err, &said) {
		return said.msg
	}
	var ue *client.UnavailableError
	if errors.As(err, &ue) {
		msg := ue.Error()
		if ue.NoLeader {
			if c.cmd.read && !c.stale {
				msg += " (use -stale to read this member's replica)"
			} else {
				msg += " (an election needs a majority of the members)"
			}
		}
		return msg
	}
	switch cause := context.Cause(ctx); {
	case errors.Is(cause, errInterrupted):
		return "interrupted"
	case errors.Is(cause, errTimeout):
		return fmt.Sprintf("gave up after -timeout %s", c.timeout)
	}
	if st, ok := status.FromError(err); ok {
		return st.Message()
	}
	return strings.TrimPrefix(err.Error(), "client: ")
}
