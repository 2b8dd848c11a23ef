package raftnet

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/fnv"
	"io"
	"os"
)

// checkBoltFile looks at a bbolt file's two meta pages before bbolt opens
// it: bbolt trusts them and asserts (panics, keeping the file locked) when
// the pages they promise are not there. A file shorter than its newest
// valid meta page's high-water mark has been cut short. A missing or
// empty file is fine (bbolt creates it).
//
// The meta page layout is bbolt's on-disk format (little-endian on the
// platforms Go's bbolt supports): a 16-byte page header, then magic,
// version, page size, flags (4 bytes each), the root bucket (root page and
// sequence), the freelist page, the high-water page id, the transaction
// id (8 bytes each) and an FNV-64a checksum of everything before it.
func checkBoltFile(path string) error {
	f, err := os.Open(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return err
	}
	if st.Size() == 0 {
		return nil
	}
	const (
		pageHeader = 16
		metaLen    = 64
		magic      = 0xED0CDAED
	)
	type meta struct {
		pageSize    uint32
		highWater   uint64
		txid        uint64
		ok          bool
		description string
	}
	read := func(off int64) meta {
		buf := make([]byte, pageHeader+metaLen)
		if _, err := f.ReadAt(buf, off); err != nil && !errors.Is(err, io.EOF) {
			return meta{description: err.Error()}
		}
		m := buf[pageHeader:]
		if binary.LittleEndian.Uint32(m[0:]) != magic {
			return meta{description: "bad magic"}
		}
		if v := binary.LittleEndian.Uint32(m[4:]); v != 2 {
			return meta{description: fmt.Sprintf("version %d", v)}
		}
		h := fnv.New64a()
		h.Write(m[:56])
		if h.Sum64() != binary.LittleEndian.Uint64(m[56:]) {
			return meta{description: "bad checksum"}
		}
		return meta{pageSize: binary.LittleEndian.Uint32(m[8:]), highWater: binary.LittleEndian.Uint64(m[40:]), txid: binary.LittleEndian.Uint64(m[48:]), ok: true}
	}
	// bbolt uses whichever valid meta page is newer.
	m0 := read(0)
	pageSize := int64(os.Getpagesize())
	if m0.ok {
		pageSize = int64(m0.pageSize)
	}
	m1 := read(pageSize)
	var best meta
	switch {
	case m0.ok && (!m1.ok || m0.txid >= m1.txid):
		best = m0
	case m1.ok:
		best = m1
	default:
		return fmt.Errorf("no valid meta page (%s; %s)", m0.description, m1.description)
	}
	if best.pageSize < 512 || best.pageSize > 1<<20 {
		return fmt.Errorf("meta page: page size %d", best.pageSize)
	}
	if need := int64(best.highWater) * int64(best.pageSize); st.Size() < need {
		return fmt.Errorf("cut short: %d bytes, its pages need %d", st.Size(), need)
	}
	return nil
}
