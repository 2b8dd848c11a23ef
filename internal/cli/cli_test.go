package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/baton-sched/baton/internal/devcluster"
	"github.com/spf13/cobra"
)

// run runs batonctl in-process with an empty environment.
func run(t *testing.T, args ...string) (stdout, stderr string, code int) {
	t.Helper()
	var out, errb bytes.Buffer
	code = Run(args, Env{Stdout: &out, Stderr: &errb, Getenv: func(string) string { return "" }})
	return out.String(), errb.String(), code
}

// every is each command batonctl has, as the words that name it.
func every(t *testing.T) [][]string {
	t.Helper()
	root := (&common{output: "table", env: Env{Stdout: new(bytes.Buffer), Stderr: new(bytes.Buffer)}}).tree()
	var out [][]string
	var walk func(cmd *cobra.Command)
	walk = func(cmd *cobra.Command) {
		for _, s := range cmd.Commands() {
			if s.IsAvailableCommand() {
				out = append(out, strings.Fields(commandName(s)))
				walk(s)
			}
		}
	}
	walk(root)
	if len(out) < 30 {
		t.Fatalf("only %d commands: %v", len(out), out)
	}
	return out
}

// TestHelpGoesToStdoutWithExamples: -h, --help, -help and 'help
// COMMAND' print the command's usage and examples on standard output
// and exit 0, for every command and group; the root's help lists every
// command and the global flags once.
func TestHelpGoesToStdoutWithExamples(t *testing.T) {
	for _, words := range every(t) {
		name := strings.Join(words, " ")
		for _, args := range [][]string{append(words[:len(words):len(words)], "-h"), append(words[:len(words):len(words)], "--help"), append(words[:len(words):len(words)], "-help"), append([]string{"help"}, words...)} {
			out, errOut, code := run(t, args...)
			if code != 0 || errOut != "" {
				t.Errorf("batonctl %v: exit %d, stderr %q", args, code, errOut)
				continue
			}
			if !strings.HasPrefix(out, "usage: batonctl "+name) || !regexp.MustCompile(`\nexamples:\n  .*batonctl`).MatchString(out) {
				t.Errorf("batonctl %v: no usage and examples on stdout:\n%s", args, out)
			}
			if !strings.Contains(out, globalFlagsLine) || strings.Contains(out, "--timeout duration") {
				t.Errorf("batonctl %v: the global flags are not named once in a line:\n%s", args, out)
			}
		}
	}
	for _, args := range [][]string{{"-h"}, {"--help"}, {"help"}} {
		out, errOut, code := run(t, args...)
		if code != 0 || errOut != "" || !strings.Contains(out, "usage: batonctl [global flags] COMMAND") {
			t.Fatalf("batonctl %v: exit %d, stderr %q:\n%s", args, code, errOut, out)
		}
		for _, want := range []string{"job status ID", "operator raft list-peers", "completion bash|zsh|fish|powershell", "--addr string", "-o, --output string", "--timeout duration", "examples:", "exit codes: 0 ok, 1 failure, 2 usage error, 130 interrupted"} {
			if !strings.Contains(out, want) {
				t.Errorf("batonctl %v: no %q in\n%s", args, want, out)
			}
		}
	}
	// Without a command, the help is a usage error: on stderr, exit 2.
	for _, args := range [][]string{nil, {"job"}, {"operator", "raft"}, {"completion"}} {
		out, errOut, code := run(t, args...)
		if code != 2 || out != "" || !strings.Contains(errOut, "usage: batonctl") {
			t.Errorf("batonctl %v: exit %d, stdout %q, stderr %q; want the usage on stderr and exit 2", args, code, out, errOut)
		}
	}
}

// TestCompletionPrintsAScript: batonctl completion SHELL prints the
// shell's script, and the completions it asks batonctl for work with
// the Go-style flags too.
func TestCompletionPrintsAScript(t *testing.T) {
	for shell, want := range map[string]string{
		"bash":       "complete -o default -F __start_batonctl batonctl",
		"zsh":        "#compdef batonctl",
		"fish":       "complete -c batonctl",
		"powershell": "Register-ArgumentCompleter",
	} {
		out, errOut, code := run(t, "completion", shell)
		if code != 0 || errOut != "" || !strings.Contains(out, want) || !strings.Contains(out, "__complete") {
			t.Errorf("completion %s: exit %d, stderr %q, %d bytes without %q", shell, code, errOut, len(out), want)
		}
	}
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"__complete", "job", "st"}, "status\t"},
		{[]string{"__complete", "-addr", "127.0.0.1:1", "job", "st"}, "status\t"},
		{[]string{"__complete", "job", "status", "3", "--wa"}, "--watch\t"},
		{[]string{"__complete", "-timeout", "3s", "jobs", "-o", ""}, "json"},
	} {
		out, _, code := run(t, tc.args...)
		if code != 0 || !strings.Contains(out, tc.want) {
			t.Errorf("batonctl %q: exit %d, no %q in\n%s", tc.args, code, tc.want, out)
		}
	}
}

// TestNormalize: Go-style single-dash long flags become GNU ones; single
// letters, flag values, "-" and what follows "--" stay as they are.
func TestNormalize(t *testing.T) {
	root := (&common{output: "table", env: Env{Stdout: new(bytes.Buffer), Stderr: new(bytes.Buffer)}}).tree()
	for _, tc := range []struct{ in, want string }{
		{"-addr a:1 job status 3 -watch", "--addr a:1 job status 3 --watch"},
		{"--addr a:1 -o json jobs", "--addr a:1 -o json jobs"},
		{"-addr=a:1 -stale jobs", "--addr=a:1 --stale jobs"},
		{"submit -f - -wait -max-task-failures=3 -adaptive-target 1MiB", "submit -f - --wait --max-task-failures=3 --adaptive-target 1MiB"},
		{"acl token create -name -odd -policy read", "acl token create --name -odd --policy read"},
		{"-timeout 5s -token -t0k job cancel -group -g", "--timeout 5s --token -t0k job cancel --group -g"},
		{"job status -- -watch", "job status -- -watch"},
		{"jobs -h", "jobs -h"},
		{"jobs -help", "jobs --help"},
		{"__complete -addr a:1 job status -wa", "__complete --addr a:1 job status -wa"},
	} {
		if got := strings.Join(normalize(root, strings.Fields(tc.in)), " "); got != tc.want {
			t.Errorf("normalize(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}

// TestMistypedCommandsGetSuggestions: a mistyped command at any level is
// a usage error (exit 2) that suggests the command meant.
func TestMistypedCommandsGetSuggestions(t *testing.T) {
	for _, tc := range []struct {
		args       []string
		unknown    string
		suggestion string
	}{
		{[]string{"stauts"}, "stauts", "status"},
		{[]string{"sbumit", "-f", "plan.json"}, "sbumit", "submit"},
		{[]string{"-addr", "127.0.0.1:1", "jbos"}, "jbos", "jobs"},
		{[]string{"job", "stauts", "3"}, "job stauts", "job status"},
		{[]string{"operator", "raft", "list-peer"}, "operator raft list-peer", "operator raft list-peers"},
		{[]string{"stage", "cancl", "3"}, "stage cancl", "stage cancel"},
		{[]string{"acl", "tokn", "list"}, "acl tokn", "acl token list"},
		{[]string{"completon", "bash"}, "completon", "completion"},
		{[]string{"completion", "bsh"}, "completion bsh", "completion bash"},
		{[]string{"help", "job", "stauts"}, "job stauts", "job status"},
	} {
		out, errOut, code := run(t, tc.args...)
		if code != 2 || out != "" || !strings.Contains(errOut, "unknown command \""+tc.unknown+"\"") || !strings.Contains(errOut, "Did you mean\n\tbatonctl "+tc.suggestion+"\n") {
			t.Errorf("batonctl %v: exit %d, stderr %q; want exit 2, unknown command %q and batonctl %s suggested", tc.args, code, errOut, tc.unknown, tc.suggestion)
		}
	}
	if _, errOut, code := run(t, "frobnicate"); code != 2 || !strings.Contains(errOut, `unknown command "frobnicate"`) {
		t.Errorf("frobnicate: exit %d, %q", code, errOut)
	}
}

// TestUsageErrorsExit2: bad flags and values are usage errors, said in
// batonctl's words.
func TestUsageErrorsExit2(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"submit", "-frobnicate"}, "batonctl submit: unknown flag: --frobnicate\nRun 'batonctl submit -h' for usage.\n"},
		{[]string{"-frobnicate", "jobs"}, "unknown flag: --frobnicate"},
		{[]string{"jobs", "-timeout", "soon"}, `batonctl jobs: invalid argument "soon" for "--timeout" flag`},
		{[]string{"-o", "yaml", "jobs"}, `batonctl: -o must be table, json or name, got "yaml"`},
		{[]string{"jobs", "extra"}, "batonctl jobs: jobs takes no arguments\nRun 'batonctl jobs -h' for usage.\n"},
		{[]string{"job", "status", "x"}, `job id "x" is not a number`},
		{[]string{"-addr", "nonsense", "jobs"}, `batonctl jobs: -addr "nonsense": not host:port`},
		{[]string{"--addr", "nonsense", "jobs"}, `batonctl jobs: -addr "nonsense": not host:port`},
		{[]string{"submit"}, "submit needs -f plan.json"},
	} {
		out, errOut, code := run(t, tc.args...)
		if code != 2 || out != "" || !strings.Contains(errOut, tc.want) {
			t.Errorf("batonctl %v: exit %d, stdout %q, stderr %q; want exit 2 and %q", tc.args, code, out, errOut, tc.want)
		}
	}
}

// TestLongAndGoStyleFlagsAgree: against a running dev cluster, --addr and
// -addr (with a value or =value, before or after the command) reach it,
// and -o/--output/-output, -wait/--wait, -f/--file and -timeout/--timeout
// mean the same.
func TestLongAndGoStyleFlagsAgree(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a dev cluster")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	dc, err := devcluster.Start(ctx, devcluster.Options{Dir: t.TempDir(), Cores: 2, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	defer dc.Close()
	addr := dc.Addr()
	var want string
	for _, args := range [][]string{
		{"-addr", addr, "status", "-o", "json"},
		{"--addr", addr, "status", "--output", "json"},
		{"-addr=" + addr, "-output=json", "status"},
		{"status", "--addr=" + addr, "-o=json", "-timeout", "1m"},
		{"-o", "json", "status", "-addr", addr, "--timeout=1m", "-stale"},
	} {
		out, errOut, code := run(t, args...)
		if code != 0 {
			t.Fatalf("batonctl %v: exit %d: %s", args, code, errOut)
		}
		var st struct {
			Leader string `json:"leader_id"`
		}
		if err := json.Unmarshal([]byte(out), &st); err != nil || st.Leader == "" {
			t.Fatalf("batonctl %v: %v\n%s", args, err, out)
		}
		if want == "" {
			want = st.Leader
		} else if st.Leader != want {
			t.Errorf("batonctl %v: leader %q, want %q", args, st.Leader, want)
		}
	}
	plan := filepath.Join(t.TempDir(), "count.json")
	if err := os.WriteFile(plan, []byte(`{"datasets": {"n": {"op": "range", "n": 10, "partitions": 2}}, "action": {"op": "count", "input": "n"}}`), 0o644); err != nil {
		t.Fatal(err)
	}
	var results []any
	for _, args := range [][]string{
		{"-addr", addr, "submit", "-f", plan, "-wait", "-o", "json", "-timeout", "1m"},
		{"--addr", addr, "submit", "--file", plan, "--wait", "--output", "json", "--timeout", "1m"},
		{"--addr", addr, "submit", "--file=" + plan, "-wait=true", "-o=json"},
		{"submit", "-file", plan, "-addr=" + addr, "-o", "json", "--wait"},
	} {
		out, errOut, code := run(t, args...)
		if code != 0 {
			t.Fatalf("batonctl %v: exit %d: %s", args, code, errOut)
		}
		var j struct {
			State   string `json:"state"`
			Results any    `json:"results"`
		}
		if err := json.Unmarshal([]byte(out), &j); err != nil || j.State != "succeeded" {
			t.Fatalf("batonctl %v: %v %q\n%s", args, err, j.State, out)
		}
		results = append(results, j.Results)
	}
	for _, r := range results[1:] {
		if !reflect.DeepEqual(r, results[0]) {
			t.Errorf("results differ: %v and %v", results[0], r)
		}
	}
}
