package fsm

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"sort"

	"github.com/baton-sched/baton/dag"
	"github.com/baton-sched/baton/fsm/fsmpb"
	"google.golang.org/protobuf/proto"
)

// Snapshot layout:
//
//	"BATONFSM"            magic
//	uvarint version       snapshotVersion
//	uvarint index, term   the last entry the state includes
//	uvarint n, n bytes    the dag state (dag.State.MarshalBinary)
//	uvarint m, m bytes    the member table, leader history and ACL system (fsmpb.Members)
//	uint32 crc32c         of everything before it, big-endian
const (
	snapshotMagic   = "BATONFSM"
	snapshotVersion = 2
)

// ErrCorruptSnapshot is a snapshot that cannot be restored.
var ErrCorruptSnapshot = errors.New("fsm: corrupt snapshot")

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// snapshotContents is what a snapshot holds.
type snapshotContents struct {
	state       *dag.State
	members     map[string]Member
	leaders     []LeaderReady
	acl         acl
	index, term uint64
}

func encodeSnapshot(c snapshotContents) ([]byte, error) {
	s, members, leaders, index, term := c.state, c.members, c.leaders, c.index, c.term
	state, err := s.MarshalBinary()
	if err != nil {
		return nil, fmt.Errorf("fsm: snapshot: %w", err)
	}
	ids := make([]string, 0, len(members))
	for id := range members {
		ids = append(ids, id)
	}
	sort.Strings(ids)
	var table fsmpb.Members
	for _, id := range ids {
		table.Members = append(table.Members, memberToProto(members[id]))
	}
	for _, l := range leaders {
		table.Leaders = append(table.Leaders, leaderToProto(l))
	}
	c.acl.toProto(&table)
	mb, err := proto.MarshalOptions{Deterministic: true}.Marshal(&table)
	if err != nil {
		return nil, fmt.Errorf("fsm: snapshot members: %w", err)
	}
	b := make([]byte, 0, len(state)+len(mb)+64)
	b = append(b, snapshotMagic...)
	b = binary.AppendUvarint(b, snapshotVersion)
	b = binary.AppendUvarint(b, index)
	b = binary.AppendUvarint(b, term)
	b = binary.AppendUvarint(b, uint64(len(state)))
	b = append(b, state...)
	b = binary.AppendUvarint(b, uint64(len(mb)))
	b = append(b, mb...)
	b = binary.BigEndian.AppendUint32(b, crc32.Checksum(b, castagnoli))
	return b, nil
}

func decodeSnapshot(r io.Reader) (snapshotContents, error) {
	data, err := io.ReadAll(r)
	if err != nil {
		return snapshotContents{}, fmt.Errorf("fsm: read snapshot: %w", err)
	}
	return decodeSnapshotBytes(data)
}

func decodeSnapshotBytes(data []byte) (snapshotContents, error) {
	fail := func(format string, args ...any) (snapshotContents, error) {
		return snapshotContents{}, fmt.Errorf("%w: %s", ErrCorruptSnapshot, fmt.Sprintf(format, args...))
	}
	if len(data) < len(snapshotMagic)+4 || !bytes.HasPrefix(data, []byte(snapshotMagic)) {
		return fail("bad magic")
	}
	body, sum := data[:len(data)-4], binary.BigEndian.Uint32(data[len(data)-4:])
	if crc32.Checksum(body, castagnoli) != sum {
		return fail("checksum mismatch")
	}
	rest := body[len(snapshotMagic):]
	next := func() (uint64, bool) {
		v, n := binary.Uvarint(rest)
		if n <= 0 {
			return 0, false
		}
		rest = rest[n:]
		return v, true
	}
	var hdr [4]uint64
	for i := range hdr {
		v, ok := next()
		if !ok {
			return fail("truncated header")
		}
		hdr[i] = v
	}
	if hdr[0] != snapshotVersion {
		return fail("version %d, this build reads version %d", hdr[0], snapshotVersion)
	}
	if hdr[3] > uint64(len(rest)) {
		return fail("%d state bytes announced, %d present", hdr[3], len(rest))
	}
	state := rest[:hdr[3]]
	rest = rest[hdr[3]:]
	m, ok := next()
	if !ok || m != uint64(len(rest)) {
		return fail("bad member table length")
	}
	var table fsmpb.Members
	if err := proto.Unmarshal(rest, &table); err != nil {
		return fail("member table: %v", err)
	}
	c := snapshotContents{members: make(map[string]Member, len(table.Members)), index: hdr[1], term: hdr[2]}
	for _, pm := range table.Members {
		c.members[pm.Id] = *memberFromProto(pm)
	}
	for _, pl := range table.Leaders {
		c.leaders = append(c.leaders, leaderFromProto(pl))
	}
	var err error
	if c.acl, err = aclFromProto(&table); err != nil {
		return fail("acl: %v", err)
	}
	if c.state, err = dag.Unmarshal(state); err != nil {
		return snapshotContents{}, fmt.Errorf("fsm: restore: %w", err)
	}
	return c, nil
}
