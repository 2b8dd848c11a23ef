package dag

import (
	"bytes"
	"fmt"
	"reflect"
	"slices"
	"sort"
	"strconv"
	"strings"
	"testing"

	"github.com/baton-sched/baton/plan"
	"github.com/cockroachdb/datadriven"
)

// TestScenarios runs the data-driven scenarios in testdata/, one file per
// Spark behaviour. Each file is a sequence of commands against one State;
// after every command the harness checks the invariants, that the epoch
// never decreased, and that a snapshot round-trips byte-identically to an
// equal state. Run with -rewrite to regenerate expected output.
//
// Commands:
//
//	config [max-task-failures=N] [max-stage-attempts=N] [max-result-size=N] [retained-jobs=N]
//	       [max-graph-nodes=N] [max-job-tasks=N] [max-live-tasks=N] [max-running-jobs=N]
//	       [max-failures-per-executor=N] [exclude-timeout=NS]
//	    start over with an empty state and these limits
//	executor add id=E [cores=N] | executor lose id=E [reason=...]
//	submit [key=K] [partitions=(0,1)] [pool=P] [group=G] [max-task-failures=N] [max-result-size=N]
//	       [map-stage] [adaptive=BYTES]
//	    input: the graph, one node a line, parents before children:
//	      NAME: source p=N
//	      NAME: map PARENT
//	      NAME: union PARENT PARENT...
//	      NAME: shuffle PARENT... p=N [key=K]   (key defaults to PARENT>N)
//	    the last node is the output; the action is collect
//	end stage=S part=P [exec=E] [reason=success|exception|fetch|resultlost|killed|lost|denied]
//	    [attempt=A] [epoch=N] [task=T] [try=N] [size=N] [indirect] [result=TEXT] [msg=TEXT]
//	    [from=E] [shuffle=N] [map=N] [reduce=N] [sizes=(b,b,...)] [bytes=N]
//	    [dur=MS] [app] [speculative]   (app: an executor loss caused by the task)
//	    [acc=(NAME:KIND:VALUE,...)]     accumulator updates (kinds as AccKind.String)
//	    defaults: the stage's latest attempt and epoch, a fresh task id, exec e1
//	run stage=S [exec=E] [size=N] [indirect]
//	    every runnable task of the stage succeeds (round-robin over exec's values)
//	resubmit | commit stage=S part=P task=T [exec=E] | cancel job=J|group=G|stage=S|all [reason=R] | release job=J
//	events on|off       results also print the transitions (Result.Events)
//	unpersist key=(K,...) | cached   forget persisted datasets; list them
//	    (a graph node NAME marked "persist" has key c-NAME; end and run
//	    take "cache": the task keeps every persisted partition it computed)
//	runnable [stage=S]   the tasks the driver may launch now
//	state                the whole state, readable
//	excluded stage=S     the executors excluded for the stage's current attempt and for every task
//	durations stage=S    the successful tasks of the stage's current attempt and their median
//	clock advance=NS     the next commands' time moves on by NS
//	accumulators job=J   the job's accumulators: of successes, then of failed attempts
//	statistics shuffle=N the shuffle's bytes by reducer (MapOutputStatistics)
type scenario struct {
	s        *State
	nextTask TaskID
	try      map[[2]int]int // (stage, partition) -> attempt number
	epoch    uint64
	time     int64
	events   bool // print each command's events
}

func TestScenarios(t *testing.T) {
	datadriven.Walk(t, "testdata", func(t *testing.T, path string) {
		sc := &scenario{s: New(Config{}), nextTask: 1, try: map[[2]int]int{}}
		datadriven.RunTest(t, path, func(t *testing.T, d *datadriven.TestData) string {
			out := sc.run(t, d)
			sc.check(t, d)
			return out
		})
	})
}

func (sc *scenario) check(t *testing.T, d *datadriven.TestData) {
	t.Helper()
	if err := sc.s.CheckInvariants(); err != nil {
		t.Fatalf("%s: invariants: %v", d.Pos, err)
	}
	if sc.s.epoch < sc.epoch {
		t.Fatalf("%s: epoch went back from %d to %d", d.Pos, sc.epoch, sc.s.epoch)
	}
	sc.epoch = sc.s.epoch
	b1, err := sc.s.MarshalBinary()
	if err != nil {
		t.Fatalf("%s: snapshot: %v", d.Pos, err)
	}
	r, err := Unmarshal(b1)
	if err != nil {
		t.Fatalf("%s: restore: %v", d.Pos, err)
	}
	b2, _ := r.MarshalBinary()
	if !bytes.Equal(b1, b2) {
		t.Fatalf("%s: snapshot -> restore -> snapshot differs", d.Pos)
	}
	if !statesEqual(sc.s, r) {
		t.Fatalf("%s: restored state differs from the original: %s", d.Pos,
			firstDiff("state", reflect.ValueOf(sc.s).Elem(), reflect.ValueOf(r).Elem()))
	}
}

// statesEqual compares two states structurally, treating graphs by value.
func statesEqual(a, b *State) bool {
	ca, cb := *a, *b
	ca.drop, cb.drop = Dropped{}, Dropped{}
	return reflect.DeepEqual(&ca, &cb)
}

func (sc *scenario) apply(cmd Command) Result {
	sc.time++
	return sc.s.Apply(cmd)
}

func (sc *scenario) run(t *testing.T, d *datadriven.TestData) string {
	s := sc.s
	switch d.Cmd {
	case "events":
		// events on: results print the transitions they made.
		sc.events = len(d.CmdArgs) > 0 && d.CmdArgs[0].Key == "on"
		return "ok"

	case "config":
		var cfg Config
		d.MaybeScanArgs(t, "max-task-failures", &cfg.MaxTaskFailures)
		d.MaybeScanArgs(t, "max-stage-attempts", &cfg.MaxConsecutiveStageAttempts)
		d.MaybeScanArgs(t, "max-result-size", &cfg.MaxResultSize)
		d.MaybeScanArgs(t, "retained-jobs", &cfg.RetainedJobs)
		d.MaybeScanArgs(t, "max-graph-nodes", &cfg.MaxGraphNodes)
		d.MaybeScanArgs(t, "max-job-tasks", &cfg.MaxJobTasks)
		d.MaybeScanArgs(t, "max-live-tasks", &cfg.MaxLiveTasks)
		d.MaybeScanArgs(t, "max-running-jobs", &cfg.MaxRunningJobs)
		d.MaybeScanArgs(t, "max-failures-per-executor", &cfg.MaxFailuresPerExecutor)
		d.MaybeScanArgs(t, "exclude-timeout", &cfg.ExcludeTimeout)
		*sc = scenario{s: New(cfg), nextTask: 1, try: map[[2]int]int{}}
		return fmt.Sprintf("%+v", sc.s.cfg)

	case "executor":
		var id string
		d.ScanArgs(t, "id", &id)
		switch d.CmdArgs[0].Key {
		case "add":
			cores := 4
			d.MaybeScanArgs(t, "cores", &cores)
			return sc.result(sc.apply(&RegisterExecutor{Time: sc.time, ID: ExecutorID(id), Addr: id + ":7000", Cores: cores}))
		case "lose":
			reason := "heartbeat timeout"
			d.MaybeScanArgs(t, "reason", &reason)
			return sc.result(sc.apply(&RemoveExecutor{Time: sc.time, ID: ExecutorID(id), Reason: reason}))
		}
		d.Fatalf(t, "executor add|lose")

	case "submit":
		g := parseGraph(t, d)
		c := &SubmitJob{Time: sc.time, Graph: g}
		d.MaybeScanArgs(t, "key", &c.Key)
		d.MaybeScanArgs(t, "pool", &c.Pool)
		d.MaybeScanArgs(t, "group", &c.Group)
		d.MaybeScanArgs(t, "max-task-failures", &c.MaxTaskFailures)
		d.MaybeScanArgs(t, "max-result-size", &c.MaxResultSize)
		if d.HasArg("partitions") {
			c.Partitions = []int{}
			d.ScanArgs(t, "partitions", &c.Partitions)
		}
		if d.HasArg("none") {
			c.Partitions = []int{}
		}
		c.MapStage = d.HasArg("map-stage")
		d.MaybeScanArgs(t, "adaptive", &c.AdaptiveTarget)
		r := sc.apply(c)
		if r.Err != nil {
			return sc.result(r)
		}
		return fmt.Sprintf("job %d\n%s", r.Job, sc.result(r))

	case "end":
		return sc.result(sc.apply(sc.taskEnded(t, d)))

	case "run":
		var stageID int
		d.ScanArgs(t, "stage", &stageID)
		execs := []string{"e1"}
		if arg, ok := d.Arg("exec"); ok {
			execs = arg.Vals
		}
		var specs []TaskSpec
		s.Runnable(func(ts TaskSpec) bool {
			if ts.Stage == StageID(stageID) {
				specs = append(specs, ts)
			}
			return true
		})
		if len(specs) == 0 {
			return "nothing to run"
		}
		var b strings.Builder
		for i, ts := range specs {
			c := sc.success(ts, ExecutorID(execs[i%len(execs)]))
			if !ts.Map && d.MaybeScanArgs(t, "size", &c.ResultSize) {
				c.Result = bytes.Repeat([]byte{'x'}, int(c.ResultSize))
			}
			if !ts.Map && d.HasArg("indirect") {
				c.Indirect = true
				c.Result = nil
			}
			if d.HasArg("cache") {
				c.Cached = sc.cachedBy(c.Stage, c.Partition)
			}
			r := sc.apply(c)
			fmt.Fprintf(&b, "%d.%d p%d on %s: %s\n", ts.Stage, ts.StageAttempt, ts.Partition, c.Executor, oneLine(r))
		}
		b.WriteString(sc.summary())
		return b.String()

	case "resubmit":
		return sc.result(sc.apply(&ResubmitFailedStages{Time: sc.time}))

	case "commit":
		c := &AuthorizeCommit{Time: sc.time}
		var st, part, task int
		d.ScanArgs(t, "stage", &st)
		d.ScanArgs(t, "part", &part)
		d.ScanArgs(t, "task", &task)
		c.Stage, c.Partition, c.Task = StageID(st), part, TaskID(task)
		if d.HasArg("exec") {
			var ex string
			d.ScanArgs(t, "exec", &ex)
			c.Executor = ExecutorID(ex)
		}
		if stg := s.stages[c.Stage]; stg != nil {
			c.StageAttempt = stg.attempt
		}
		r := sc.apply(c)
		if r.Err != nil {
			return "error: " + r.Err.Error()
		}
		if r.Authorized {
			return "authorized"
		}
		return "denied: " + r.Ignored

	case "cancel":
		var job, stage int
		var group, reason string
		d.MaybeScanArgs(t, "reason", &reason)
		switch {
		case d.MaybeScanArgs(t, "group", &group):
			return sc.result(sc.apply(&CancelJobGroup{Time: sc.time, Group: group, Reason: reason}))
		case d.MaybeScanArgs(t, "stage", &stage):
			return sc.result(sc.apply(&CancelStage{Time: sc.time, Stage: StageID(stage), Reason: reason}))
		case d.HasArg("all"):
			return sc.result(sc.apply(&CancelAllJobs{Time: sc.time, Reason: reason}))
		}
		d.ScanArgs(t, "job", &job)
		return sc.result(sc.apply(&CancelJob{Time: sc.time, Job: JobID(job), Reason: reason}))

	case "release":
		var job int
		d.ScanArgs(t, "job", &job)
		return sc.result(sc.apply(&ReleaseJob{Time: sc.time, Job: JobID(job)}))

	case "unpersist":
		arg, _ := d.Arg("key")
		return sc.result(sc.apply(&Unpersist{Time: sc.time, Keys: arg.Vals}))

	case "cached":
		var b strings.Builder
		for _, c := range s.Cached() {
			execs := make([]string, 0, len(c.Executors))
			for e, n := range c.Executors {
				execs = append(execs, fmt.Sprintf("%s:%d", e, n))
			}
			sort.Strings(execs)
			fmt.Fprintf(&b, "%s (%s): %d/%d partitions, %d bytes on %v\n", c.Key, c.Name, c.Cached, c.Partitions, c.Bytes, execs)
		}
		if b.Len() == 0 {
			return "none"
		}
		return b.String()

	case "runnable":
		var b strings.Builder
		only := -1
		d.MaybeScanArgs(t, "stage", &only)
		s.Runnable(func(ts TaskSpec) bool {
			if only >= 0 && ts.Stage != StageID(only) {
				return true
			}
			fmt.Fprintf(&b, "job %d stage %d.%d p%d epoch %d", ts.Job, ts.Stage, ts.StageAttempt, ts.Partition, ts.Epoch)
			if ts.Failures > 0 {
				fmt.Fprintf(&b, " failures %d", ts.Failures)
			}
			if ts.ReduceEnd > 0 {
				fmt.Fprintf(&b, " reducers [%d,%d)", ts.ReduceStart, ts.ReduceEnd)
			}
			if ts.Cached {
				b.WriteString(" cached")
			}
			if len(ts.Preferred) > 0 {
				fmt.Fprintf(&b, " prefer %v", ts.Preferred)
			}
			b.WriteString("\n")
			return true
		})
		if b.Len() == 0 {
			return "none"
		}
		return b.String()

	case "state":
		return sc.dump()

	case "excluded":
		var id int
		d.ScanArgs(t, "stage", &id)
		st := s.stages[StageID(id)]
		attempt := -1
		if st != nil {
			attempt = st.attempt
		}
		all, byPart := s.StageExclusions(StageID(id), attempt)
		parts := make([]int, 0, len(byPart))
		for p := range byPart {
			parts = append(parts, p)
		}
		sort.Ints(parts)
		var b strings.Builder
		fmt.Fprintf(&b, "stage %d.%d: all tasks %v", id, attempt, all)
		for _, p := range parts {
			fmt.Fprintf(&b, ", p%d %v", p, byPart[p])
		}
		b.WriteString("\nevery task:")
		for _, x := range s.ExcludedExecutors(sc.time) {
			fmt.Fprintf(&b, " %s until %d", x.ID, x.Until)
		}
		return b.String()

	case "durations":
		var id int
		d.ScanArgs(t, "stage", &id)
		attempt := -1
		if st := s.stages[StageID(id)]; st != nil {
			attempt = st.attempt
		}
		n, med := s.TaskDurations(StageID(id), attempt)
		return fmt.Sprintf("%d succeeded, median %d ms", n, med)

	case "statistics":
		var id int
		d.ScanArgs(t, "shuffle", &id)
		bytes, maps, ok := s.ShuffleStatistics(ShuffleID(id))
		if !ok {
			return fmt.Sprintf("no shuffle %d", id)
		}
		return fmt.Sprintf("%d maps registered, bytes by reducer %v", maps, bytes)

	case "accumulators":
		var id int
		d.ScanArgs(t, "job", &id)
		info, ok := s.Job(JobID(id))
		if !ok {
			return fmt.Sprintf("no job %d", id)
		}
		var b strings.Builder
		show := func(title string, accs []Accumulator, dropped int64) {
			fmt.Fprintf(&b, "%s:", title)
			for _, a := range accs {
				fmt.Fprintf(&b, " %s(%s)=%s/%d", a.Name, a.Kind, a.Value(), a.Tasks)
			}
			if dropped > 0 {
				fmt.Fprintf(&b, " dropped %d", dropped)
			}
		}
		show("successes", info.Accumulators, info.DroppedAccUpdates)
		b.WriteString("\n")
		show("failed attempts", info.FailedAccumulators, info.DroppedFailedAcc)
		return b.String()

	case "clock":
		var by int64
		d.ScanArgs(t, "advance", &by)
		sc.time += by
		return fmt.Sprintf("time %d", sc.time)
	}
	d.Fatalf(t, "unknown command %q", d.Cmd)
	return ""
}

// cachedBy lists the persisted partitions a task of the stage computing
// partition p keeps (10 bytes each): every persisted dataset on its
// narrow paths.
func (sc *scenario) cachedBy(id StageID, p int) []CachedPartition {
	st := sc.s.stages[id]
	if st == nil {
		return nil
	}
	reads := persistedReads(st.graph, st.node, p)
	keys := make([]string, 0, len(reads))
	for k := range reads {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var out []CachedPartition
	for _, k := range keys {
		gen, _ := sc.s.CacheGeneration(k)
		out = append(out, CachedPartition{Key: k, Partition: reads[k], Bytes: 10, Gen: gen})
	}
	return out
}

// success builds a successful TaskEnded for a runnable task.
func (sc *scenario) success(ts TaskSpec, exec ExecutorID) *TaskEnded {
	key := [2]int{int(ts.Stage), ts.Partition}
	c := &TaskEnded{
		Time: sc.time, Task: sc.nextTask, Stage: ts.Stage, StageAttempt: ts.StageAttempt,
		Partition: ts.Partition, Attempt: sc.try[key], Executor: exec, Epoch: ts.Epoch, Reason: Success,
	}
	sc.try[key]++
	sc.nextTask++
	if ts.Map {
		sh := sc.s.shuffles[ts.Shuffle]
		c.MapBytes = uint64(sh.reducers) * 100
		c.MapSizes = bytes.Repeat([]byte{CompressSize(100)}, sh.reducers)
	} else {
		c.Result = []byte(fmt.Sprintf("r%d", ts.Partition))
		c.ResultSize = int64(len(c.Result))
	}
	return c
}

func (sc *scenario) taskEnded(t *testing.T, d *datadriven.TestData) *TaskEnded {
	var stageID, part int
	d.ScanArgs(t, "stage", &stageID)
	d.ScanArgs(t, "part", &part)
	c := &TaskEnded{Time: sc.time, Stage: StageID(stageID), Partition: part, Executor: "e1", Reason: Success}
	if st := sc.s.stages[c.Stage]; st != nil {
		c.StageAttempt = st.attempt
		c.Epoch = st.epoch
		if st.isMap {
			sh := sc.s.shuffles[st.shuffle]
			c.MapBytes = uint64(sh.reducers) * 100
			c.MapSizes = bytes.Repeat([]byte{CompressSize(100)}, sh.reducers)
		} else {
			c.Result = []byte(fmt.Sprintf("r%d", part))
			c.ResultSize = int64(len(c.Result))
		}
	}
	key := [2]int{stageID, part}
	c.Attempt = sc.try[key]
	sc.try[key]++
	c.Task = sc.nextTask
	sc.nextTask++
	var exec, reason, result, from string
	var task, epoch, attempt, try, shuffle, mapIdx, reduce, bytesN int
	if d.MaybeScanArgs(t, "exec", &exec) {
		c.Executor = ExecutorID(exec)
	}
	if d.MaybeScanArgs(t, "task", &task) {
		c.Task = TaskID(task)
	}
	if d.MaybeScanArgs(t, "epoch", &epoch) {
		c.Epoch = uint64(epoch)
	}
	if d.MaybeScanArgs(t, "attempt", &attempt) {
		c.StageAttempt = attempt
	}
	if d.MaybeScanArgs(t, "try", &try) {
		c.Attempt = try
	}
	d.MaybeScanArgs(t, "msg", &c.Message)
	d.MaybeScanArgs(t, "dur", &c.DurationMs)
	c.ExitCausedByApp = d.HasArg("app")
	c.Speculative = d.HasArg("speculative")
	if arg, ok := d.Arg("acc"); ok {
		for _, v := range arg.Vals {
			f := strings.Split(v, ":")
			if len(f) != 3 {
				d.Fatalf(t, "acc: %q is not NAME:KIND:VALUE", v)
			}
			k, ok := ParseAccKind(f[1])
			if !ok {
				d.Fatalf(t, "acc: unknown kind %q", f[1])
			}
			a := Accumulator{Name: f[0], Kind: k}
			var err error
			if k.Float() {
				a.Float, err = strconv.ParseFloat(f[2], 64)
			} else {
				a.Int, err = strconv.ParseInt(f[2], 10, 64)
			}
			if err != nil {
				d.Fatalf(t, "acc: %v", err)
			}
			c.Accumulators = append(c.Accumulators, a)
		}
	}
	if d.MaybeScanArgs(t, "size", &c.ResultSize) {
		c.Result = bytes.Repeat([]byte{'x'}, int(c.ResultSize))
	}
	if d.MaybeScanArgs(t, "result", &result) {
		c.Result = []byte(result)
		c.ResultSize = int64(len(result))
	}
	if d.HasArg("indirect") {
		c.Indirect = true
		c.Result = nil
	}
	if d.HasArg("cache") {
		c.Cached = sc.cachedBy(c.Stage, part)
	}
	if d.MaybeScanArgs(t, "bytes", &bytesN) {
		c.MapBytes = uint64(bytesN)
	}
	if arg, ok := d.Arg("sizes"); ok {
		c.MapSizes = nil
		for _, v := range arg.Vals {
			n, err := strconv.ParseUint(v, 10, 64)
			if err != nil {
				d.Fatalf(t, "sizes: %v", err)
			}
			c.MapSizes = append(c.MapSizes, CompressSize(n))
		}
	}
	if d.MaybeScanArgs(t, "reason", &reason) {
		reasons := map[string]Reason{"success": Success, "exception": Exception, "fetch": FetchFailed,
			"resultlost": ResultLost, "killed": Killed, "lost": ExecutorLost, "denied": CommitDenied, "bogus": Reason(99)}
		r, ok := reasons[reason]
		if !ok {
			d.Fatalf(t, "unknown reason %q", reason)
		}
		c.Reason = r
		if r != Success {
			c.Result, c.ResultSize, c.MapSizes, c.MapBytes = nil, 0, nil, 0
		}
	}
	if c.Reason == FetchFailed {
		c.FetchMap = 0
		if d.MaybeScanArgs(t, "from", &from) {
			c.FetchExecutor = ExecutorID(from)
		}
		if d.MaybeScanArgs(t, "shuffle", &shuffle) {
			c.FetchShuffle = ShuffleID(shuffle)
		}
		if d.MaybeScanArgs(t, "map", &mapIdx) {
			c.FetchMap = mapIdx
		}
		if d.MaybeScanArgs(t, "reduce", &reduce) {
			c.FetchReduce = reduce
		} else {
			c.FetchReduce = part
		}
	}
	return c
}

// parseGraph reads the submit command's graph.
func parseGraph(t *testing.T, d *datadriven.TestData) *plan.Graph {
	g := &plan.Graph{Action: plan.GraphAction{Op: "collect"}}
	index := map[string]int{}
	for _, line := range strings.Split(strings.TrimSpace(d.Input), "\n") {
		name, rest, ok := strings.Cut(line, ":")
		if !ok {
			d.Fatalf(t, "graph line %q: want NAME: OP ...", line)
		}
		name = strings.TrimSpace(name)
		fields := strings.Fields(rest)
		n := plan.Node{Name: name, Op: fields[0]}
		var parents []int
		key := ""
		for _, f := range fields[1:] {
			switch {
			case strings.HasPrefix(f, "p="):
				n.Partitions, _ = strconv.Atoi(f[2:])
			case strings.HasPrefix(f, "key="):
				key = f[4:]
			case f == "persist":
				n.Persist = "c-" + name
			default:
				i, ok := index[f]
				if !ok {
					d.Fatalf(t, "graph line %q: unknown parent %q", line, f)
				}
				parents = append(parents, i)
			}
		}
		switch n.Op {
		case "source":
		case "map":
			n.Partitions = g.Nodes[parents[0]].Partitions
			n.Deps = []plan.Dep{{Kind: plan.OneToOne, Parent: parents[0]}}
		case "union":
			for _, p := range parents {
				np := g.Nodes[p].Partitions
				n.Deps = append(n.Deps, plan.Dep{Kind: plan.Range, Parent: p, OutStart: n.Partitions, Length: np})
				n.Partitions += np
			}
		case "shuffle":
			for _, p := range parents {
				k := key
				if k == "" || len(parents) > 1 {
					k = fmt.Sprintf("%s>%d", g.Nodes[p].Name, n.Partitions)
				}
				n.Deps = append(n.Deps, plan.Dep{Kind: plan.Shuffle, Parent: p, Shuffle: &plan.ShuffleDep{
					Key: k, Partitioner: plan.Partitioner{Kind: "hash", Partitions: n.Partitions}}})
			}
		default:
			d.Fatalf(t, "graph line %q: unknown op %q", line, n.Op)
		}
		index[name] = len(g.Nodes)
		g.Nodes = append(g.Nodes, n)
	}
	g.Output = len(g.Nodes) - 1
	return g
}

func oneLine(r Result) string {
	switch {
	case r.Err != nil:
		return "error: " + r.Err.Error()
	case r.Ignored != "":
		return "ignored: " + r.Ignored
	}
	return "ok"
}

// result prints a command's result and the scheduler's sets.
func (sc *scenario) result(r Result) string {
	var b strings.Builder
	b.WriteString(oneLine(r))
	b.WriteString("\n")
	if r.Dropped != nil {
		fmt.Fprintf(&b, "dropped: shuffles %v", r.Dropped.Shuffles)
		for _, ref := range r.Dropped.Results {
			fmt.Fprintf(&b, " result(job %d p%d on %s task %d)", ref.Job, ref.Partition, ref.Executor, ref.Task)
		}
		if len(r.Dropped.Cached) > 0 {
			fmt.Fprintf(&b, " cached %v", r.Dropped.Cached)
		}
		b.WriteString("\n")
	}
	if len(r.Excluded) > 0 {
		fmt.Fprintf(&b, "excluded for every task: %v\n", r.Excluded)
	}
	if len(r.Cancelled) > 0 {
		fmt.Fprintf(&b, "cancelled jobs %v\n", r.Cancelled)
	}
	if sc.events && len(r.Events) > 0 {
		var evs []string
		for _, e := range r.Events {
			switch e.Kind {
			case StageSubmitted:
				ev := fmt.Sprintf("%s %d.%d job %d tasks %d", e.Kind, e.Stage, e.Attempt, e.Job, e.Tasks)
				if e.Message != "" {
					ev += " (" + e.Message + ")"
				}
				evs = append(evs, ev)
			case StageCompleted, StageAttemptFailed:
				evs = append(evs, fmt.Sprintf("%s %d.%d job %d", e.Kind, e.Stage, e.Attempt, e.Job))
			case JobEnded:
				evs = append(evs, fmt.Sprintf("%s %d %s", e.Kind, e.Job, e.Status))
			case EpochBumped:
				evs = append(evs, fmt.Sprintf("%s %d", e.Kind, e.Epoch))
			case JobSubmitted:
				evs = append(evs, fmt.Sprintf("%s %d %q tasks %d", e.Kind, e.Job, e.Name, e.Tasks))
			}
		}
		fmt.Fprintf(&b, "events: %s\n", strings.Join(evs, "; "))
	}
	b.WriteString(sc.summary())
	return b.String()
}

// summary prints the scheduling sets, the epoch and every job's status.
func (sc *scenario) summary() string {
	s := sc.s
	var b strings.Builder
	set := func(name string, ids idSet) {
		fmt.Fprintf(&b, "%s [", name)
		for i, id := range ids {
			if i > 0 {
				b.WriteString(" ")
			}
			st := s.stages[StageID(id)]
			fmt.Fprintf(&b, "%d", id)
			if name == "running" {
				fmt.Fprintf(&b, ".%d", st.attempt)
				if st.zombie {
					b.WriteString("z")
				}
				fmt.Fprintf(&b, "(%d/%d)", st.npend, st.nTasks)
			}
		}
		b.WriteString("] ")
	}
	set("running", s.running)
	set("waiting", s.waiting)
	set("failed", s.failed)
	fmt.Fprintf(&b, "epoch %d", s.epoch)
	if s.resubmit {
		b.WriteString(" resubmit-requested")
	}
	b.WriteString("\n")
	for _, id := range s.jobOrder {
		j := s.jobs[id]
		fmt.Fprintf(&b, "job %d %s %d/%d", id, j.status, j.numFinished, j.nTasks)
		if j.mapStage {
			b.WriteString(" map-stage")
		}
		if j.released {
			b.WriteString(" released")
		}
		if j.msg != "" {
			fmt.Fprintf(&b, ": %s", j.msg)
		}
		b.WriteString("\n")
	}
	return b.String()
}

// dump prints the whole state.
func (sc *scenario) dump() string {
	s := sc.s
	var b strings.Builder
	b.WriteString(sc.summary())
	ids := make([]StageID, 0, len(s.stages))
	for id := range s.stages {
		ids = append(ids, id)
	}
	slices.Sort(ids)
	for _, id := range ids {
		st := s.stages[id]
		kind := "result"
		if st.isMap {
			kind = fmt.Sprintf("map(shuffle %d)", st.shuffle)
		}
		info, _ := s.Stage(id)
		fmt.Fprintf(&b, "stage %d %s %s: %s attempt %d epoch %d jobs %v parents %v", id, st.graph.Nodes[st.node].Name, kind, info.State, st.attempt, st.epoch, []uint64(st.jobs), st.parents)
		var pend []int
		st.pending.each(func(i int) bool { pend = append(pend, i); return true })
		fmt.Fprintf(&b, " pending %v", pend)
		if st.zombie {
			b.WriteString(" zombie")
		}
		if len(st.failedAttempts) > 0 {
			fmt.Fprintf(&b, " fetch-failed-attempts %v", []uint64(st.failedAttempts))
		}
		var fails []string
		for i, f := range st.fails {
			if f > 0 {
				fails = append(fails, fmt.Sprintf("p%d:%d", i, f))
			}
		}
		if len(fails) > 0 {
			fmt.Fprintf(&b, " failures %v", fails)
		}
		if st.coalesced != nil {
			fmt.Fprintf(&b, " coalesced %v", st.coalesced)
		}
		b.WriteString("\n")
	}
	shIDs := make([]ShuffleID, 0, len(s.shuffles))
	for id := range s.shuffles {
		shIDs = append(shIDs, id)
	}
	slices.Sort(shIDs)
	for _, id := range shIDs {
		sh := s.shuffles[id]
		fmt.Fprintf(&b, "shuffle %d key %s: %d/%d available [", id, sh.key, sh.avail, sh.maps)
		for p, o := range sh.outputs {
			if p > 0 {
				b.WriteString(" ")
			}
			if o.exec == "" {
				b.WriteString("-")
			} else {
				b.WriteString(string(o.exec))
			}
		}
		b.WriteString("]\n")
	}
	for _, id := range s.execOrder {
		e := s.executors[id]
		fmt.Fprintf(&b, "executor %s alive=%t", id, e.alive)
		if fe, ok := s.failedEpoch[id]; ok {
			fmt.Fprintf(&b, " failed-epoch=%d", fe)
		}
		b.WriteString("\n")
	}
	for _, id := range s.jobOrder {
		j := s.jobs[id]
		if j.results == nil || j.numFinished == 0 {
			continue
		}
		var parts []string
		for i, f := range j.finished {
			if !f {
				continue
			}
			r := j.results[i]
			if r.Indirect {
				parts = append(parts, fmt.Sprintf("p%d=indirect(%s,task %d,%d bytes)", r.Partition, r.Executor, r.Task, r.Size))
			} else {
				parts = append(parts, fmt.Sprintf("p%d=%q", r.Partition, r.Data))
			}
		}
		sort.Strings(parts)
		fmt.Fprintf(&b, "results job %d: %s\n", id, strings.Join(parts, " "))
	}
	return b.String()
}

// firstDiff returns the path of the first difference between a and b.
func firstDiff(path string, a, b reflect.Value) string {
	if a.Kind() != b.Kind() {
		return path + ": kind"
	}
	switch a.Kind() {
	case reflect.Pointer, reflect.Interface:
		if a.IsNil() || b.IsNil() {
			if a.IsNil() != b.IsNil() {
				return path + ": nil vs non-nil"
			}
			return ""
		}
		return firstDiff(path, a.Elem(), b.Elem())
	case reflect.Struct:
		for i := 0; i < a.NumField(); i++ {
			if d := firstDiff(path+"."+a.Type().Field(i).Name, a.Field(i), b.Field(i)); d != "" {
				return d
			}
		}
	case reflect.Slice:
		if a.IsNil() != b.IsNil() {
			return fmt.Sprintf("%s: nil %t vs %t", path, a.IsNil(), b.IsNil())
		}
		if a.Len() != b.Len() {
			return fmt.Sprintf("%s: len %d vs %d", path, a.Len(), b.Len())
		}
		for i := 0; i < a.Len(); i++ {
			if d := firstDiff(fmt.Sprintf("%s[%d]", path, i), a.Index(i), b.Index(i)); d != "" {
				return d
			}
		}
	case reflect.Map:
		if a.IsNil() != b.IsNil() {
			return fmt.Sprintf("%s: nil %t vs %t", path, a.IsNil(), b.IsNil())
		}
		if a.Len() != b.Len() {
			return fmt.Sprintf("%s: len %d vs %d", path, a.Len(), b.Len())
		}
		for _, k := range a.MapKeys() {
			if d := firstDiff(fmt.Sprintf("%s[%v]", path, k), a.MapIndex(k), b.MapIndex(k)); d != "" {
				return d
			}
		}
	default:
		if fmt.Sprint(a) != fmt.Sprint(b) {
			return fmt.Sprintf("%s: %v vs %v", path, a, b)
		}
	}
	return ""
}
