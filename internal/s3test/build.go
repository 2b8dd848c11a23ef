package s3test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"time"
)

// The server that Start runs, as the module proxy serves it.
const (
	VersitygwModule  = "github.com/versity/versitygw"
	VersitygwPackage = VersitygwModule + "/cmd/versitygw"
	VersitygwVersion = "v1.8.0"
)

// BinaryEnv names an environment variable that, when set, is the path of a
// versitygw binary to run instead of the one Binary builds.
const BinaryEnv = "BATON_VERSITYGW"

// ErrUnavailable is wrapped by Binary's error when the server cannot be
// built on this machine at all (no go command, or no way to the module
// proxy). Start skips the test then; any other error fails it.
var ErrUnavailable = errors.New("s3test: versitygw cannot be built here")

// BuildInfo says where Binary found the server and whether it built it.
type BuildInfo struct {
	Path     string        // the executable
	Built    bool          // this process built it (else it was cached)
	Duration time.Duration // how long the build took, when Built
}

var (
	binaryMu   sync.Mutex
	binaryInfo *BuildInfo // set once found or built
	binaryErr  error      // set once the build proved impossible here
)

// Binary returns the path of the versitygw executable, building it into
// the cache directory (see CacheDir) the first time on this machine. It is
// safe to call from many goroutines and many processes at once: one builds
// and the others wait for it, on a file lock.
func Binary(ctx context.Context) (BuildInfo, error) {
	binaryMu.Lock()
	defer binaryMu.Unlock()
	if binaryInfo != nil {
		return BuildInfo{Path: binaryInfo.Path}, nil
	}
	if binaryErr != nil {
		return BuildInfo{}, binaryErr
	}
	if p := os.Getenv(BinaryEnv); p != "" {
		if err := executable(p); err != nil {
			return BuildInfo{}, fmt.Errorf("s3test: %s=%s: %w", BinaryEnv, p, err)
		}
		binaryInfo = &BuildInfo{Path: p}
		return *binaryInfo, nil
	}
	goCmd, err := exec.LookPath("go")
	if err != nil {
		binaryErr = fmt.Errorf("%w: no go command: %v", ErrUnavailable, err)
		return BuildInfo{}, binaryErr
	}
	dir, err := CacheDir()
	if err != nil {
		return BuildInfo{}, err
	}
	info, err := buildLocked(ctx, goCmd, dir)
	if err != nil {
		if errors.Is(err, ErrUnavailable) {
			binaryErr = err // don't try again in every test
		}
		return BuildInfo{}, err
	}
	binaryInfo = &info
	return info, nil
}

// CacheDir is the directory that holds the built server:
// baton-s3server/versitygw-VERSION-GOOS-GOARCH beside the Go build cache
// (`go env GOCACHE`), or under os.UserCacheDir when the build cache is off.
func CacheDir() (string, error) {
	base := ""
	if goCmd, err := exec.LookPath("go"); err == nil {
		out, err := exec.Command(goCmd, "env", "GOCACHE").Output()
		if gc := strings.TrimSpace(string(out)); err == nil && gc != "" && gc != "off" && filepath.IsAbs(gc) {
			base = filepath.Dir(gc)
		}
	}
	if base == "" {
		d, err := os.UserCacheDir()
		if err != nil {
			return "", fmt.Errorf("s3test: no cache directory: %w", err)
		}
		base = d
	}
	name := fmt.Sprintf("versitygw-%s-%s-%s", VersitygwVersion, runtime.GOOS, runtime.GOARCH)
	return filepath.Join(base, "baton-s3server", name), nil
}

// buildLocked builds the binary into dir unless it is there, holding the
// directory's lock file so that one process on the machine builds at a
// time.
func buildLocked(ctx context.Context, goCmd, dir string) (BuildInfo, error) {
	final := filepath.Join(dir, "versitygw")
	if executable(final) == nil {
		return BuildInfo{Path: final}, nil
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return BuildInfo{}, fmt.Errorf("s3test: %w", err)
	}
	unlock, err := lockFile(filepath.Join(dir, ".lock"))
	if err != nil {
		return BuildInfo{}, err
	}
	defer unlock()
	// Another process may have built it while we waited for the lock.
	if executable(final) == nil {
		return BuildInfo{Path: final}, nil
	}
	// Only the lock holder builds, so any temporary directory left here is
	// from a build that was killed.
	if old, _ := filepath.Glob(filepath.Join(dir, "tmp-*")); len(old) > 0 {
		for _, o := range old {
			_ = os.RemoveAll(o)
		}
	}
	tmp, err := os.MkdirTemp(dir, "tmp-")
	if err != nil {
		return BuildInfo{}, fmt.Errorf("s3test: %w", err)
	}
	defer os.RemoveAll(tmp)

	start := time.Now()
	cmd := exec.CommandContext(ctx, goCmd, "install", "-trimpath", VersitygwPackage+"@"+VersitygwVersion)
	cmd.Dir = tmp // outside any module: the @version form ignores go.mod anyway
	cmd.Env = append(os.Environ(),
		"GOBIN="+tmp,
		"GOWORK=off",
		"GOFLAGS=",          // a caller's -mod or -tags must not change this build
		"GOTOOLCHAIN=local", // never download a toolchain; versitygw needs go >= 1.25
		"CGO_ENABLED=0",     // no C compiler needed; a static binary
		"GOOS="+runtime.GOOS,
		"GOARCH="+runtime.GOARCH,
	)
	var out bytes.Buffer
	cmd.Stdout = &out
	cmd.Stderr = &out
	if err := cmd.Run(); err != nil {
		msg := strings.TrimSpace(out.String())
		if ctx.Err() != nil {
			return BuildInfo{}, fmt.Errorf("s3test: building %s@%s: %w\n%s", VersitygwPackage, VersitygwVersion, ctx.Err(), msg)
		}
		if proxyUnreachable(msg) {
			return BuildInfo{}, fmt.Errorf("%w: the module proxy is out of reach: %s", ErrUnavailable, lastLines(msg, 5))
		}
		return BuildInfo{}, fmt.Errorf("s3test: building %s@%s: %v\n%s", VersitygwPackage, VersitygwVersion, err, msg)
	}
	took := time.Since(start)
	built := filepath.Join(tmp, "versitygw")
	if err := executable(built); err != nil {
		return BuildInfo{}, fmt.Errorf("s3test: go install left no binary: %w\n%s", err, out.String())
	}
	if err := os.Rename(built, final); err != nil {
		return BuildInfo{}, fmt.Errorf("s3test: %w", err)
	}
	return BuildInfo{Path: final, Built: true, Duration: took}, nil
}

// proxyUnreachable says whether go's output shows that modules could not be
// fetched for want of a network or a proxy, rather than a build failure.
func proxyUnreachable(out string) bool {
	for _, s := range []string{
		"GOPROXY=off",
		"module lookup disabled",
		"dial tcp",
		"no such host",
		"i/o timeout",
		"connection refused",
		"network is unreachable",
		"TLS handshake timeout",
		"proxyconnect",
		"server misbehaving",
	} {
		if strings.Contains(out, s) {
			return true
		}
	}
	return false
}

func executable(p string) error {
	fi, err := os.Stat(p)
	if err != nil {
		return err
	}
	if !fi.Mode().IsRegular() || fi.Mode().Perm()&0o111 == 0 {
		return fmt.Errorf("%s is not an executable file", p)
	}
	return nil
}

func lastLines(s string, n int) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}
