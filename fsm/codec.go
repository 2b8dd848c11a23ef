package fsm

import (
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"hash/crc32"

	"github.com/baton-sched/baton/dag"
	"github.com/baton-sched/baton/fsm/fsmpb"
	"github.com/baton-sched/baton/plan"
	"google.golang.org/protobuf/proto"
)

// Log entry formats: the first byte of every entry says how the rest is
// laid out. A new format gets a new byte; old ones stay readable.
const (
	// entryFormatV1 is an fsmpb.Entry, unchecked (written by earlier
	// builds; still read).
	entryFormatV1 byte = 1
	// entryFormat is a CRC-32C (Castagnoli, big-endian) of the rest, then
	// an fsmpb.Entry. Every entry this build writes has it: a byte
	// changed on a disk or on the way is found at apply, never applied.
	entryFormat byte = 2
)

// frame returns the log entry for an encoded fsmpb.Entry.
func frame(entry []byte) []byte {
	out := make([]byte, 5, 5+len(entry))
	out[0] = entryFormat
	binary.BigEndian.PutUint32(out[1:], crc32.Checksum(entry, castagnoli))
	return append(out, entry...)
}

// unframe checks a log entry's format and checksum and returns its
// fsmpb.Entry bytes.
func unframe(data []byte) ([]byte, error) {
	if len(data) == 0 {
		return nil, fmt.Errorf("%w: empty", ErrCorruptEntry)
	}
	switch data[0] {
	case entryFormatV1:
		return data[1:], nil
	case entryFormat:
		if len(data) < 5 {
			return nil, fmt.Errorf("%w: %d bytes, too short for its checksum", ErrCorruptEntry, len(data))
		}
		want, got := binary.BigEndian.Uint32(data[1:5]), crc32.Checksum(data[5:], castagnoli)
		if want != got {
			return nil, fmt.Errorf("%w: checksum mismatch (recorded %08x, computed %08x over %d bytes)", ErrCorruptEntry, want, got, len(data)-5)
		}
		return data[5:], nil
	}
	return nil, fmt.Errorf("%w: unknown entry format %d", ErrCorruptEntry, data[0])
}

// ErrCorruptEntry is a log entry that cannot be decoded. The FSM panics on
// one rather than diverge from its peers.
var ErrCorruptEntry = errors.New("fsm: corrupt log entry")

// Encode returns the log entry for a batch of commands proposed at time
// now (Unix nanoseconds). The commands' own Time fields are ignored: the
// entry's time stamps them all.
func Encode(now int64, cmds []dag.Command) ([]byte, error) {
	e := &fsmpb.Entry{Time: now, Commands: make([]*fsmpb.Command, 0, len(cmds))}
	for _, c := range cmds {
		pc, err := encodeCommand(c)
		if err != nil {
			return nil, err
		}
		e.Commands = append(e.Commands, pc)
	}
	b, err := proto.MarshalOptions{Deterministic: true}.Marshal(e)
	if err != nil {
		return nil, fmt.Errorf("fsm: encode entry: %w", err)
	}
	return frame(b), nil
}

func encodeCommand(c dag.Command) (*fsmpb.Command, error) {
	var t fsmpb.Type
	var m proto.Message
	switch c := c.(type) {
	case *dag.RegisterExecutor:
		t = fsmpb.Type_TYPE_REGISTER_EXECUTOR
		m = &fsmpb.RegisterExecutor{Id: string(c.ID), Addr: c.Addr, Cores: int32(c.Cores), Funcs: c.Funcs}
	case *dag.RemoveExecutor:
		t = fsmpb.Type_TYPE_REMOVE_EXECUTOR
		m = &fsmpb.RemoveExecutor{Id: string(c.ID), Reason: c.Reason}
	case *dag.SubmitJob:
		t = fsmpb.Type_TYPE_SUBMIT_JOB
		g, err := json.Marshal(c.Graph)
		if err != nil {
			return nil, fmt.Errorf("fsm: encode graph: %w", err)
		}
		sj := &fsmpb.SubmitJob{Graph: g, AllPartitions: c.Partitions == nil, Key: c.Key, Pool: c.Pool,
			MaxTaskFailures: int32(c.MaxTaskFailures), MaxResultSize: c.MaxResultSize}
		for _, p := range c.Partitions {
			sj.Partitions = append(sj.Partitions, int32(p))
		}
		m = sj
	case *dag.TaskEnded:
		t = fsmpb.Type_TYPE_TASK_ENDED
		m = &fsmpb.TaskEnded{
			Task: uint64(c.Task), Stage: uint64(c.Stage), StageAttempt: int32(c.StageAttempt),
			Partition: int32(c.Partition), Attempt: int32(c.Attempt), Executor: string(c.Executor),
			Epoch: c.Epoch, Reason: fsmpb.Reason(c.Reason), Message: c.Message,
			MapBytes: c.MapBytes, MapSizes: c.MapSizes, ResultSize: c.ResultSize, Result: c.Result,
			Indirect: c.Indirect, FetchExecutor: string(c.FetchExecutor), FetchShuffle: uint64(c.FetchShuffle),
			FetchMap: int32(c.FetchMap), FetchReduce: int32(c.FetchReduce), DurationMs: c.DurationMs,
		}
	case *dag.ResubmitFailedStages:
		t = fsmpb.Type_TYPE_RESUBMIT_FAILED_STAGES
		m = &fsmpb.ResubmitFailedStages{}
	case *dag.AuthorizeCommit:
		t = fsmpb.Type_TYPE_AUTHORIZE_COMMIT
		m = &fsmpb.AuthorizeCommit{Stage: uint64(c.Stage), StageAttempt: int32(c.StageAttempt), Partition: int32(c.Partition), Task: uint64(c.Task), Executor: string(c.Executor)}
	case *dag.CancelJob:
		t = fsmpb.Type_TYPE_CANCEL_JOB
		m = &fsmpb.CancelJob{Job: uint64(c.Job), Reason: c.Reason}
	case *dag.ReleaseJob:
		t = fsmpb.Type_TYPE_RELEASE_JOB
		m = &fsmpb.ReleaseJob{Job: uint64(c.Job)}
	default:
		return nil, fmt.Errorf("fsm: cannot encode command %T", c)
	}
	payload, err := proto.MarshalOptions{Deterministic: true}.Marshal(m)
	if err != nil {
		return nil, fmt.Errorf("fsm: encode %s: %w", t, err)
	}
	return &fsmpb.Command{Type: t, Payload: payload}, nil
}

// Decoded is one decoded log entry.
type Decoded struct {
	Time int64
	// Commands holds the scheduler commands; it is nil at the positions
	// of member updates and skipped commands.
	Commands []dag.Command
	// Members holds the member updates, at their positions (nil
	// elsewhere).
	Members []*Member
	// Leaders holds leader takeovers, at their positions.
	Leaders []*LeaderReady
	// ACL holds changes to the ACL system, at their positions.
	ACL []*ACLCommand
	// Skipped lists the types of commands skipped because this build
	// does not know them and they were marked skip-if-unknown.
	Skipped []fsmpb.Type
}

// Member is how to reach a quorum member: its Raft address and its API
// addresses. The FSM keeps a member table beside the scheduler state so
// that followers can forward writes to the leader's API.
type Member struct {
	ID       string `json:"id"`
	RaftAddr string `json:"raftAddr"`
	APIAddr  string `json:"apiAddr"`
	HTTPAddr string `json:"httpAddr"`
	// Removed deletes the member from the table.
	Removed bool `json:"-"`
}

// EncodeMember returns the log entry that records a member's addresses.
func EncodeMember(now int64, m Member) ([]byte, error) {
	payload, err := proto.MarshalOptions{Deterministic: true}.Marshal(memberToProto(m))
	if err != nil {
		return nil, fmt.Errorf("fsm: encode member: %w", err)
	}
	// Older builds that do not know members can skip them safely.
	e := &fsmpb.Entry{Time: now, Commands: []*fsmpb.Command{{Type: fsmpb.Type_TYPE_SET_MEMBER, SkipIfUnknown: true, Payload: payload}}}
	b, err := proto.MarshalOptions{Deterministic: true}.Marshal(e)
	if err != nil {
		return nil, fmt.Errorf("fsm: encode entry: %w", err)
	}
	return frame(b), nil
}

// LeaderReady is a leader's takeover: the term it won, when its driver
// took over and when it began scheduling, and how many executors were
// back by then.
type LeaderReady struct {
	ID            string `json:"id"`
	Term          uint64 `json:"term"`
	Won           int64  `json:"wonUnixNano"`
	Ready         int64  `json:"readyUnixNano"`
	Executors     int    `json:"executors"`
	ExecutorsBack int    `json:"executorsBack"`
}

// EncodeLeaderReady returns the log entry that records a takeover.
func EncodeLeaderReady(now int64, l LeaderReady) ([]byte, error) {
	payload, err := proto.MarshalOptions{Deterministic: true}.Marshal(leaderToProto(l))
	if err != nil {
		return nil, fmt.Errorf("fsm: encode leader: %w", err)
	}
	e := &fsmpb.Entry{Time: now, Commands: []*fsmpb.Command{{Type: fsmpb.Type_TYPE_LEADER_READY, SkipIfUnknown: true, Payload: payload}}}
	b, err := proto.MarshalOptions{Deterministic: true}.Marshal(e)
	if err != nil {
		return nil, fmt.Errorf("fsm: encode entry: %w", err)
	}
	return frame(b), nil
}

func leaderToProto(l LeaderReady) *fsmpb.LeaderReady {
	return &fsmpb.LeaderReady{Id: l.ID, Term: l.Term, WonUnixNano: l.Won, ReadyUnixNano: l.Ready, Executors: int32(l.Executors), ExecutorsBack: int32(l.ExecutorsBack)}
}

func leaderFromProto(m *fsmpb.LeaderReady) LeaderReady {
	return LeaderReady{ID: m.Id, Term: m.Term, Won: m.WonUnixNano, Ready: m.ReadyUnixNano, Executors: int(m.Executors), ExecutorsBack: int(m.ExecutorsBack)}
}

func memberToProto(m Member) *fsmpb.SetMember {
	return &fsmpb.SetMember{Id: m.ID, RaftAddr: m.RaftAddr, ApiAddr: m.APIAddr, HttpAddr: m.HTTPAddr, Removed: m.Removed}
}

func memberFromProto(m *fsmpb.SetMember) *Member {
	return &Member{ID: m.Id, RaftAddr: m.RaftAddr, APIAddr: m.ApiAddr, HTTPAddr: m.HttpAddr, Removed: m.Removed}
}

// Decode decodes a log entry. Every error wraps ErrCorruptEntry.
func Decode(data []byte) (*Decoded, error) {
	body, err := unframe(data)
	if err != nil {
		return nil, err
	}
	var e fsmpb.Entry
	if err := proto.Unmarshal(body, &e); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrCorruptEntry, err)
	}
	d := &Decoded{Time: e.Time, Commands: make([]dag.Command, len(e.Commands)), Members: make([]*Member, len(e.Commands)), Leaders: make([]*LeaderReady, len(e.Commands)), ACL: make([]*ACLCommand, len(e.Commands))}
	for i, pc := range e.Commands {
		if c, ok, err := decodeACL(pc); ok {
			if err != nil {
				return nil, fmt.Errorf("%w: command %d: bad acl change: %v", ErrCorruptEntry, i, err)
			}
			d.ACL[i] = c
			continue
		}
		if pc.Type == fsmpb.Type_TYPE_LEADER_READY {
			var m fsmpb.LeaderReady
			if err := proto.Unmarshal(pc.Payload, &m); err != nil || m.Id == "" {
				return nil, fmt.Errorf("%w: command %d: bad leader takeover", ErrCorruptEntry, i)
			}
			l := leaderFromProto(&m)
			d.Leaders[i] = &l
			continue
		}
		if pc.Type == fsmpb.Type_TYPE_SET_MEMBER {
			var m fsmpb.SetMember
			if err := proto.Unmarshal(pc.Payload, &m); err != nil || m.Id == "" {
				return nil, fmt.Errorf("%w: command %d: bad member update", ErrCorruptEntry, i)
			}
			d.Members[i] = memberFromProto(&m)
			continue
		}
		c, err := decodeCommand(pc, e.Time)
		if errors.Is(err, errUnknownType) && pc.SkipIfUnknown {
			d.Skipped = append(d.Skipped, pc.Type)
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("%w: command %d: %v", ErrCorruptEntry, i, err)
		}
		d.Commands[i] = c
	}
	return d, nil
}

var errUnknownType = errors.New("unknown command type")

func decodeCommand(pc *fsmpb.Command, now int64) (dag.Command, error) {
	p := pc.Payload
	switch pc.Type {
	case fsmpb.Type_TYPE_REGISTER_EXECUTOR:
		var m fsmpb.RegisterExecutor
		if err := proto.Unmarshal(p, &m); err != nil {
			return nil, err
		}
		return &dag.RegisterExecutor{Time: now, ID: dag.ExecutorID(m.Id), Addr: m.Addr, Cores: int(m.Cores), Funcs: m.Funcs}, nil
	case fsmpb.Type_TYPE_REMOVE_EXECUTOR:
		var m fsmpb.RemoveExecutor
		if err := proto.Unmarshal(p, &m); err != nil {
			return nil, err
		}
		return &dag.RemoveExecutor{Time: now, ID: dag.ExecutorID(m.Id), Reason: m.Reason}, nil
	case fsmpb.Type_TYPE_SUBMIT_JOB:
		var m fsmpb.SubmitJob
		if err := proto.Unmarshal(p, &m); err != nil {
			return nil, err
		}
		g := &plan.Graph{}
		if err := json.Unmarshal(m.Graph, g); err != nil {
			return nil, fmt.Errorf("graph: %w", err)
		}
		c := &dag.SubmitJob{Time: now, Graph: g, Key: m.Key, Pool: m.Pool, MaxTaskFailures: int(m.MaxTaskFailures), MaxResultSize: m.MaxResultSize}
		if !m.AllPartitions {
			c.Partitions = make([]int, len(m.Partitions))
			for i, x := range m.Partitions {
				c.Partitions[i] = int(x)
			}
		}
		return c, nil
	case fsmpb.Type_TYPE_TASK_ENDED:
		var m fsmpb.TaskEnded
		if err := proto.Unmarshal(p, &m); err != nil {
			return nil, err
		}
		return &dag.TaskEnded{
			Time: now, Task: dag.TaskID(m.Task), Stage: dag.StageID(m.Stage), StageAttempt: int(m.StageAttempt),
			Partition: int(m.Partition), Attempt: int(m.Attempt), Executor: dag.ExecutorID(m.Executor),
			Epoch: m.Epoch, Reason: dag.Reason(m.Reason), Message: m.Message, MapBytes: m.MapBytes,
			MapSizes: m.MapSizes, ResultSize: m.ResultSize, Result: m.Result, Indirect: m.Indirect,
			FetchExecutor: dag.ExecutorID(m.FetchExecutor), FetchShuffle: dag.ShuffleID(m.FetchShuffle),
			FetchMap: int(m.FetchMap), FetchReduce: int(m.FetchReduce), DurationMs: m.DurationMs,
		}, nil
	case fsmpb.Type_TYPE_RESUBMIT_FAILED_STAGES:
		return &dag.ResubmitFailedStages{Time: now}, nil
	case fsmpb.Type_TYPE_AUTHORIZE_COMMIT:
		var m fsmpb.AuthorizeCommit
		if err := proto.Unmarshal(p, &m); err != nil {
			return nil, err
		}
		return &dag.AuthorizeCommit{Time: now, Stage: dag.StageID(m.Stage), StageAttempt: int(m.StageAttempt), Partition: int(m.Partition), Task: dag.TaskID(m.Task), Executor: dag.ExecutorID(m.Executor)}, nil
	case fsmpb.Type_TYPE_CANCEL_JOB:
		var m fsmpb.CancelJob
		if err := proto.Unmarshal(p, &m); err != nil {
			return nil, err
		}
		return &dag.CancelJob{Time: now, Job: dag.JobID(m.Job), Reason: m.Reason}, nil
	case fsmpb.Type_TYPE_RELEASE_JOB:
		var m fsmpb.ReleaseJob
		if err := proto.Unmarshal(p, &m); err != nil {
			return nil, err
		}
		return &dag.ReleaseJob{Time: now, Job: dag.JobID(m.Job)}, nil
	}
	return nil, fmt.Errorf("%w %d", errUnknownType, pc.Type)
}
