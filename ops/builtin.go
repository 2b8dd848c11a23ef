package ops

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"time"
	"unicode"
	"unicode/utf8"
)

// Aggregator combines the values of one key, as Spark's combineByKey:
// Create turns a value into a combiner, Merge merges two combiners. A map
// task combines the values of its partition (map-side combine); reducers
// merge the map tasks' combiners. Integer aggregators (sum, count, min,
// max) keep int64 combiners, written as decimal text between stages;
// bytes aggregators keep byte strings.
type Aggregator struct {
	Name        string
	IntCreate   func(v []byte) (int64, error)
	IntMerge    func(a, b int64) int64
	BytesCreate func(v []byte) ([]byte, error)
	BytesMerge  func(a, b []byte) ([]byte, error)
}

// IsInt reports whether the aggregator keeps int64 combiners.
func (a *Aggregator) IsInt() bool { return a.IntMerge != nil }

var one = []byte("1")

func builtins() []Func {
	intAgg := func(name, doc string, create func([]byte) (int64, error), merge func(a, b int64) int64) Func {
		return Func{Name: name, Kind: KindAggregator, Doc: doc, New: func(raw json.RawMessage) (any, error) {
			if err := noArgs(raw); err != nil {
				return nil, err
			}
			return &Aggregator{Name: name, IntCreate: create, IntMerge: merge}, nil
		}}
	}
	return []Func{
		{Name: "words", Kind: KindFlatMap, Doc: "splits a record's value at white space into value-only records, one a word", New: func(raw json.RawMessage) (any, error) {
			return FlatMapFunc(words), noArgs(raw)
		}},
		{Name: "lower", Kind: KindMap, Doc: "lower-cases a record's value", New: func(raw json.RawMessage) (any, error) {
			return MapFunc(func(_ *TaskContext, r Record) (Record, error) {
				r.Value = bytes.ToLower(r.Value)
				return r, nil
			}), noArgs(raw)
		}},
		{Name: "pairWithOne", Kind: KindMap, Doc: "makes (value, 1) of a record: its value becomes the key", New: func(raw json.RawMessage) (any, error) {
			return MapFunc(func(_ *TaskContext, r Record) (Record, error) {
				return Record{Key: r.Value, Value: one, HasKey: true}, nil
			}), noArgs(raw)
		}},
		{Name: "field", Kind: KindMap, Doc: `keeps field i (from 0) of a record's value split at sep (args {"i": 0, "sep": ","}; sep defaults to a tab)`, New: newField},
		{Name: "toInt", Kind: KindMap, Doc: "checks a record's value is an integer (decimal text, spaces allowed around it) and writes it canonically", New: func(raw json.RawMessage) (any, error) {
			return MapFunc(func(_ *TaskContext, r Record) (Record, error) {
				n, err := ParseInt(bytes.TrimSpace(r.Value))
				if err != nil {
					return r, err
				}
				r.Value = strconv.AppendInt(nil, n, 10)
				return r, nil
			}), noArgs(raw)
		}},
		intAgg("sum", "adds integer values", ParseInt, func(a, b int64) int64 { return a + b }),
		intAgg("count", "counts values", func([]byte) (int64, error) { return 1, nil }, func(a, b int64) int64 { return a + b }),
		intAgg("min", "keeps the smallest integer value", ParseInt, func(a, b int64) int64 { return min(a, b) }),
		intAgg("max", "keeps the largest integer value", ParseInt, func(a, b int64) int64 { return max(a, b) }),

		{Name: "chaos.fail", Kind: KindPartition, Doc: `fails the task on the listed partitions (none: all) and executors (none: all) while its attempt number is below a bound (args {"partitions": [0], "attempts": 2, "executors": ["e1"]}; no attempts: always; partitions or executors needed)`, New: newChaos(func(tc *TaskContext, c *chaosArgs) error {
			return fmt.Errorf("chaos.fail: partition %d, attempt %d", tc.Partition, tc.Attempt)
		})},
		{Name: "chaos.exit", Kind: KindPartition, Doc: `makes the executor process exit at once, as a crash, on the listed partitions and executors (one of the two needed) while the attempt number is below a bound (args as chaos.fail)`, New: newChaos(func(tc *TaskContext, c *chaosArgs) error {
			if tc.Exit == nil {
				return errors.New("chaos.exit: not running in an executor")
			}
			tc.Exit()
			return nil
		})},
		{Name: "chaos.sleep", Kind: KindPartition, Doc: `sleeps before passing records on (args {"ms": 100, "partitions": [0], "attempts": 1, "executors": ["e1"]}; partitions, attempts and executors as chaos.fail, but none needed)`, New: newSleep},
		{Name: "chaos.blob", Kind: KindPartition, Doc: `replaces a partition's records with one record whose value has the given size (args {"bytes": 100000})`, New: newBlob},
	}
}

// words splits at Unicode white space without allocating per word.
func words(_ *TaskContext, r Record, emit Emit) error {
	v := r.Value
	for len(v) > 0 {
		// Skip spaces.
		i := 0
		for i < len(v) {
			if c := v[i]; c < utf8.RuneSelf {
				if c != ' ' && c != '\t' && c != '\n' && c != '\r' && c != '\v' && c != '\f' {
					break
				}
				i++
				continue
			}
			ru, size := utf8.DecodeRune(v[i:])
			if !unicode.IsSpace(ru) {
				break
			}
			i += size
		}
		v = v[i:]
		j := 0
		for j < len(v) {
			if c := v[j]; c < utf8.RuneSelf {
				if c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\v' || c == '\f' {
					break
				}
				j++
				continue
			}
			ru, size := utf8.DecodeRune(v[j:])
			if unicode.IsSpace(ru) {
				break
			}
			j += size
		}
		if j > 0 {
			if err := emit(Record{Value: v[:j]}); err != nil {
				return err
			}
		}
		v = v[j:]
	}
	return nil
}

func newField(raw json.RawMessage) (any, error) {
	a := struct {
		I   *int    `json:"i"`
		Sep *string `json:"sep"`
	}{}
	if err := args(raw, &a); err != nil {
		return nil, err
	}
	if a.I == nil || *a.I < 0 {
		return nil, errors.New(`needs {"i": N} with N >= 0`)
	}
	sep := []byte("\t")
	if a.Sep != nil {
		if *a.Sep == "" {
			return nil, errors.New("sep must not be empty")
		}
		sep = []byte(*a.Sep)
	}
	i := *a.I
	return MapFunc(func(_ *TaskContext, r Record) (Record, error) {
		v := r.Value
		for k := 0; k < i; k++ {
			j := bytes.Index(v, sep)
			if j < 0 {
				return r, fmt.Errorf("field: the record %q has %d fields, field %d asked for", truncate(r.Value), k+1, i)
			}
			v = v[j+len(sep):]
		}
		if j := bytes.Index(v, sep); j >= 0 {
			v = v[:j]
		}
		r.Value = v
		return r, nil
	}), nil
}

type chaosArgs struct {
	Partitions []int    `json:"partitions"` // none: every partition
	Attempts   *int     `json:"attempts"`   // none: every attempt
	Executors  []string `json:"executors"`  // none: every executor
}

func (c *chaosArgs) hits(tc *TaskContext) bool {
	in := len(c.Partitions) == 0
	for _, p := range c.Partitions {
		in = in || p == tc.Partition
	}
	on := len(c.Executors) == 0
	for _, e := range c.Executors {
		on = on || e == tc.Executor
	}
	return in && on && (c.Attempts == nil || tc.Attempt < *c.Attempts)
}

// newChaos builds a pass-through partition function that calls act first
// on the partitions and attempts its arguments name.
func newChaos(act func(tc *TaskContext, c *chaosArgs) error) func(json.RawMessage) (any, error) {
	return func(raw json.RawMessage) (any, error) {
		var c chaosArgs
		if err := args(raw, &c); err != nil {
			return nil, err
		}
		if len(c.Partitions) == 0 && len(c.Executors) == 0 {
			return nil, errors.New(`needs {"partitions": [...]} or {"executors": [...]}`)
		}
		return PartitionFunc(func(tc *TaskContext, in func(func(Record) error) error, emit Emit) error {
			if c.hits(tc) {
				if err := act(tc, &c); err != nil {
					return err
				}
			}
			return in(emit)
		}), nil
	}
}

func newSleep(raw json.RawMessage) (any, error) {
	a := struct {
		MS int `json:"ms"`
		chaosArgs
	}{}
	if err := args(raw, &a); err != nil {
		return nil, err
	}
	if a.MS < 0 {
		return nil, errors.New("ms must be >= 0")
	}
	return PartitionFunc(func(tc *TaskContext, in func(func(Record) error) error, emit Emit) error {
		if a.hits(tc) {
			ctx := tc.Ctx
			if ctx == nil {
				ctx = context.Background()
			}
			select {
			case <-time.After(time.Duration(a.MS) * time.Millisecond):
			case <-ctx.Done():
				return ctx.Err()
			}
		}
		return in(emit)
	}), nil
}

func newBlob(raw json.RawMessage) (any, error) {
	a := struct {
		Bytes int64 `json:"bytes"`
	}{}
	if err := args(raw, &a); err != nil {
		return nil, err
	}
	if a.Bytes < 0 || a.Bytes > 1<<32 {
		return nil, errors.New("bytes must be between 0 and 4 GiB")
	}
	return PartitionFunc(func(tc *TaskContext, in func(func(Record) error) error, emit Emit) error {
		if err := in(func(Record) error { return nil }); err != nil {
			return err
		}
		return emit(Record{Value: bytes.Repeat([]byte{'b'}, int(a.Bytes))})
	}), nil
}

// ParseInt parses decimal text without allocating.
func ParseInt(b []byte) (int64, error) {
	if len(b) == 0 {
		return 0, errors.New("not an integer: empty value")
	}
	neg := false
	i := 0
	if b[0] == '-' || b[0] == '+' {
		neg = b[0] == '-'
		i = 1
		if len(b) == 1 {
			return 0, fmt.Errorf("not an integer: %q", truncate(b))
		}
	}
	var n uint64
	for ; i < len(b); i++ {
		c := b[i] - '0'
		if c > 9 {
			return 0, fmt.Errorf("not an integer: %q", truncate(b))
		}
		if n > (1<<63)/10 {
			return 0, fmt.Errorf("integer out of range: %q", truncate(b))
		}
		n = n*10 + uint64(c)
	}
	if neg {
		if n > 1<<63 {
			return 0, fmt.Errorf("integer out of range: %q", truncate(b))
		}
		return -int64(n), nil
	}
	if n > 1<<63-1 {
		return 0, fmt.Errorf("integer out of range: %q", truncate(b))
	}
	return int64(n), nil
}

func truncate(b []byte) string {
	if len(b) > 40 {
		return string(b[:40]) + "..."
	}
	return string(b)
}
