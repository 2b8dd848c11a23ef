//go:build unix

package s3test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
)

// fakeGo writes a shell script standing in for `go install`: it appends a
// line to calls, runs body, and writes $GOBIN/versitygw.
func fakeGo(t *testing.T, body string) (goCmd, calls string) {
	t.Helper()
	dir := t.TempDir()
	calls = filepath.Join(dir, "calls")
	goCmd = filepath.Join(dir, "go")
	script := "#!/bin/sh\necho \"$@\" >> " + calls + "\n" + body + "\n" +
		"printf '#!/bin/sh\\n' > \"$GOBIN/versitygw\"\nchmod +x \"$GOBIN/versitygw\"\n"
	if err := os.WriteFile(goCmd, []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	return goCmd, calls
}

func countLines(t *testing.T, path string) int {
	t.Helper()
	b, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return 0
	}
	if err != nil {
		t.Fatal(err)
	}
	return strings.Count(string(b), "\n")
}

// Many builders at once (the lock is per open file, so goroutines contend
// as processes do): one runs go install, the others wait and reuse it,
// and no temporary directory is left.
func TestConcurrentBuildersBuildOnce(t *testing.T) {
	goCmd, calls := fakeGo(t, "sleep 0.3")
	dir := filepath.Join(t.TempDir(), "cache")
	const n = 6
	var wg sync.WaitGroup
	infos := make([]BuildInfo, n)
	errs := make([]error, n)
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			infos[i], errs[i] = buildLocked(context.Background(), goCmd, dir)
		}()
	}
	wg.Wait()
	built := 0
	for i := range n {
		if errs[i] != nil {
			t.Fatalf("builder %d: %v", i, errs[i])
		}
		if infos[i].Path != filepath.Join(dir, "versitygw") {
			t.Fatalf("builder %d got %s", i, infos[i].Path)
		}
		if infos[i].Built {
			built++
		}
	}
	if c := countLines(t, calls); c != 1 || built != 1 {
		t.Fatalf("go install ran %d times, %d builders say they built; want 1 and 1", c, built)
	}
	if left, _ := filepath.Glob(filepath.Join(dir, "tmp-*")); len(left) != 0 {
		t.Fatalf("temporary directories left: %v", left)
	}
	args, _ := os.ReadFile(calls)
	if want := "install -trimpath " + VersitygwPackage + "@" + VersitygwVersion; strings.TrimSpace(string(args)) != want {
		t.Fatalf("go was run with %q, want %q", args, want)
	}
	// A temporary directory from a build that was killed is swept by the
	// next build.
	stale := filepath.Join(dir, "tmp-stale")
	if err := os.MkdirAll(stale, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Remove(filepath.Join(dir, "versitygw")); err != nil {
		t.Fatal(err)
	}
	if _, err := buildLocked(context.Background(), goCmd, dir); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(stale); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("stale %s survived a build: %v", stale, err)
	}
}

// A download that fails on the network is ErrUnavailable (Start skips); a
// build that fails otherwise is a plain error (Start fails the test).
func TestBuildFailuresAreClassified(t *testing.T) {
	for _, tc := range []struct {
		name, out   string
		unavailable bool
	}{
		{"no_network", `go: github.com/versity/versitygw@v1.8.0: Get "https://proxy.example/...": dial tcp: lookup proxy.example: no such host`, true},
		{"proxy_off", "go: module lookup disabled by GOPROXY=off", true},
		{"compile_error", "./main.go:3:1: syntax error: non-declaration statement outside function body", false},
		{"unknown_version", "go: github.com/versity/versitygw@v9.9.9: invalid version: unknown revision v9.9.9", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			goCmd, _ := fakeGo(t, "echo '"+tc.out+"' >&2; exit 1")
			_, err := buildLocked(context.Background(), goCmd, filepath.Join(t.TempDir(), "cache"))
			if err == nil {
				t.Fatal("a failed build succeeded")
			}
			if got := errors.Is(err, ErrUnavailable); got != tc.unavailable {
				t.Fatalf("errors.Is(%v, ErrUnavailable) = %v, want %v", err, got, tc.unavailable)
			}
			if !strings.HasPrefix(err.Error(), "s3test: ") {
				t.Fatalf("error %q lacks the s3test: prefix", err)
			}
		})
	}
}
