package fsm

import (
	"encoding/json"
	"errors"
	"fmt"
	"reflect"

	"github.com/baton-sched/baton/dag"
	"github.com/baton-sched/baton/fsm/fsmpb"
	"github.com/baton-sched/baton/plan"
	"google.golang.org/protobuf/proto"
)

// The log's command types, registered in one place in the manner of
// Consul's FSM command registration: every fsmpb.Type this build knows is
// one entry of schedulerCommands or clusterCommands below, and Encode and
// Decode find a command's codec there and nowhere else. Adding a
// scheduler command is one entry in schedulerCommands (and its case in
// dag.State's apply); the tests check that every dag command type is
// registered, that dag applies every registered one, and that every
// fsmpb.Type but TYPE_UNSPECIFIED has an entry. A type registered twice,
// under two numbers, or under a number fsm.proto does not define panics
// at init.

// schedulerCommand is how one dag command type travels in the log.
// Scheduler commands are never skipped: a replica that skipped one would
// diverge from its peers.
type schedulerCommand struct {
	// typ is the command's type number in the log; name names it in
	// errors.
	typ  fsmpb.Type
	name string
	// cmd is a nil pointer of the dag command type the entry carries.
	cmd dag.Command
	// encode returns the payload message of c, which has cmd's type.
	encode func(c dag.Command) (proto.Message, error)
	// decode returns the command a payload holds, stamped with the
	// entry's time.
	decode func(payload []byte, now int64) (dag.Command, error)
}

// clusterCommand is how one command of the cluster metadata kept beside
// the scheduler state (members, leader takeovers, the ACL system) travels
// in the log. Their encoders are EncodeMember, EncodeLeaderReady and
// EncodeACL.
type clusterCommand struct {
	typ  fsmpb.Type
	name string
	// skipIfUnknown marks the command for older builds, which skip it
	// rather than stop: only for a command whose effect they may miss.
	skipIfUnknown bool
	// decode decodes a payload into position i of d.
	decode func(payload []byte, d *Decoded, i int) error
}

var schedulerCommands = []schedulerCommand{
	{
		typ: fsmpb.Type_TYPE_REGISTER_EXECUTOR, name: "RegisterExecutor", cmd: (*dag.RegisterExecutor)(nil),
		encode: func(c dag.Command) (proto.Message, error) {
			x := c.(*dag.RegisterExecutor)
			return &fsmpb.RegisterExecutor{Id: string(x.ID), Addr: x.Addr, Cores: int32(x.Cores), Funcs: x.Funcs}, nil
		},
		decode: func(p []byte, now int64) (dag.Command, error) {
			var m fsmpb.RegisterExecutor
			if err := proto.Unmarshal(p, &m); err != nil {
				return nil, err
			}
			return &dag.RegisterExecutor{Time: now, ID: dag.ExecutorID(m.Id), Addr: m.Addr, Cores: int(m.Cores), Funcs: m.Funcs}, nil
		},
	},
	{
		typ: fsmpb.Type_TYPE_REMOVE_EXECUTOR, name: "RemoveExecutor", cmd: (*dag.RemoveExecutor)(nil),
		encode: func(c dag.Command) (proto.Message, error) {
			x := c.(*dag.RemoveExecutor)
			return &fsmpb.RemoveExecutor{Id: string(x.ID), Reason: x.Reason}, nil
		},
		decode: func(p []byte, now int64) (dag.Command, error) {
			var m fsmpb.RemoveExecutor
			if err := proto.Unmarshal(p, &m); err != nil {
				return nil, err
			}
			return &dag.RemoveExecutor{Time: now, ID: dag.ExecutorID(m.Id), Reason: m.Reason}, nil
		},
	},
	{
		typ: fsmpb.Type_TYPE_SUBMIT_JOB, name: "SubmitJob", cmd: (*dag.SubmitJob)(nil),
		encode: func(c dag.Command) (proto.Message, error) {
			x := c.(*dag.SubmitJob)
			g, err := json.Marshal(x.Graph)
			if err != nil {
				return nil, fmt.Errorf("graph: %w", err)
			}
			m := &fsmpb.SubmitJob{Graph: g, AllPartitions: x.Partitions == nil, Key: x.Key, Pool: x.Pool,
				MaxTaskFailures: int32(x.MaxTaskFailures), MaxResultSize: x.MaxResultSize, Group: x.Group,
				MapStage: x.MapStage, AdaptiveTarget: x.AdaptiveTarget}
			for _, p := range x.Partitions {
				m.Partitions = append(m.Partitions, int32(p))
			}
			return m, nil
		},
		decode: func(p []byte, now int64) (dag.Command, error) {
			var m fsmpb.SubmitJob
			if err := proto.Unmarshal(p, &m); err != nil {
				return nil, err
			}
			g := &plan.Graph{}
			if err := json.Unmarshal(m.Graph, g); err != nil {
				return nil, fmt.Errorf("graph: %w", err)
			}
			c := &dag.SubmitJob{Time: now, Graph: g, Key: m.Key, Pool: m.Pool, MaxTaskFailures: int(m.MaxTaskFailures), MaxResultSize: m.MaxResultSize, Group: m.Group,
				MapStage: m.MapStage, AdaptiveTarget: m.AdaptiveTarget}
			if !m.AllPartitions {
				c.Partitions = make([]int, len(m.Partitions))
				for i, x := range m.Partitions {
					c.Partitions[i] = int(x)
				}
			}
			return c, nil
		},
	},
	{
		typ: fsmpb.Type_TYPE_TASK_ENDED, name: "TaskEnded", cmd: (*dag.TaskEnded)(nil),
		encode: func(c dag.Command) (proto.Message, error) {
			x := c.(*dag.TaskEnded)
			reason, err := reasonToProto(x.Reason)
			if err != nil {
				return nil, err
			}
			return &fsmpb.TaskEnded{
				Task: uint64(x.Task), Stage: uint64(x.Stage), StageAttempt: int32(x.StageAttempt),
				Partition: int32(x.Partition), Attempt: int32(x.Attempt), Executor: string(x.Executor),
				Epoch: x.Epoch, Reason: reason, Message: x.Message,
				MapBytes: x.MapBytes, MapSizes: x.MapSizes, ResultSize: x.ResultSize, Result: x.Result,
				Indirect: x.Indirect, FetchExecutor: string(x.FetchExecutor), FetchShuffle: uint64(x.FetchShuffle),
				FetchMap: int32(x.FetchMap), FetchReduce: int32(x.FetchReduce), DurationMs: x.DurationMs,
				ExitCausedByApp: x.ExitCausedByApp, Speculative: x.Speculative, Accumulators: accsToProto(x.Accumulators),
				Cached: cachedToProto(x.Cached), SpilledBytes: max(x.SpilledBytes, 0),
			}, nil
		},
		decode: func(p []byte, now int64) (dag.Command, error) {
			var m fsmpb.TaskEnded
			if err := proto.Unmarshal(p, &m); err != nil {
				return nil, err
			}
			reason, err := reasonFromProto(m.Reason)
			if err != nil {
				return nil, err
			}
			return &dag.TaskEnded{
				Time: now, Task: dag.TaskID(m.Task), Stage: dag.StageID(m.Stage), StageAttempt: int(m.StageAttempt),
				Partition: int(m.Partition), Attempt: int(m.Attempt), Executor: dag.ExecutorID(m.Executor),
				Epoch: m.Epoch, Reason: reason, Message: m.Message, MapBytes: m.MapBytes,
				MapSizes: m.MapSizes, ResultSize: m.ResultSize, Result: m.Result, Indirect: m.Indirect,
				FetchExecutor: dag.ExecutorID(m.FetchExecutor), FetchShuffle: dag.ShuffleID(m.FetchShuffle),
				FetchMap: int(m.FetchMap), FetchReduce: int(m.FetchReduce), DurationMs: m.DurationMs,
				ExitCausedByApp: m.ExitCausedByApp, Speculative: m.Speculative, Accumulators: accsFromProto(m.Accumulators),
				Cached: cachedFromProto(m.Cached), SpilledBytes: max(m.SpilledBytes, 0),
			}, nil
		},
	},
	{
		typ: fsmpb.Type_TYPE_RESUBMIT_FAILED_STAGES, name: "ResubmitFailedStages", cmd: (*dag.ResubmitFailedStages)(nil),
		encode: func(dag.Command) (proto.Message, error) { return &fsmpb.ResubmitFailedStages{}, nil },
		// The payload is an empty message and has never been read.
		decode: func(_ []byte, now int64) (dag.Command, error) { return &dag.ResubmitFailedStages{Time: now}, nil },
	},
	{
		typ: fsmpb.Type_TYPE_AUTHORIZE_COMMIT, name: "AuthorizeCommit", cmd: (*dag.AuthorizeCommit)(nil),
		encode: func(c dag.Command) (proto.Message, error) {
			x := c.(*dag.AuthorizeCommit)
			return &fsmpb.AuthorizeCommit{Stage: uint64(x.Stage), StageAttempt: int32(x.StageAttempt), Partition: int32(x.Partition), Task: uint64(x.Task), Executor: string(x.Executor)}, nil
		},
		decode: func(p []byte, now int64) (dag.Command, error) {
			var m fsmpb.AuthorizeCommit
			if err := proto.Unmarshal(p, &m); err != nil {
				return nil, err
			}
			return &dag.AuthorizeCommit{Time: now, Stage: dag.StageID(m.Stage), StageAttempt: int(m.StageAttempt), Partition: int(m.Partition), Task: dag.TaskID(m.Task), Executor: dag.ExecutorID(m.Executor)}, nil
		},
	},
	{
		typ: fsmpb.Type_TYPE_CANCEL_JOB, name: "CancelJob", cmd: (*dag.CancelJob)(nil),
		encode: func(c dag.Command) (proto.Message, error) {
			x := c.(*dag.CancelJob)
			return &fsmpb.CancelJob{Job: uint64(x.Job), Reason: x.Reason}, nil
		},
		decode: func(p []byte, now int64) (dag.Command, error) {
			var m fsmpb.CancelJob
			if err := proto.Unmarshal(p, &m); err != nil {
				return nil, err
			}
			return &dag.CancelJob{Time: now, Job: dag.JobID(m.Job), Reason: m.Reason}, nil
		},
	},
	{
		typ: fsmpb.Type_TYPE_RELEASE_JOB, name: "ReleaseJob", cmd: (*dag.ReleaseJob)(nil),
		encode: func(c dag.Command) (proto.Message, error) {
			return &fsmpb.ReleaseJob{Job: uint64(c.(*dag.ReleaseJob).Job)}, nil
		},
		decode: func(p []byte, now int64) (dag.Command, error) {
			var m fsmpb.ReleaseJob
			if err := proto.Unmarshal(p, &m); err != nil {
				return nil, err
			}
			return &dag.ReleaseJob{Time: now, Job: dag.JobID(m.Job)}, nil
		},
	},
	{
		typ: fsmpb.Type_TYPE_CANCEL_JOB_GROUP, name: "CancelJobGroup", cmd: (*dag.CancelJobGroup)(nil),
		encode: func(c dag.Command) (proto.Message, error) {
			x := c.(*dag.CancelJobGroup)
			return &fsmpb.CancelJobGroup{Group: x.Group, Reason: x.Reason}, nil
		},
		decode: func(p []byte, now int64) (dag.Command, error) {
			var m fsmpb.CancelJobGroup
			if err := proto.Unmarshal(p, &m); err != nil {
				return nil, err
			}
			return &dag.CancelJobGroup{Time: now, Group: m.Group, Reason: m.Reason}, nil
		},
	},
	{
		typ: fsmpb.Type_TYPE_CANCEL_STAGE, name: "CancelStage", cmd: (*dag.CancelStage)(nil),
		encode: func(c dag.Command) (proto.Message, error) {
			x := c.(*dag.CancelStage)
			return &fsmpb.CancelStage{Stage: uint64(x.Stage), Reason: x.Reason}, nil
		},
		decode: func(p []byte, now int64) (dag.Command, error) {
			var m fsmpb.CancelStage
			if err := proto.Unmarshal(p, &m); err != nil {
				return nil, err
			}
			return &dag.CancelStage{Time: now, Stage: dag.StageID(m.Stage), Reason: m.Reason}, nil
		},
	},
	{
		typ: fsmpb.Type_TYPE_CANCEL_ALL_JOBS, name: "CancelAllJobs", cmd: (*dag.CancelAllJobs)(nil),
		encode: func(c dag.Command) (proto.Message, error) {
			return &fsmpb.CancelAllJobs{Reason: c.(*dag.CancelAllJobs).Reason}, nil
		},
		decode: func(p []byte, now int64) (dag.Command, error) {
			var m fsmpb.CancelAllJobs
			if err := proto.Unmarshal(p, &m); err != nil {
				return nil, err
			}
			return &dag.CancelAllJobs{Time: now, Reason: m.Reason}, nil
		},
	},
	{
		typ: fsmpb.Type_TYPE_UNPERSIST, name: "Unpersist", cmd: (*dag.Unpersist)(nil),
		encode: func(c dag.Command) (proto.Message, error) {
			return &fsmpb.Unpersist{Keys: c.(*dag.Unpersist).Keys}, nil
		},
		decode: func(p []byte, now int64) (dag.Command, error) {
			var m fsmpb.Unpersist
			if err := proto.Unmarshal(p, &m); err != nil {
				return nil, err
			}
			return &dag.Unpersist{Time: now, Keys: m.Keys}, nil
		},
	},
}

func cachedToProto(cs []dag.CachedPartition) []*fsmpb.CachedPartition {
	var out []*fsmpb.CachedPartition
	for _, c := range cs {
		out = append(out, &fsmpb.CachedPartition{Key: c.Key, Partition: int32(c.Partition), Bytes: c.Bytes, Generation: c.Gen})
	}
	return out
}

func cachedFromProto(cs []*fsmpb.CachedPartition) []dag.CachedPartition {
	var out []dag.CachedPartition
	for _, c := range cs {
		out = append(out, dag.CachedPartition{Key: c.Key, Partition: int(c.Partition), Bytes: c.Bytes, Gen: c.Generation})
	}
	return out
}

var clusterCommands = []clusterCommand{
	{
		// Older builds that do not know members can skip them safely.
		typ: fsmpb.Type_TYPE_SET_MEMBER, name: "SetMember", skipIfUnknown: true,
		decode: func(p []byte, d *Decoded, i int) error {
			var m fsmpb.SetMember
			if err := proto.Unmarshal(p, &m); err != nil {
				return err
			}
			if m.Id == "" {
				return errors.New("member without an id")
			}
			d.Members[i] = memberFromProto(&m)
			return nil
		},
	},
	{
		typ: fsmpb.Type_TYPE_LEADER_READY, name: "LeaderReady", skipIfUnknown: true,
		decode: func(p []byte, d *Decoded, i int) error {
			var m fsmpb.LeaderReady
			if err := proto.Unmarshal(p, &m); err != nil {
				return err
			}
			if m.Id == "" {
				return errors.New("leader takeover without an id")
			}
			l := leaderFromProto(&m)
			d.Leaders[i] = &l
			return nil
		},
	},
	// ACL changes are never skipped: a member that did not know ACLs
	// would let anyone in.
	{
		typ: fsmpb.Type_TYPE_ACL_BOOTSTRAP, name: "ACLBootstrap",
		decode: func(p []byte, d *Decoded, i int) error {
			var m fsmpb.ACLBootstrap
			if err := proto.Unmarshal(p, &m); err != nil {
				return err
			}
			d.ACL[i] = &ACLCommand{Bootstrap: &ACLBootstrap{Management: tokenFromProto(m.Management), ServerSecret: m.ServerSecret}}
			return nil
		},
	},
	{
		typ: fsmpb.Type_TYPE_ACL_TOKEN_SET, name: "ACLTokenSet",
		decode: func(p []byte, d *Decoded, i int) error {
			var m fsmpb.ACLToken
			if err := proto.Unmarshal(p, &m); err != nil {
				return err
			}
			t := tokenFromProto(&m)
			d.ACL[i] = &ACLCommand{Set: &t}
			return nil
		},
	},
	{
		typ: fsmpb.Type_TYPE_ACL_TOKEN_DELETE, name: "ACLTokenDelete",
		decode: func(p []byte, d *Decoded, i int) error {
			var m fsmpb.ACLTokenDelete
			if err := proto.Unmarshal(p, &m); err != nil {
				return err
			}
			if m.Accessor == "" {
				return errors.New("acl delete without an accessor")
			}
			d.ACL[i] = &ACLCommand{Delete: m.Accessor}
			return nil
		},
	},
	{
		typ: fsmpb.Type_TYPE_ACL_EXECUTOR_BIND, name: "ACLExecutorBind",
		decode: func(p []byte, d *Decoded, i int) error {
			var m fsmpb.ACLExecutorBind
			if err := proto.Unmarshal(p, &m); err != nil {
				return err
			}
			d.ACL[i] = &ACLCommand{Bind: &ExecutorBind{Executor: m.Executor, Principal: m.Principal}}
			return nil
		},
	},
}

// registry indexes the registered commands.
type registry struct {
	scheduler map[fsmpb.Type]*schedulerCommand
	byDagType map[reflect.Type]*schedulerCommand
	cluster   map[fsmpb.Type]*clusterCommand
}

// commands is every command this build reads and writes.
var commands = newRegistry(schedulerCommands, clusterCommands)

// newRegistry indexes the registrations. It panics on a type number that
// is unspecified, not in fsm.proto, or registered twice (in either
// table), on a name or a dag command type registered twice, and on a
// registration without its functions: the log format must not depend on
// which of two registrations a lookup finds.
func newRegistry(sched []schedulerCommand, cluster []clusterCommand) *registry {
	r := &registry{
		scheduler: make(map[fsmpb.Type]*schedulerCommand, len(sched)),
		byDagType: make(map[reflect.Type]*schedulerCommand, len(sched)),
		cluster:   make(map[fsmpb.Type]*clusterCommand, len(cluster)),
	}
	names := map[string]bool{}
	claim := func(t fsmpb.Type, name string) {
		if t == fsmpb.Type_TYPE_UNSPECIFIED {
			panic(fmt.Sprintf("fsm: command %q registered as TYPE_UNSPECIFIED", name))
		}
		if _, ok := fsmpb.Type_name[int32(t)]; !ok {
			panic(fmt.Sprintf("fsm: command %q registered as type %d, which fsm.proto does not define", name, int32(t)))
		}
		if r.scheduler[t] != nil || r.cluster[t] != nil {
			panic(fmt.Sprintf("fsm: command type %s registered twice", t))
		}
		if name == "" || names[name] {
			panic(fmt.Sprintf("fsm: command name %q empty or registered twice", name))
		}
		names[name] = true
	}
	for i := range sched {
		c := &sched[i]
		claim(c.typ, c.name)
		if c.encode == nil || c.decode == nil {
			panic(fmt.Sprintf("fsm: command %s registered without its encoder or decoder", c.name))
		}
		rt := reflect.TypeOf(c.cmd)
		if rt == nil || rt.Kind() != reflect.Pointer {
			panic(fmt.Sprintf("fsm: command %s registered without a dag command pointer type", c.name))
		}
		if o := r.byDagType[rt]; o != nil {
			panic(fmt.Sprintf("fsm: dag command %s registered twice (as %s and %s)", rt, o.name, c.name))
		}
		r.scheduler[c.typ], r.byDagType[rt] = c, c
	}
	for i := range cluster {
		c := &cluster[i]
		claim(c.typ, c.name)
		if c.decode == nil {
			panic(fmt.Sprintf("fsm: command %s registered without its decoder", c.name))
		}
		r.cluster[c.typ] = c
	}
	return r
}

// reasonWire maps every dag.Reason to its number in the log. The numbers
// are the log format, not dag's constant order: never change one; a new
// reason gets a new number in fsm.proto and an entry here.
var reasonWire = [...]struct {
	dag  dag.Reason
	wire fsmpb.Reason
}{
	{dag.Success, fsmpb.Reason_REASON_SUCCESS},
	{dag.Exception, fsmpb.Reason_REASON_EXCEPTION},
	{dag.FetchFailed, fsmpb.Reason_REASON_FETCH_FAILED},
	{dag.ResultLost, fsmpb.Reason_REASON_RESULT_LOST},
	{dag.Killed, fsmpb.Reason_REASON_KILLED},
	{dag.ExecutorLost, fsmpb.Reason_REASON_EXECUTOR_LOST},
	{dag.CommitDenied, fsmpb.Reason_REASON_COMMIT_DENIED},
}

// reasonToProto returns a reason's number in the log; a value that is no
// reason has none, and is never logged.
func reasonToProto(r dag.Reason) (fsmpb.Reason, error) {
	for _, x := range reasonWire {
		if x.dag == r {
			return x.wire, nil
		}
	}
	return 0, fmt.Errorf("task end reason %v has no number in the log", r)
}

// reasonFromProto returns the reason a number in the log stands for; an
// unknown number (REASON_UNSPECIFIED included) is a corrupt entry.
func reasonFromProto(w fsmpb.Reason) (dag.Reason, error) {
	for _, x := range reasonWire {
		if x.wire == w {
			return x.dag, nil
		}
	}
	return 0, fmt.Errorf("unknown task end reason %d", int32(w))
}

// Accumulator kinds have the same numbers in the log as in dag.
func accsToProto(as []dag.Accumulator) []*fsmpb.Accumulator {
	if len(as) == 0 {
		return nil
	}
	out := make([]*fsmpb.Accumulator, len(as))
	for i, a := range as {
		out[i] = &fsmpb.Accumulator{Name: a.Name, Kind: fsmpb.AccKind(a.Kind), IntValue: a.Int, FloatValue: a.Float}
	}
	return out
}

// accsFromProto keeps an unknown kind as it is: the state refuses the
// command, as a business error.
func accsFromProto(as []*fsmpb.Accumulator) []dag.Accumulator {
	if len(as) == 0 {
		return nil
	}
	out := make([]dag.Accumulator, len(as))
	for i, a := range as {
		k := dag.AccKind(a.Kind)
		if a.Kind < 0 || a.Kind > 255 {
			k = 0 // not a kind
		}
		out[i] = dag.Accumulator{Name: a.Name, Kind: k, Int: a.IntValue, Float: a.FloatValue}
	}
	return out
}
