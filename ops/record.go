package ops

import (
	"encoding/binary"
	"errors"
	"fmt"

	"github.com/baton-sched/baton/plan"
)

// Record is a key/value pair of byte strings (the same type plans use for
// inline records). A record without a key is a value-only record.
type Record = plan.Record

// Record encoding: a record is
//
//	uvarint(len(key)<<1 | hasKey)  key bytes  uvarint(len(value))  value bytes
//
// and a block of records is their concatenation. It costs two or three
// bytes of framing for short records.

// AppendRecord appends r's encoding to b.
func AppendRecord(b []byte, r Record) []byte {
	h := uint64(len(r.Key)) << 1
	if r.HasKey {
		h |= 1
	}
	b = binary.AppendUvarint(b, h)
	b = append(b, r.Key...)
	b = binary.AppendUvarint(b, uint64(len(r.Value)))
	return append(b, r.Value...)
}

// ErrCorruptRecords is a block of records that does not decode.
var ErrCorruptRecords = errors.New("ops: corrupt record block")

// DecodeRecords calls fn with each record of a block, in order. The
// records alias b.
func DecodeRecords(b []byte, fn func(Record) error) error {
	for len(b) > 0 {
		h, n := binary.Uvarint(b)
		if n <= 0 {
			return ErrCorruptRecords
		}
		b = b[n:]
		klen := h >> 1
		if klen > uint64(len(b)) {
			return ErrCorruptRecords
		}
		r := Record{Key: b[:klen:klen], HasKey: h&1 == 1}
		b = b[klen:]
		vlen, n := binary.Uvarint(b)
		if n <= 0 || vlen > uint64(len(b)-n) {
			return ErrCorruptRecords
		}
		b = b[n:]
		r.Value = b[:vlen:vlen]
		b = b[vlen:]
		if err := fn(r); err != nil {
			return err
		}
	}
	return nil
}

// CountRecords returns the number of records in a block.
func CountRecords(b []byte) (int, error) {
	n := 0
	err := DecodeRecords(b, func(Record) error { n++; return nil })
	return n, err
}

// FormatRecord renders a record as `batonctl job results` prints it:
// key<TAB>value, or the value alone for a value-only record.
func FormatRecord(r Record) string {
	if r.HasKey {
		return fmt.Sprintf("%s\t%s", r.Key, r.Value)
	}
	return string(r.Value)
}
