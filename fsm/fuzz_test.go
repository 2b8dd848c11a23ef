package fsm

import (
	"bytes"
	"encoding/binary"
	"go/ast"
	"go/parser"
	"go/token"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"runtime"
	"strconv"
	"strings"
	"testing"

	"github.com/baton-sched/baton/dag"
	"github.com/baton-sched/baton/plan"
)

// The fuzz targets here take input from the network's point of view: a
// plan as a client sends it, and a log entry or a snapshot as a peer sends
// it. None may panic, and none may make a replica allocate without bound.
// `make fuzz` runs each for a few seconds; `go test` runs their seeds.

// fuzzResolver gives every textFile a few splits, whatever it asks for.
type fuzzResolver struct{}

func (fuzzResolver) TextFileSplits(glob string, minPartitions int) ([]plan.Split, error) {
	n := min(max(minPartitions, 1), 8)
	var s []plan.Split
	for i := 0; i < n; i++ {
		s = append(s, plan.Split{Path: glob, Start: int64(i) * 10, Length: 10, Size: int64(n) * 10})
	}
	return s, nil
}

// compileFuzz compiles p, answering each sortByKey's sample with bounds
// picked without running a job.
func compileFuzz(p *plan.Plan, opts plan.Options) (*plan.Graph, error) {
	c, err := plan.Start(p, opts)
	if err != nil {
		return nil, err
	}
	for {
		s, err := c.Next()
		if err != nil {
			return nil, err
		}
		if s == nil {
			return c.Graph()
		}
		b := make([][]byte, s.Reducers-1)
		for i := range b {
			b[i] = binary.BigEndian.AppendUint32(nil, uint32(i))
		}
		if err := c.SetBounds(s, b); err != nil {
			return nil, err
		}
	}
}

// maxFuzzAlloc bounds what one input may allocate.
const maxFuzzAlloc = 1 << 30

// allocated runs fn and returns the bytes it allocated.
func allocated(fn func()) uint64 {
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	fn()
	runtime.ReadMemStats(&after)
	return after.TotalAlloc - before.TotalAlloc
}

// FuzzPlanToApply follows a plan from JSON to the replicated state: parse
// and validate, compile under admission limits, encode the SubmitJob as
// the leader logs it, decode it as a replica does, apply it to a state
// with an executor, then run its first tasks and snapshot it.
func FuzzPlanToApply(f *testing.F) {
	for _, p := range repoPlans(f) {
		f.Add(p)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		if n := allocated(func() { planToApply(t, data) }); n > maxFuzzAlloc {
			t.Fatalf("one plan allocated %d bytes (bound %d): %s", n, maxFuzzAlloc, data)
		}
	})
}

func planToApply(t *testing.T, data []byte) {
	p, err := plan.Parse(data)
	if err != nil {
		return
	}
	// Admission as a leader does it (schedd's default limits).
	g, err := compileFuzz(p, plan.Options{Resolver: fuzzResolver{},
		Limits: plan.Limits{Tasks: 1_000_000, Datasets: 1_000, Records: 100_000, ArgBytes: 64 << 10}})
	if err != nil {
		return
	}
	entry, err := Encode(1, []dag.Command{&dag.SubmitJob{Graph: g, Key: "k"}})
	if err != nil {
		t.Fatalf("a compiled graph does not encode: %v", err)
	}
	d, err := Decode(entry)
	if err != nil {
		t.Fatalf("an encoded entry does not decode: %v", err)
	}
	// The state's own bounds are tighter than admission's here, so both
	// the refusal and the acceptance paths run.
	s := dag.New(dag.Config{MaxJobTasks: 100_000, MaxLiveTasks: 150_000})
	s.Apply(&dag.RegisterExecutor{ID: "e1", Addr: "127.0.0.1:1", Cores: 2})
	r := s.Apply(d.Commands[0])
	if r.Err != nil {
		return
	}
	ran := 0
	s.Runnable(func(ts dag.TaskSpec) bool {
		s.Apply(&dag.TaskEnded{Task: dag.TaskID(ran + 1), Stage: ts.Stage, StageAttempt: ts.StageAttempt, Partition: ts.Partition,
			Executor: "e1", Epoch: ts.Epoch, Reason: dag.Success, Result: []byte{}})
		ran++
		return ran < 64
	})
	if err := s.CheckInvariants(); err != nil {
		t.Fatalf("invariants after %s: %v", data, err)
	}
	if _, err := s.MarshalBinary(); err != nil {
		t.Fatalf("snapshot: %v", err)
	}
}

// FuzzDecodeEntry feeds arbitrary bytes to the log entry decoder, and
// whatever decodes to a state: a corrupt entry is an error, never a
// panic, and a decoded command is a result, never a panic.
func FuzzDecodeEntry(f *testing.F) {
	for _, p := range repoPlans(f) {
		if pl, err := plan.Parse(p); err == nil {
			if g, err := compileFuzz(pl, plan.Options{Resolver: fuzzResolver{}, Limits: plan.Limits{Tasks: 1000}}); err == nil {
				if e, err := Encode(7, []dag.Command{&dag.SubmitJob{Graph: g}}); err == nil {
					f.Add(e)
				}
			}
		}
	}
	for _, cmds := range [][]dag.Command{
		{&dag.RegisterExecutor{ID: "e1", Addr: "a:1", Cores: 4}},
		{&dag.TaskEnded{Task: 1, Stage: 0, Partition: 0, Executor: "e1", Reason: dag.Success, Result: []byte("x"), ResultSize: 1}},
		{&dag.TaskEnded{Task: 2, Reason: dag.FetchFailed, FetchShuffle: 0, FetchMap: 3, FetchExecutor: "e1"}},
		{&dag.AuthorizeCommit{Stage: 0, Partition: 0, Task: 9, Executor: "e1"}, &dag.CancelJob{Job: 0}, &dag.ReleaseJob{Job: 0}},
		{&dag.RemoveExecutor{ID: "e1"}, &dag.ResubmitFailedStages{}},
		// A packed run of successes between two other commands.
		{&dag.CancelJob{Job: 9}, &dag.TaskEnded{Task: 10, Partition: 0, Executor: "e1", Reason: dag.Success, MapBytes: 5, MapSizes: []byte{1, 2}},
			&dag.TaskEnded{Task: 11, Partition: 1, Executor: "e1", Reason: dag.Success, Result: []byte("y"), ResultSize: 1, Indirect: true, DurationMs: 3},
			&dag.ReleaseJob{Job: 9}},
	} {
		if e, err := Encode(3, cmds); err == nil {
			f.Add(e)
		}
	}
	if e, err := EncodeMember(1, Member{ID: "a", RaftAddr: "127.0.0.1:1"}); err == nil {
		f.Add(e)
	}
	for _, c := range []ACLCommand{
		{Bootstrap: &ACLBootstrap{Management: Token{Accessor: "m", SecretHash: HashSecret("m"), Policy: PolicyManagement}, ServerSecret: make([]byte, 32)}},
		{Set: &Token{Accessor: "r", SecretHash: HashSecret("r"), Policy: PolicyRead}}, {Delete: "r"},
	} {
		if e, err := EncodeACL(2, c); err == nil {
			f.Add(e)
		}
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		n := allocated(func() {
			d, err := Decode(data)
			if err != nil {
				return
			}
			s := dag.New(dag.Config{MaxJobTasks: 100_000, MaxLiveTasks: 150_000})
			s.Apply(&dag.RegisterExecutor{ID: "e1", Addr: "127.0.0.1:1", Cores: 2})
			s.Apply(&dag.SubmitJob{Graph: &plan.Graph{Nodes: []plan.Node{{Op: "range", Partitions: 2}}, Action: plan.GraphAction{Op: "count"}}})
			a := newACL()
			for i, c := range d.Commands {
				if c != nil {
					s.Apply(c)
				}
				if d.ACL[i] != nil {
					a.apply(d.ACL[i])
				}
			}
			if err := s.CheckInvariants(); err != nil {
				t.Fatalf("invariants: %v", err)
			}
		})
		if n > maxFuzzAlloc {
			t.Fatalf("one entry allocated %d bytes", n)
		}
	})
}

// FuzzRestore feeds arbitrary bytes to snapshot restore: anything but a
// whole, consistent snapshot is an error, never a panic.
func FuzzRestore(f *testing.F) {
	fm := New(Options{})
	if b, _, err := fm.Backup(); err == nil {
		f.Add(b)
	}
	s := dag.New(dag.Config{})
	s.Apply(&dag.RegisterExecutor{ID: "e1", Addr: "127.0.0.1:1", Cores: 2})
	s.Apply(&dag.SubmitJob{Graph: &plan.Graph{Nodes: []plan.Node{{Op: "range", Partitions: 2}}, Action: plan.GraphAction{Op: "count"}}})
	if b, err := encodeSnapshot(snapshotContents{state: s, members: map[string]Member{"a": {ID: "a", RaftAddr: "x"}}, index: 5, term: 1}); err == nil {
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		n := allocated(func() {
			if err := New(Options{}).Restore(nopCloser{bytes.NewReader(data)}); err == nil {
				return
			}
		})
		if n > maxFuzzAlloc {
			t.Fatalf("one snapshot of %d bytes allocated %d bytes", len(data), n)
		}
	})
}

type nopCloser struct{ *bytes.Reader }

func (nopCloser) Close() error { return nil }

// repoPlans returns every plan written in the repository: JSON blocks in
// the docs and string literals in Go files that parse as plans (format
// verbs filled in), and the hostile plans the issues found.
func repoPlans(tb testing.TB) [][]byte {
	tb.Helper()
	seen := map[string]bool{}
	var out [][]byte
	add := func(s string) {
		s = strings.TrimSpace(s)
		if seen[s] || !strings.Contains(s, `"datasets"`) {
			return
		}
		seen[s] = true
		out = append(out, []byte(s))
	}
	for _, s := range []string{
		`{"name":"x","datasets":{"r":{"op":"range","n":1,"partitions":1000000000}},"action":{"op":"count","input":"r"}}`,
		`{"datasets":{"r":{"op":"range","n":1,"partitions":4294967297}},"action":{"op":"count","input":"r"}}`,
		`{"datasets":{"r":{"op":"range","n":1,"partitions":10000000000}},"action":{"op":"count","input":"r"}}`,
		`{"datasets":{"r":{"op":"range","n":9,"partitions":2},"s":{"op":"sortByKey","input":"r","partitions":2000000000}},"action":{"op":"collect","input":"s"}}`,
		`{"datasets":{"r":{"op":"range","n":9,"partitions":3},"u":{"op":"union","inputs":["r","r","r"]},"g":{"op":"groupByKey","input":"u","partitions":90000}},"action":{"op":"collect","input":"g"}}`,
	} {
		add(s)
	}
	root := filepath.Join("..")
	verbs := regexp.MustCompile(`%[-+# 0]*[0-9]*[dsqv]`)
	jsonBlock := regexp.MustCompile("(?s)```json\n(.*?)```")
	filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return nil
		}
		if d.IsDir() {
			if name := d.Name(); name != ".." && (strings.HasPrefix(name, ".") || name == "bin" || name == "node_modules") {
				return filepath.SkipDir
			}
			return nil
		}
		switch filepath.Ext(path) {
		case ".md":
			b, err := os.ReadFile(path)
			if err != nil {
				return nil
			}
			for _, m := range jsonBlock.FindAllSubmatch(b, -1) {
				add(string(m[1]))
			}
		case ".go":
			if strings.HasSuffix(path, ".pb.go") {
				return nil
			}
			fset := token.NewFileSet()
			file, err := parser.ParseFile(fset, path, nil, 0)
			if err != nil {
				return nil
			}
			ast.Inspect(file, func(n ast.Node) bool {
				lit, ok := n.(*ast.BasicLit)
				if !ok || lit.Kind != token.STRING || !strings.Contains(lit.Value, "datasets") {
					return true
				}
				s, err := strconv.Unquote(lit.Value)
				if err != nil {
					return true
				}
				s = verbs.ReplaceAllStringFunc(s, func(v string) string {
					switch v[len(v)-1] {
					case 'd':
						return "2"
					case 'q':
						return `"x"`
					}
					return "x"
				})
				if _, err := plan.Parse([]byte(s)); err == nil {
					add(s)
				}
				return true
			})
		}
		return nil
	})
	if len(out) < 20 {
		tb.Fatalf("found only %d plans in the repository", len(out))
	}
	return out
}
