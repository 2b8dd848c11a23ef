package fsm

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"reflect"

	"github.com/baton-sched/baton/dag"
	"github.com/baton-sched/baton/fsm/fsmpb"
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
//
// Runs of task successes go packed (see packed.go); Decode gives back
// every command, in order.
func Encode(now int64, cmds []dag.Command) ([]byte, error) {
	pcs, err := encodeCommands(cmds)
	if err != nil {
		return nil, err
	}
	return encodeEntry(now, pcs)
}

// encodeCommand encodes a scheduler command by its registration.
func encodeCommand(c dag.Command) (*fsmpb.Command, error) {
	r := commands.byDagType[reflect.TypeOf(c)]
	if r == nil {
		return nil, fmt.Errorf("fsm: cannot encode command %T", c)
	}
	if reflect.ValueOf(c).IsNil() {
		return nil, fmt.Errorf("fsm: cannot encode a nil %s", r.name)
	}
	m, err := r.encode(c)
	if err != nil {
		return nil, fmt.Errorf("fsm: encode %s: %w", r.name, err)
	}
	payload, err := proto.MarshalOptions{Deterministic: true}.Marshal(m)
	if err != nil {
		return nil, fmt.Errorf("fsm: encode %s: %w", r.name, err)
	}
	return &fsmpb.Command{Type: r.typ, Payload: payload}, nil
}

// encodeCluster returns the log entry of one cluster metadata command
// (a member update, a leader takeover, an ACL change), flagged as its
// registration says.
func encodeCluster(now int64, typ fsmpb.Type, m proto.Message) ([]byte, error) {
	r := commands.cluster[typ]
	if r == nil {
		return nil, fmt.Errorf("fsm: %s is not a registered cluster command", typ)
	}
	payload, err := proto.MarshalOptions{Deterministic: true}.Marshal(m)
	if err != nil {
		return nil, fmt.Errorf("fsm: encode %s: %w", r.name, err)
	}
	return encodeEntry(now, []*fsmpb.Command{{Type: typ, SkipIfUnknown: r.skipIfUnknown, Payload: payload}})
}

// encodeEntry returns the framed log entry of encoded commands.
func encodeEntry(now int64, pcs []*fsmpb.Command) ([]byte, error) {
	b, err := proto.MarshalOptions{Deterministic: true}.Marshal(&fsmpb.Entry{Time: now, Commands: pcs})
	if err != nil {
		return nil, fmt.Errorf("fsm: encode entry: %w", err)
	}
	return frame(b), nil
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
	return encodeCluster(now, fsmpb.Type_TYPE_SET_MEMBER, memberToProto(m))
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
	return encodeCluster(now, fsmpb.Type_TYPE_LEADER_READY, leaderToProto(l))
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
	n := len(e.Commands)
	var packed [][]dag.Command
	for i, pc := range e.Commands {
		if pc.Type == fsmpb.Type_TYPE_TASKS_ENDED {
			cmds, err := decodePacked(pc.Payload, e.Time)
			if err != nil {
				return nil, fmt.Errorf("%w: command %d: bad TasksEnded: %v", ErrCorruptEntry, i, err)
			}
			packed = append(packed, cmds)
			n += len(cmds) - 1
		}
	}
	if len(packed) > 0 {
		return decodeWithPacked(&e, n, packed)
	}
	d := &Decoded{Time: e.Time, Commands: make([]dag.Command, n), Members: make([]*Member, n), Leaders: make([]*LeaderReady, n), ACL: make([]*ACLCommand, n)}
	for i, pc := range e.Commands {
		if r := commands.scheduler[pc.Type]; r != nil {
			c, err := r.decode(pc.Payload, e.Time)
			if err != nil {
				return nil, fmt.Errorf("%w: command %d: bad %s: %v", ErrCorruptEntry, i, r.name, err)
			}
			d.Commands[i] = c
			continue
		}
		if r := commands.cluster[pc.Type]; r != nil {
			if err := r.decode(pc.Payload, d, i); err != nil {
				return nil, fmt.Errorf("%w: command %d: bad %s: %v", ErrCorruptEntry, i, r.name, err)
			}
			continue
		}
		if pc.SkipIfUnknown {
			d.Skipped = append(d.Skipped, pc.Type)
			continue
		}
		return nil, fmt.Errorf("%w: command %d: unknown command type %d", ErrCorruptEntry, i, int32(pc.Type))
	}
	return d, nil
}

// decodeWithPacked decodes an entry of scheduler commands some of which
// are packed runs (already decoded, in order): n commands in all. Only
// scheduler commands share an entry with packed runs (cluster commands
// go alone).
func decodeWithPacked(e *fsmpb.Entry, n int, packed [][]dag.Command) (*Decoded, error) {
	d := &Decoded{Time: e.Time, Commands: make([]dag.Command, 0, n), Members: make([]*Member, n), Leaders: make([]*LeaderReady, n), ACL: make([]*ACLCommand, n)}
	for i, pc := range e.Commands {
		if pc.Type == fsmpb.Type_TYPE_TASKS_ENDED {
			d.Commands = append(d.Commands, packed[0]...)
			packed = packed[1:]
			continue
		}
		r := commands.scheduler[pc.Type]
		if r == nil {
			return nil, fmt.Errorf("%w: command %d: %s in an entry of packed task ends", ErrCorruptEntry, i, pc.Type)
		}
		c, err := r.decode(pc.Payload, e.Time)
		if err != nil {
			return nil, fmt.Errorf("%w: command %d: bad %s: %v", ErrCorruptEntry, i, r.name, err)
		}
		d.Commands = append(d.Commands, c)
	}
	return d, nil
}
