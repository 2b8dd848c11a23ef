package fsm

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"

	"github.com/baton-sched/baton/dag"
)

// Snapshot layout:
//
//	"BATONFSM"            magic
//	uvarint version       snapshotVersion
//	uvarint index, term   the last entry the state includes
//	uvarint n, n bytes    the dag state (dag.State.MarshalBinary)
//	uint32 crc32c         of the state bytes, big-endian
const (
	snapshotMagic   = "BATONFSM"
	snapshotVersion = 1
)

// ErrCorruptSnapshot is a snapshot that cannot be restored.
var ErrCorruptSnapshot = errors.New("fsm: corrupt snapshot")

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

func encodeSnapshot(s *dag.State, index, term uint64) ([]byte, error) {
	state, err := s.MarshalBinary()
	if err != nil {
		return nil, fmt.Errorf("fsm: snapshot: %w", err)
	}
	b := make([]byte, 0, len(state)+64)
	b = append(b, snapshotMagic...)
	b = binary.AppendUvarint(b, snapshotVersion)
	b = binary.AppendUvarint(b, index)
	b = binary.AppendUvarint(b, term)
	b = binary.AppendUvarint(b, uint64(len(state)))
	b = append(b, state...)
	b = binary.BigEndian.AppendUint32(b, crc32.Checksum(state, castagnoli))
	return b, nil
}

func decodeSnapshot(r io.Reader) (s *dag.State, index, term uint64, err error) {
	data, err := io.ReadAll(r)
	if err != nil {
		return nil, 0, 0, fmt.Errorf("fsm: read snapshot: %w", err)
	}
	if !bytes.HasPrefix(data, []byte(snapshotMagic)) {
		return nil, 0, 0, fmt.Errorf("%w: bad magic", ErrCorruptSnapshot)
	}
	rest := data[len(snapshotMagic):]
	var vals [4]uint64
	for i := range vals {
		v, n := binary.Uvarint(rest)
		if n <= 0 {
			return nil, 0, 0, fmt.Errorf("%w: truncated header", ErrCorruptSnapshot)
		}
		vals[i], rest = v, rest[n:]
	}
	if vals[0] != snapshotVersion {
		return nil, 0, 0, fmt.Errorf("%w: version %d, this build reads version %d", ErrCorruptSnapshot, vals[0], snapshotVersion)
	}
	n := vals[3]
	if uint64(len(rest)) != n+4 {
		return nil, 0, 0, fmt.Errorf("%w: %d state bytes announced, %d present", ErrCorruptSnapshot, n, len(rest))
	}
	state, sum := rest[:n], binary.BigEndian.Uint32(rest[n:])
	if crc32.Checksum(state, castagnoli) != sum {
		return nil, 0, 0, fmt.Errorf("%w: checksum mismatch", ErrCorruptSnapshot)
	}
	s, err = dag.Unmarshal(state)
	if err != nil {
		return nil, 0, 0, fmt.Errorf("fsm: restore: %w", err)
	}
	return s, vals[1], vals[2], nil
}
