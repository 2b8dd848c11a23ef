package s3test

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/minio/minio-go/v7"
	"github.com/minio/minio-go/v7/pkg/credentials"
)

// The credentials, region and bucket of every server Start runs.
const (
	DefaultRegion    = "us-east-1"
	DefaultAccessKey = "baton-test-access-key"
	DefaultSecretKey = "baton-test-secret-key"
	DefaultBucket    = "baton-test"
)

// How long Start waits. Generous: the machine may be a loaded 2-core one.
const (
	buildTimeout = 20 * time.Minute // the first build on a machine, downloads included
	readyTimeout = 60 * time.Second // the process to answer a signed request
	stopTimeout  = 15 * time.Second // SIGTERM to exit, before SIGKILL
)

// Server is a running versitygw process serving DataDir on Endpoint.
type Server struct {
	Endpoint  string // host:port on loopback, no scheme: "127.0.0.1:40123"
	Region    string
	AccessKey string
	SecretKey string
	Bucket    string // created by Start
	DataDir   string // the posix backend's root: one directory per bucket
	LogFile   string // the server's stdout and stderr

	cmd      *exec.Cmd
	exited   chan struct{} // closed when the process has been waited for
	waitErr  error         // set before exited is closed
	stopOnce sync.Once
}

// Start builds (once per machine) and starts a versitygw server on a free
// 127.0.0.1 port with a fresh data directory, waits until it answers,
// creates DefaultBucket, and registers a t.Cleanup that stops it. It skips
// the test only if the server cannot be built here (ErrUnavailable).
func Start(t testing.TB) *Server {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), buildTimeout)
	if d, ok := t.(interface{ Deadline() (time.Time, bool) }); ok {
		if dl, ok := d.Deadline(); ok {
			cancel()
			ctx, cancel = context.WithDeadline(context.Background(), dl)
		}
	}
	info, err := Binary(ctx)
	cancel()
	if errors.Is(err, ErrUnavailable) {
		t.Skipf("%v (this test needs an S3 server)", err)
	}
	if err != nil {
		t.Fatal(err)
	}
	if info.Built {
		t.Logf("s3test: built versitygw %s in %v into %s", VersitygwVersion, info.Duration.Round(time.Millisecond), info.Path)
	}

	base := t.TempDir() // registered before the process's cleanup, so removed after it
	srv, err := launch(t, info.Path, base)
	if err != nil {
		t.Fatal(err)
	}
	if err := srv.createBucket(srv.Bucket); err != nil {
		t.Fatal(err)
	}
	return srv
}

// launch starts the process, retrying on a new port if another process
// took the one picked, and with a sidecar metadata directory if the data
// directory's file system has no extended attributes.
func launch(t testing.TB, bin, base string) (*Server, error) {
	sidecar := false
	var lastErr error
	for attempt := 1; attempt <= 5; attempt++ {
		srv, err := launchOnce(t, bin, base, attempt, sidecar)
		if err == nil {
			return srv, nil
		}
		lastErr = err
		switch {
		case errors.Is(err, errPortTaken):
			continue
		case errors.Is(err, errNoXattr) && !sidecar:
			sidecar = true
			continue
		}
		return nil, err
	}
	return nil, lastErr
}

var (
	errPortTaken = errors.New("s3test: the port was taken")
	errNoXattr   = errors.New("s3test: no extended attributes on the data directory")
)

func launchOnce(t testing.TB, bin, base string, attempt int, sidecar bool) (*Server, error) {
	port, err := freePort()
	if err != nil {
		return nil, err
	}
	dir := filepath.Join(base, fmt.Sprintf("try%d", attempt))
	srv := &Server{
		Endpoint:  net.JoinHostPort("127.0.0.1", port),
		Region:    DefaultRegion,
		AccessKey: DefaultAccessKey,
		SecretKey: DefaultSecretKey,
		Bucket:    DefaultBucket,
		DataDir:   filepath.Join(dir, "data"),
		LogFile:   filepath.Join(dir, "versitygw.log"),
		exited:    make(chan struct{}),
	}
	if err := os.MkdirAll(srv.DataDir, 0o755); err != nil {
		return nil, fmt.Errorf("s3test: %w", err)
	}
	logf, err := os.Create(srv.LogFile)
	if err != nil {
		return nil, fmt.Errorf("s3test: %w", err)
	}
	defer logf.Close() // the child has its own descriptor

	args := []string{
		"--port", srv.Endpoint,
		"--access", srv.AccessKey,
		"--secret", srv.SecretKey,
		"--region", srv.Region,
		"posix",
	}
	if sidecar {
		meta := filepath.Join(dir, "meta")
		if err := os.MkdirAll(meta, 0o755); err != nil {
			return nil, fmt.Errorf("s3test: %w", err)
		}
		args = append(args, "--sidecar", meta)
	}
	args = append(args, srv.DataDir)
	cmd := exec.Command(bin, args...)
	cmd.Dir = dir
	cmd.Stdout = logf
	cmd.Stderr = logf
	// Only what a process needs: no VGW_*, ROOT_* or AWS_* from the caller.
	cmd.Env = []string{"PATH=" + os.Getenv("PATH"), "HOME=" + dir, "TMPDIR=" + os.TempDir()}
	dieWithParent(cmd)
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("s3test: starting %s: %w", bin, err)
	}
	srv.cmd = cmd
	go func() {
		srv.waitErr = cmd.Wait()
		close(srv.exited)
	}()
	t.Cleanup(func() {
		srv.Stop()
		if t.Failed() {
			t.Logf("s3test: the tail of %s:\n%s", srv.LogFile, srv.logTail(4096))
		}
	})

	if err := srv.waitReady(readyTimeout); err != nil {
		srv.Stop()
		return nil, err
	}
	return srv, nil
}

// waitReady polls with a signed ListBuckets until it succeeds, the process
// exits, or the deadline passes.
func (s *Server) waitReady(timeout time.Duration) error {
	cl, err := s.newClientRetries(1) // we poll; no backoff inside the client
	if err != nil {
		return err
	}
	deadline := time.Now().Add(timeout)
	var last error
	for {
		select {
		case <-s.exited:
			tail := s.logTail(2048)
			switch {
			case strings.Contains(tail, "address already in use"):
				return fmt.Errorf("%w: %s", errPortTaken, s.Endpoint)
			case strings.Contains(tail, "xattr check failed"):
				return fmt.Errorf("%w: %s", errNoXattr, s.DataDir)
			}
			return fmt.Errorf("s3test: versitygw exited before it answered (%v):\n%s", s.waitErr, tail)
		default:
		}
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		_, last = cl.ListBuckets(ctx)
		cancel()
		if last == nil {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("s3test: versitygw on %s did not answer within %v: %v\n%s", s.Endpoint, timeout, last, s.logTail(2048))
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// Stop ends the server (SIGTERM, then SIGKILL after a grace period) and
// waits for it. It is safe to call more than once; Start's cleanup calls it.
func (s *Server) Stop() {
	s.stopOnce.Do(func() {
		if s.cmd == nil || s.cmd.Process == nil {
			return
		}
		_ = s.cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-s.exited:
		case <-time.After(stopTimeout):
			_ = s.cmd.Process.Kill()
			<-s.exited
		}
	})
}

// URL is the endpoint with its scheme: "http://127.0.0.1:40123".
func (s *Server) URL() string { return "http://" + s.Endpoint }

// Env is the standard AWS environment for a process that should reach this
// server: credentials, region and endpoint (AWS_ENDPOINT_URL, which the AWS
// SDKs honour; minio-go does not read it).
func (s *Server) Env() []string {
	return []string{
		"AWS_ACCESS_KEY_ID=" + s.AccessKey,
		"AWS_SECRET_ACCESS_KEY=" + s.SecretKey,
		"AWS_REGION=" + s.Region,
		"AWS_DEFAULT_REGION=" + s.Region,
		"AWS_ENDPOINT_URL=" + s.URL(),
	}
}

// Client is a minio-go client for the server, path-style, over plain HTTP.
func (s *Server) Client(t testing.TB) *minio.Client {
	t.Helper()
	cl, err := s.newClient()
	if err != nil {
		t.Fatal(err)
	}
	return cl
}

func (s *Server) newClient() (*minio.Client, error) { return s.newClientRetries(0) }

func (s *Server) newClientRetries(retries int) (*minio.Client, error) {
	cl, err := minio.New(s.Endpoint, &minio.Options{
		Creds:        credentials.NewStaticV4(s.AccessKey, s.SecretKey, ""),
		Secure:       false,
		Region:       s.Region,
		BucketLookup: minio.BucketLookupPath,
		MaxRetries:   retries, // 0: minio-go's default
	})
	if err != nil {
		return nil, fmt.Errorf("s3test: minio client: %w", err)
	}
	return cl, nil
}

// CreateBucket makes another bucket on the server.
func (s *Server) CreateBucket(t testing.TB, name string) {
	t.Helper()
	if err := s.createBucket(name); err != nil {
		t.Fatal(err)
	}
}

func (s *Server) createBucket(name string) error {
	cl, err := s.newClient()
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := cl.MakeBucket(ctx, name, minio.MakeBucketOptions{Region: s.Region}); err != nil {
		return fmt.Errorf("s3test: creating bucket %q: %w", name, err)
	}
	return nil
}

// logTail is the last n bytes of the server's log.
func (s *Server) logTail(n int64) string {
	f, err := os.Open(s.LogFile)
	if err != nil {
		return ""
	}
	defer f.Close()
	if fi, err := f.Stat(); err == nil && fi.Size() > n {
		_, _ = f.Seek(fi.Size()-n, 0)
	}
	buf := make([]byte, n)
	k, _ := f.Read(buf)
	return string(buf[:k])
}

// freePort asks the kernel for a free port on 127.0.0.1. Another process
// may take it before the server binds it; launch then tries another.
func freePort() (string, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", fmt.Errorf("s3test: no free port: %w", err)
	}
	defer l.Close()
	_, port, err := net.SplitHostPort(l.Addr().String())
	if err != nil {
		return "", fmt.Errorf("s3test: %w", err)
	}
	return port, nil
}
