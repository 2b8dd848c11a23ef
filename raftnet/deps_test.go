package raftnet

import (
	"os/exec"
	"strings"
	"testing"
)

// TestImportsNothingOfBaton: raftnet is Raft's assembly and nothing more,
// so it imports no package of Baton's, and neither do its tests (they run
// on testFSM, not the scheduler's state machine). The state machine, the
// command codec, group commit (propose) and the TLS roles (tlsconf) are
// its callers' business. go list answers for the whole dependency graph,
// tests included.
func TestImportsNothingOfBaton(t *testing.T) {
	const module = "github.com/baton-sched/baton"
	goCmd, err := exec.LookPath("go")
	if err != nil {
		t.Fatalf("no go command to list the dependencies with: %v", err)
	}
	out, err := exec.Command(goCmd, "list", "-deps", "-test", "-f", "{{.ImportPath}}", ".").Output()
	if err != nil {
		if ee, ok := err.(*exec.ExitError); ok {
			t.Fatalf("go list: %v\n%s", err, ee.Stderr)
		}
		t.Fatalf("go list: %v", err)
	}
	self := module + "/raftnet"
	deps := strings.Fields(string(out))
	if len(deps) < 10 {
		t.Fatalf("go list gave %d packages: %q", len(deps), deps)
	}
	for _, p := range deps {
		// raftnet itself, its test variant ("raftnet [raftnet.test]",
		// split by Fields) and its test binary.
		if p == self || p == self+".test" || p == "["+self+".test]" {
			continue
		}
		if p == module || strings.HasPrefix(p, module+"/") {
			t.Errorf("raftnet depends on %s: it must import nothing of Baton's", p)
		}
	}
}
