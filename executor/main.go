package executor

import (
	"context"
	"crypto/tls"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"os"
	"os/signal"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/baton-sched/baton/blockstore"
	"github.com/baton-sched/baton/internal/buildinfo"
	"github.com/baton-sched/baton/internal/bytesize"
	"github.com/baton-sched/baton/ops"
	"github.com/baton-sched/baton/tlsconf"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// Main is execd's entry point: it parses execd's flags from args, runs an
// executor holding the functions of reg (nil: the built-ins) until SIGTERM
// or SIGINT, and returns the process's exit code. A user who needs their
// own Go functions writes a main that registers them and calls Main,
// building their own execd:
//
//	func main() {
//		reg := ops.NewRegistry() // the built-ins, and:
//		reg.MustRegister(ops.NewMap("acme.reverse", "reverses a record's value", reverse))
//		os.Exit(executor.Main(os.Args[1:], reg))
//	}
//
// The executor reports the functions it holds when it registers; the
// scheduler accepts plans naming them, and runs their tasks only on
// executors that hold every function the plan names.
func Main(args []string, reg *ops.Registry) int {
	return runMain(args, reg, os.Stderr)
}

func runMain(args []string, reg *ops.Registry, stderr io.Writer) int {
	name := filepath.Base(os.Args[0])
	opts, web, err := parseFlags(name, args, stderr)
	if errors.Is(err, flag.ErrHelp) {
		return 0
	}
	if err != nil {
		fmt.Fprintf(stderr, "%s: %v\n", name, err)
		fmt.Fprintf(stderr, "run '%s -h' for the flags\n", name)
		return 2
	}
	opts.Registry = reg
	if opts.Memory > 0 && os.Getenv("GOMEMLIMIT") == "" {
		debug.SetMemoryLimit(opts.Memory)
	}
	metrics := prometheus.NewRegistry()
	metrics.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}), buildinfo.Collector())
	opts.Metrics = metrics
	e, err := New(opts)
	if err != nil {
		fmt.Fprintf(stderr, "%s: %v\n", name, err)
		return 1
	}
	// stopWeb stops the HTTP server before the executor closes: a scrape
	// reads the block store's size.
	stopWeb := func() {}
	if web.ln != nil {
		mux := http.NewServeMux()
		mux.Handle("GET /metrics", promhttp.HandlerFor(metrics, promhttp.HandlerOpts{}))
		if web.pprof {
			mux.Handle("/debug/pprof/", operatorsOnly(http.HandlerFunc(pprof.Index)))
			mux.Handle("/debug/pprof/cmdline", operatorsOnly(http.HandlerFunc(pprof.Cmdline)))
			mux.Handle("/debug/pprof/profile", operatorsOnly(http.HandlerFunc(pprof.Profile)))
			mux.Handle("/debug/pprof/symbol", operatorsOnly(http.HandlerFunc(pprof.Symbol)))
			mux.Handle("/debug/pprof/trace", operatorsOnly(http.HandlerFunc(pprof.Trace)))
		}
		srv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
		served := make(chan struct{})
		go func() {
			defer close(served)
			srv.Serve(web.ln)
		}()
		stopWeb = func() {
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			srv.Shutdown(ctx) // lets a scrape in progress finish
			srv.Close()
			<-served
		}
		opts.Logger.Info("serving metrics", "executor", e.ID(), "http", web.ln.Addr().String())
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	e.Run(ctx)
	stopWeb()
	if err := e.Close(); err != nil {
		fmt.Fprintf(stderr, "%s: stop: %v\n", name, err)
		return 1
	}
	return 0
}

// operatorsOnly serves pprof (a process's memory and command line) over
// TLS only to a client's or a member's certificate: not to another
// executor, whose job code may be anyone's. Without TLS the address is
// loopback (or -insecure was given) and pprof was asked for with -pprof.
func operatorsOnly(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.TLS != nil {
			p, err := tlsconf.PeerOf(*r.TLS)
			if err != nil || (p.Role != tlsconf.RoleClient && p.Role != tlsconf.RoleServer) {
				http.Error(w, "execd: /debug/pprof needs a client's or a member's certificate", http.StatusForbidden)
				return
			}
		}
		h.ServeHTTP(w, r)
	})
}

// web is execd's HTTP side: /metrics, and pprof when asked.
type web struct {
	ln    net.Listener
	pprof bool
}

func parseFlags(name string, args []string, stderr io.Writer) (Options, web, error) {
	var o Options
	var w web
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() { usage(fs, name) }
	fs.StringVar(&o.ID, "id", "", "executor id (default: the one kept in -data-dir, or a new one)")
	fs.StringVar(&o.DataDir, "data-dir", "", "directory for the block store and the executor's id (required)")
	defSchedulers := "127.0.0.1:7101"
	if a := os.Getenv("BATON_ADDR"); a != "" {
		defSchedulers = a
	}
	schedulers := fs.String("schedulers", defSchedulers, "API addresses of quorum members, comma-separated (default $BATON_ADDR, else 127.0.0.1:7101)")
	fs.StringVar(&o.Addr, "addr", "127.0.0.1:0", "block service address")
	fs.StringVar(&o.Advertise, "advertise", "", "block service address peers use (default: the listener's)")
	fs.IntVar(&o.Cores, "cores", runtime.NumCPU(), "task slots")
	var tlsFiles tlsconf.Files
	fs.StringVar(&tlsFiles.CA, "ca-file", "", "the cluster's CA certificate (PEM): with -cert-file and -key-file, every connection is TLS")
	fs.StringVar(&tlsFiles.Cert, "cert-file", "", "this executor's certificate, named after its id (batonctl tls cert create -executor -name ID)")
	fs.StringVar(&tlsFiles.Key, "key-file", "", "the key of -cert-file")
	var cf ops.Confinement
	pipeAllow := fs.String("pipe-allow", "", "programs pipe may run, comma-separated: names found in PATH (awk,python3) or absolute paths; * for any (default: none)")
	fs.Func("data-root", "a directory textFile may read and saveAsTextFile write under (repeatable; default: none)", func(v string) error {
		if !filepath.IsAbs(v) {
			return fmt.Errorf("%q is not an absolute path", v)
		}
		cf.DataRoots = append(cf.DataRoots, filepath.Clean(v))
		return nil
	})
	fs.StringVar(&cf.S3EndpointURL, "s3-endpoint", "", "the S3-compatible endpoint s3:// paths go to, http(s)://host[:port] (default $AWS_ENDPOINT_URL, else AWS); credentials come from AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_SESSION_TOKEN or ~/.aws/credentials")
	runAs := fs.String("run-as", "", "run pipe programs as this user (a name or uid; needs execd to run as root)")
	fs.StringVar(&o.Token, "token", os.Getenv("BATON_TOKEN"), "the ACL token (policy executor) to join with once the cluster's ACLs are on (default $BATON_TOKEN)")
	fs.BoolVar(&o.Insecure, "insecure", false, "allow the block service on a non-loopback address without TLS (anyone who reaches it reads every job's blocks)")
	memory := fs.String("memory", "", "the executor's memory budget (bytes, or with KiB, MiB, GiB), split across its slots: a task keeps about memory/cores/4 of records in memory before it spills to disk, and the Go runtime's limit is set to it unless GOMEMLIMIT is (default: half the machine's memory; 0: no budget)")
	minFree := fs.String("min-free-disk", "64MiB", "free space the block store keeps on its disk: a map output or result that would leave less fails its task (which runs elsewhere) and the executor reports itself unhealthy until there is room (bytes, or with KiB, MiB, GiB)")
	writeMode := fs.String("block-write-mode", "batch", "how map outputs are written: batch (one synced batch) or ingest (one ingested sstable)")
	fs.DurationVar(&o.ChaosJobCommitDelay, "chaos-job-commit-delay", 0, "for drills and tests: wait this long before each saveAsTextFile job commit (_SUCCESS), so a drill can kill the leader while it waits for one")
	chaosRename := fs.String("chaos-exit-before-rename", "", "for drills and tests: saveAsTextFile partitions (comma-separated) whose first attempt exits the process between the commit's authorisation and its rename")
	httpAddr := fs.String("http-addr", "", "serve Prometheus metrics (/metrics) on this address (e.g. 127.0.0.1:7401; empty: none)")
	fs.BoolVar(&w.pprof, "pprof", false, "also serve net/http/pprof under /debug/pprof/ on -http-addr")
	logFormat := fs.String("log-format", "text", "log format: text or json")
	logLevel := fs.String("log-level", "info", "log level: debug, info, warn, error")
	if err := fs.Parse(args); err != nil {
		return o, w, err
	}
	// The token stays with execd, not with the programs it starts.
	os.Unsetenv("BATON_TOKEN")
	var errs []error
	if fs.NArg() > 0 {
		errs = append(errs, fmt.Errorf("unexpected arguments: %s", strings.Join(fs.Args(), " ")))
	}
	if o.DataDir == "" {
		errs = append(errs, errors.New("-data-dir is required"))
	}
	for _, a := range strings.Split(*schedulers, ",") {
		if a = strings.TrimSpace(a); a != "" {
			o.Schedulers = append(o.Schedulers, a)
		}
	}
	if len(o.Schedulers) == 0 {
		errs = append(errs, errors.New("-schedulers needs at least one address"))
	}
	for _, p := range strings.Split(*chaosRename, ",") {
		if p = strings.TrimSpace(p); p == "" {
			continue
		}
		n, err := strconv.Atoi(p)
		if err != nil || n < 0 {
			errs = append(errs, fmt.Errorf("-chaos-exit-before-rename: %q is not a partition", p))
			continue
		}
		o.ChaosExitBeforeRename = append(o.ChaosExitBeforeRename, n)
	}
	if o.Cores < 1 {
		errs = append(errs, fmt.Errorf("-cores must be >= 1, got %d", o.Cores))
	}
	for _, p := range strings.Split(*pipeAllow, ",") {
		if p = strings.TrimSpace(p); p != "" {
			cf.PipeAllow = append(cf.PipeAllow, p)
		}
	}
	if *runAs != "" {
		cred, err := ops.LookupUser(*runAs)
		if err != nil {
			errs = append(errs, fmt.Errorf("-run-as: %w", err))
		}
		cf.RunAs = cred
	}
	o.Confine = &cf
	switch *writeMode {
	case "batch":
		o.Store.WriteMode = blockstore.WriteBatch
	case "ingest":
		o.Store.WriteMode = blockstore.WriteIngest
	default:
		errs = append(errs, fmt.Errorf("-block-write-mode must be batch or ingest, got %q", *writeMode))
	}
	if n, err := bytesize.Parse(*minFree); err != nil {
		errs = append(errs, fmt.Errorf("-min-free-disk: %w", err))
	} else {
		o.Store.MinFree = n
	}
	switch *memory {
	case "":
		o.Memory = int64(machineMemory() / 2)
	default:
		if n, err := bytesize.Parse(*memory); err != nil || n > 1<<50 {
			errs = append(errs, fmt.Errorf("-memory: %q is not a size in bytes", *memory))
		} else {
			o.Memory = int64(n)
		}
	}
	var level slog.Level
	if err := level.UnmarshalText([]byte(*logLevel)); err != nil {
		errs = append(errs, fmt.Errorf("-log-level: %w", err))
	}
	switch *logFormat {
	case "text":
		o.Logger = slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: level}))
	case "json":
		o.Logger = slog.New(slog.NewJSONHandler(stderr, &slog.HandlerOptions{Level: level}))
	default:
		errs = append(errs, fmt.Errorf("-log-format must be text or json, got %q", *logFormat))
	}
	if tlsFiles.Enabled() {
		c, err := tlsconf.Load(tlsFiles)
		if err != nil {
			errs = append(errs, err)
		}
		o.TLS = c
	}
	if w.pprof && *httpAddr == "" {
		errs = append(errs, errors.New("-pprof needs -http-addr"))
	}
	if *httpAddr != "" && o.TLS == nil && !o.Insecure && !loopback(*httpAddr) {
		errs = append(errs, fmt.Errorf("-http-addr %s is not a loopback address: give the executor a certificate (-ca-file, -cert-file, -key-file) or -insecure", *httpAddr))
	}
	if *httpAddr != "" && len(errs) == 0 {
		ln, err := net.Listen("tcp", *httpAddr)
		if err != nil {
			errs = append(errs, fmt.Errorf("-http-addr: %w", err))
		} else if o.TLS != nil {
			// Metrics over mutual TLS, as the block service: a
			// scraper presents a certificate of the cluster's CA
			// (Prometheus: tls_config's cert_file and key_file), so
			// nobody else reads what runs here.
			ln = tls.NewListener(ln, o.TLS.Server(true))
		}
		w.ln = ln
	}
	return o, w, errors.Join(errs...)
}

// machineMemory returns the machine's memory in bytes (0 if unknown).
func machineMemory() uint64 {
	b, err := os.ReadFile("/proc/meminfo")
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(b), "\n") {
		if f := strings.Fields(line); len(f) >= 2 && f[0] == "MemTotal:" {
			kb, err := strconv.ParseUint(f[1], 10, 64)
			if err == nil {
				return kb << 10
			}
		}
	}
	return 0
}

// usage prints execd's flags, without the chaos- flags drills and tests use.
func usage(fs *flag.FlagSet, name string) {
	out := fs.Output()
	fmt.Fprintf(out, "usage: %s -data-dir DIR [-schedulers ADDR,...] [flags]\n", name)
	hidden := flag.NewFlagSet(name, flag.ContinueOnError)
	hidden.SetOutput(out)
	fs.VisitAll(func(f *flag.Flag) {
		if !strings.HasPrefix(f.Name, "chaos-") {
			hidden.Var(f.Value, f.Name, f.Usage)
		}
	})
	hidden.PrintDefaults()
}
