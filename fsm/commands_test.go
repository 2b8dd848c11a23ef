package fsm

import (
	"errors"
	"go/ast"
	"go/parser"
	"go/token"
	"os"
	"path/filepath"
	"reflect"
	"sort"
	"strings"
	"testing"

	"github.com/baton-sched/baton/dag"
	"github.com/baton-sched/baton/fsm/fsmpb"
	"google.golang.org/protobuf/proto"
)

// TestEveryTypeIsRegistered: every type fsm.proto defines but
// TYPE_UNSPECIFIED and TYPE_TASKS_ENDED is a registered command,
// scheduler or cluster, and nothing else is registered. TYPE_TASKS_ENDED
// (19) is not a command of its own but packed TaskEnded commands
// (packed.go).
func TestEveryTypeIsRegistered(t *testing.T) {
	if len(fsmpb.Type_name) < 2 {
		t.Fatalf("fsmpb defines %d types", len(fsmpb.Type_name))
	}
	for n, name := range fsmpb.Type_name {
		typ := fsmpb.Type(n)
		sched, cluster := commands.scheduler[typ] != nil, commands.cluster[typ] != nil
		switch {
		case typ == fsmpb.Type_TYPE_UNSPECIFIED || typ == fsmpb.Type_TYPE_TASKS_ENDED:
			if sched || cluster {
				t.Errorf("%s is registered", name)
			}
		case !sched && !cluster:
			t.Errorf("%s (%d) has no registration", name, n)
		}
	}
	if fsmpb.Type_TYPE_TASKS_ENDED != 19 {
		t.Errorf("TYPE_TASKS_ENDED is %d, the log format says 19", fsmpb.Type_TYPE_TASKS_ENDED)
	}
	if got, want := len(commands.scheduler)+len(commands.cluster), len(fsmpb.Type_name)-2; got != want {
		t.Errorf("%d registrations for %d types", got, want)
	}
}

// TestCommandTypeNumbers pins each registration's type number and skip
// flag: they are the log format, and a swap of two entries' types would
// still round-trip.
func TestCommandTypeNumbers(t *testing.T) {
	type wire struct {
		num  int32
		skip bool
	}
	want := map[string]wire{
		"RegisterExecutor":     {1, false},
		"RemoveExecutor":       {2, false},
		"SubmitJob":            {3, false},
		"TaskEnded":            {4, false},
		"ResubmitFailedStages": {5, false},
		"AuthorizeCommit":      {6, false},
		"CancelJob":            {7, false},
		"ReleaseJob":           {8, false},
		"SetMember":            {9, true},
		"LeaderReady":          {10, true},
		"ACLBootstrap":         {11, false},
		"ACLTokenSet":          {12, false},
		"ACLTokenDelete":       {13, false},
		"ACLExecutorBind":      {14, false},
		"CancelJobGroup":       {15, false},
		"CancelStage":          {16, false},
		"Unpersist":            {17, false},
		"CancelAllJobs":        {18, false},
	}
	got := map[string]wire{}
	for _, c := range schedulerCommands {
		got[c.name] = wire{int32(c.typ), false}
	}
	for _, c := range clusterCommands {
		got[c.name] = wire{int32(c.typ), c.skipIfUnknown}
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("registrations:\n got %v\nwant %v", got, want)
	}
}

// TestEveryDagCommandIsRegistered: every type in package dag that is a
// Command (has the isCommand method) has a registration, so a new dag
// command cannot be forgotten here.
func TestEveryDagCommandIsRegistered(t *testing.T) {
	files, err := filepath.Glob(filepath.Join("..", "dag", "*.go"))
	if err != nil {
		t.Fatal(err)
	}
	var found []string
	fset := token.NewFileSet()
	for _, path := range files {
		if strings.HasSuffix(path, "_test.go") {
			continue
		}
		src, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		f, err := parser.ParseFile(fset, path, src, 0)
		if err != nil {
			t.Fatal(err)
		}
		for _, decl := range f.Decls {
			fn, ok := decl.(*ast.FuncDecl)
			if !ok || fn.Name.Name != "isCommand" || fn.Recv == nil || len(fn.Recv.List) != 1 {
				continue
			}
			star, ok := fn.Recv.List[0].Type.(*ast.StarExpr)
			if !ok {
				t.Fatalf("%s: isCommand on a non-pointer receiver", path)
			}
			found = append(found, star.X.(*ast.Ident).Name)
		}
	}
	registered := map[string]bool{}
	for rt := range commands.byDagType {
		if rt.Elem().PkgPath() != reflect.TypeOf(dag.Config{}).PkgPath() {
			t.Errorf("%s is not a dag type", rt)
		}
		registered[rt.Elem().Name()] = true
	}
	sort.Strings(found)
	if len(found) != len(registered) {
		t.Errorf("dag has %d command types %v, fsm registers %d", len(found), found, len(registered))
	}
	for _, name := range found {
		if !registered[name] {
			t.Errorf("dag.%s is a command with no registration", name)
		}
	}
}

// unregistered is a dag.Command of a type dag's apply does not know.
type unregistered struct{ *dag.ReleaseJob }

// TestDagAppliesEveryRegisteredCommand: dag.State.Apply knows every
// registered command type (a zero command may be refused for its
// content, never for its type).
func TestDagAppliesEveryRegisteredCommand(t *testing.T) {
	if r := dag.New(dag.Config{}).Apply(unregistered{&dag.ReleaseJob{}}); !errors.Is(r.Err, dag.ErrUnknownCommand) {
		t.Fatalf("an unregistered type: %v, want dag.ErrUnknownCommand", r.Err)
	}
	for _, c := range schedulerCommands {
		cmd := reflect.New(reflect.TypeOf(c.cmd).Elem()).Interface().(dag.Command)
		if r := dag.New(dag.Config{}).Apply(cmd); errors.Is(r.Err, dag.ErrUnknownCommand) {
			t.Errorf("%s: dag does not apply %T: %v", c.name, cmd, r.Err)
		}
	}
}

// TestAllCommandsCoverEveryRegistration: the round trip tests
// (TestCodecRoundTrip) cover every scheduler command type.
func TestAllCommandsCoverEveryRegistration(t *testing.T) {
	seen := map[reflect.Type]bool{}
	for _, c := range allCommands() {
		seen[reflect.TypeOf(c)] = true
	}
	for _, c := range schedulerCommands {
		if !seen[reflect.TypeOf(c.cmd)] {
			t.Errorf("allCommands has no %s", c.name)
		}
	}
}

// TestRegistryPanicsOnBadRegistrations: a registration the log format
// could not rely on stops the build at init.
func TestRegistryPanicsOnBadRegistrations(t *testing.T) {
	enc := func(dag.Command) (proto.Message, error) { return &fsmpb.ReleaseJob{}, nil }
	dec := func([]byte, int64) (dag.Command, error) { return &dag.ReleaseJob{}, nil }
	decCluster := func([]byte, *Decoded, int) error { return nil }
	sched := func(typ fsmpb.Type, name string, cmd dag.Command) schedulerCommand {
		return schedulerCommand{typ: typ, name: name, cmd: cmd, encode: enc, decode: dec}
	}
	cluster := func(typ fsmpb.Type, name string) clusterCommand {
		return clusterCommand{typ: typ, name: name, decode: decCluster}
	}
	for name, tc := range map[string]struct {
		sched   []schedulerCommand
		cluster []clusterCommand
		want    string
	}{
		"duplicate type": {sched: []schedulerCommand{
			sched(fsmpb.Type_TYPE_CANCEL_JOB, "a", (*dag.CancelJob)(nil)),
			sched(fsmpb.Type_TYPE_CANCEL_JOB, "b", (*dag.ReleaseJob)(nil)),
		}, want: "registered twice"},
		"type in both tables": {
			sched:   []schedulerCommand{sched(fsmpb.Type_TYPE_SET_MEMBER, "a", (*dag.CancelJob)(nil))},
			cluster: []clusterCommand{cluster(fsmpb.Type_TYPE_SET_MEMBER, "b")},
			want:    "registered twice",
		},
		"duplicate dag type": {sched: []schedulerCommand{
			sched(fsmpb.Type_TYPE_CANCEL_JOB, "a", (*dag.CancelJob)(nil)),
			sched(fsmpb.Type_TYPE_RELEASE_JOB, "b", (*dag.CancelJob)(nil)),
		}, want: "dag command *dag.CancelJob registered twice"},
		"duplicate name": {sched: []schedulerCommand{
			sched(fsmpb.Type_TYPE_CANCEL_JOB, "a", (*dag.CancelJob)(nil)),
			sched(fsmpb.Type_TYPE_RELEASE_JOB, "a", (*dag.ReleaseJob)(nil)),
		}, want: "name"},
		"unspecified":       {cluster: []clusterCommand{cluster(fsmpb.Type_TYPE_UNSPECIFIED, "a")}, want: "TYPE_UNSPECIFIED"},
		"undefined number":  {cluster: []clusterCommand{cluster(fsmpb.Type(999), "a")}, want: "does not define"},
		"no dag type":       {sched: []schedulerCommand{sched(fsmpb.Type_TYPE_CANCEL_JOB, "a", nil)}, want: "dag command pointer"},
		"no encoder":        {sched: []schedulerCommand{{typ: fsmpb.Type_TYPE_CANCEL_JOB, name: "a", cmd: (*dag.CancelJob)(nil), decode: dec}}, want: "encoder"},
		"no cluster decode": {cluster: []clusterCommand{{typ: fsmpb.Type_TYPE_SET_MEMBER, name: "a"}}, want: "decoder"},
	} {
		t.Run(name, func(t *testing.T) {
			defer func() {
				p := recover()
				if p == nil {
					t.Fatal("no panic")
				}
				if s, _ := p.(string); !strings.Contains(s, tc.want) {
					t.Fatalf("panic %v, want it to say %q", p, tc.want)
				}
			}()
			newRegistry(tc.sched, tc.cluster)
		})
	}
	// The tables themselves pass.
	newRegistry(schedulerCommands, clusterCommands)
}

// TestReasonMappingRoundTrips: every dag reason has a wire value that
// decodes back to it, every wire value but REASON_UNSPECIFIED decodes to
// a reason that encodes back to it, and anything else is refused.
func TestReasonMappingRoundTrips(t *testing.T) {
	if len(dag.Reasons) == 0 {
		t.Fatal("dag.Reasons is empty")
	}
	for _, r := range dag.Reasons {
		w, err := reasonToProto(r)
		if err != nil {
			t.Errorf("%v: %v", r, err)
			continue
		}
		back, err := reasonFromProto(w)
		if err != nil || back != r {
			t.Errorf("%v -> %v -> %v, %v", r, w, back, err)
		}
	}
	decoded := 0
	for n, name := range fsmpb.Reason_name {
		w := fsmpb.Reason(n)
		r, err := reasonFromProto(w)
		if w == fsmpb.Reason_REASON_UNSPECIFIED {
			if err == nil {
				t.Errorf("%s decodes to %v", name, r)
			}
			continue
		}
		if err != nil {
			t.Errorf("%s: %v", name, err)
			continue
		}
		decoded++
		back, err := reasonToProto(r)
		if err != nil || back != w {
			t.Errorf("%s -> %v -> %v, %v", name, r, back, err)
		}
	}
	if decoded != len(dag.Reasons) {
		t.Errorf("%d wire reasons for %d dag reasons", decoded, len(dag.Reasons))
	}
	for _, r := range []dag.Reason{0, dag.CommitDenied + 1, 255} {
		if w, err := reasonToProto(r); err == nil {
			t.Errorf("dag reason %d encodes as %v", r, w)
		}
	}
	// 257 is Success once truncated to dag's uint8.
	for _, w := range []fsmpb.Reason{-1, 8, 257} {
		if r, err := reasonFromProto(w); err == nil {
			t.Errorf("wire reason %d decodes as %v", w, r)
		}
	}
}

// TestReasonWireNumbers pins the log's reason numbers, as fsm.proto has
// them: reordering dag's constants must not change the log format.
func TestReasonWireNumbers(t *testing.T) {
	want := map[dag.Reason]int32{
		dag.Success:      1,
		dag.Exception:    2,
		dag.FetchFailed:  3,
		dag.ResultLost:   4,
		dag.Killed:       5,
		dag.ExecutorLost: 6,
		dag.CommitDenied: 7,
	}
	if len(want) != len(dag.Reasons) {
		t.Fatalf("%d reasons pinned, dag has %d: pin the new one", len(want), len(dag.Reasons))
	}
	for _, r := range dag.Reasons {
		n, ok := want[r]
		if !ok {
			t.Errorf("%v is not pinned", r)
			continue
		}
		w, err := reasonToProto(r)
		if err != nil || int32(w) != n {
			t.Errorf("%v is %d in the log (%v), want %d", r, int32(w), err, n)
		}
	}
}

// TestTaskEndedReasonsInEntries: a TaskEnded with no reason is never
// logged, and one whose reason number is unknown is a corrupt entry.
func TestTaskEndedReasonsInEntries(t *testing.T) {
	for _, r := range dag.Reasons {
		data, err := Encode(1, []dag.Command{&dag.TaskEnded{Task: 1, Reason: r}})
		if err != nil {
			t.Fatalf("%v: %v", r, err)
		}
		d, err := Decode(data)
		if err != nil || d.Commands[0].(*dag.TaskEnded).Reason != r {
			t.Fatalf("%v: decoded %#v, %v", r, d, err)
		}
	}
	for _, r := range []dag.Reason{0, 99} {
		if _, err := Encode(1, []dag.Command{&dag.TaskEnded{Task: 1, Reason: r}}); err == nil {
			t.Errorf("a TaskEnded with reason %d encodes", r)
		}
	}
	for _, w := range []fsmpb.Reason{fsmpb.Reason_REASON_UNSPECIFIED, 8, 257, -1} {
		payload, err := proto.Marshal(&fsmpb.TaskEnded{Task: 1, Reason: w})
		if err != nil {
			t.Fatal(err)
		}
		b, err := proto.Marshal(&fsmpb.Entry{Time: 1, Commands: []*fsmpb.Command{{Type: fsmpb.Type_TYPE_TASK_ENDED, Payload: payload}}})
		if err != nil {
			t.Fatal(err)
		}
		if d, err := Decode(frame(b)); !errors.Is(err, ErrCorruptEntry) {
			t.Errorf("reason %d: Decode = %+v, %v, want ErrCorruptEntry", w, d, err)
		}
	}
}

// TestEncodeRefusesWhatItCannotLog: no command, a nil command and a
// command of an unregistered type are errors, never entries or panics.
func TestEncodeRefusesWhatItCannotLog(t *testing.T) {
	for _, c := range []dag.Command{nil, (*dag.TaskEnded)(nil), unregistered{&dag.ReleaseJob{}}} {
		if data, err := Encode(1, []dag.Command{c}); err == nil {
			t.Errorf("%T encodes to %x", c, data)
		}
	}
}
