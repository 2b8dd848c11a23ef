package ops

import (
	"bytes"
	"encoding/json"
	"sort"
	"strconv"

	"github.com/baton-sched/baton/plan"
)

// The reduce-side operators that gather a partition, within the task's
// memory budget (see spill.go). Each gives the answer it gave before
// spilling existed — keys in order, a key's values in the order they were
// fetched — whether it spills or not.

func (x *exec) sorter(desc bool) *sorter {
	return &sorter{sp: x.spill, budget: x.r.TaskMemory, desc: desc}
}

// reduceInts is reduceByKey with an integer aggregator: a hash map of the
// partial sums, spilled as a sorted run whenever it passes the budget,
// the runs merged and combined at the end.
func (x *exec) reduceInts(agg *Aggregator, combined bool, fetch func(func(Record) error) error, emit Emit) error {
	m := map[string]int64{}
	var used int64
	var runs []string
	spillMap := func() error {
		recs := make([]Record, 0, len(m))
		for _, k := range sortedKeys(m) {
			recs = append(recs, Record{Key: []byte(k), Value: strconv.AppendInt(nil, m[k], 10), HasKey: true})
		}
		path, err := x.spill.writeRun(recs)
		if err != nil {
			return err
		}
		runs = append(runs, path)
		clear(m)
		used = 0
		return nil
	}
	err := fetch(func(r Record) error {
		var v int64
		var err error
		if combined {
			v, err = ParseInt(r.Value)
		} else {
			v, err = agg.IntCreate(r.Value)
		}
		if err != nil {
			return err
		}
		if old, ok := m[string(r.Key)]; ok {
			m[string(r.Key)] = agg.IntMerge(old, v)
			return nil
		}
		m[string(r.Key)] = v
		used += int64(len(r.Key)) + 8 + entryOverhead
		if x.canSpill() && used > x.r.TaskMemory {
			return spillMap()
		}
		return nil
	})
	if err != nil {
		return err
	}
	if len(runs) == 0 {
		return emitSortedInts(m, emit)
	}
	s := &sorter{runs: runs}
	for _, k := range sortedKeys(m) {
		s.recs = append(s.recs, Record{Key: []byte(k), Value: strconv.AppendInt(nil, m[k], 10), HasKey: true})
	}
	var cur []byte
	var acc int64
	have := false
	var num []byte
	flush := func() error {
		if !have {
			return nil
		}
		num = strconv.AppendInt(num[:0], acc, 10)
		return emit(Record{Key: cur, Value: num, HasKey: true})
	}
	err = s.each(func(r Record) error {
		v, err := ParseInt(r.Value)
		if err != nil {
			return err
		}
		if have && bytes.Equal(cur, r.Key) {
			acc = agg.IntMerge(acc, v)
			return nil
		}
		if err := flush(); err != nil {
			return err
		}
		cur, acc, have = append(cur[:0], r.Key...), v, true
		return nil
	})
	if err != nil {
		return err
	}
	return flush()
}

// reduceBytes is reduceByKey with a byte-valued aggregator, as reduceInts.
func (x *exec) reduceBytes(agg *Aggregator, combined bool, fetch func(func(Record) error) error, emit Emit) error {
	m := map[string][]byte{}
	var used int64
	var runs []string
	records := func() []Record {
		recs := make([]Record, 0, len(m))
		for _, k := range sortedKeys(m) {
			recs = append(recs, Record{Key: []byte(k), Value: m[k], HasKey: true})
		}
		return recs
	}
	err := fetch(func(r Record) error {
		v := r.Value
		if !combined {
			var err error
			if v, err = agg.BytesCreate(v); err != nil {
				return err
			}
		}
		old, ok := m[string(r.Key)]
		if ok {
			var err error
			if v, err = agg.BytesMerge(old, v); err != nil {
				return err
			}
			used += int64(len(v) - len(old))
		} else {
			used += int64(len(r.Key)+len(v)) + entryOverhead
		}
		m[string(r.Key)] = append([]byte(nil), v...)
		if x.canSpill() && used > x.r.TaskMemory {
			path, err := x.spill.writeRun(records())
			if err != nil {
				return err
			}
			runs = append(runs, path)
			clear(m)
			used = 0
		}
		return nil
	})
	if err != nil {
		return err
	}
	if len(runs) == 0 {
		return emitSortedBytes(m, emit)
	}
	s := &sorter{runs: runs, recs: records()}
	var cur, acc []byte
	have := false
	flush := func() error {
		if !have {
			return nil
		}
		return emit(Record{Key: cur, Value: acc, HasKey: true})
	}
	err = s.each(func(r Record) error {
		if have && bytes.Equal(cur, r.Key) {
			v, err := agg.BytesMerge(acc, r.Value)
			if err != nil {
				return err
			}
			acc = append(acc[:0], v...)
			return nil
		}
		if err := flush(); err != nil {
			return err
		}
		cur, acc, have = append(cur[:0], r.Key...), append(acc[:0], r.Value...), true
		return nil
	})
	if err != nil {
		return err
	}
	return flush()
}

// sortPartition is sortByKey's reducer: an external merge sort, stable.
func (x *exec) sortPartition(desc bool, fetch func(func(Record) error) error, emit Emit) error {
	s := x.sorter(desc)
	if err := fetch(s.add); err != nil {
		return err
	}
	return s.each(emit)
}

// distinctPartition emits each distinct record once, ordered by its
// encoding.
func (x *exec) distinctPartition(fetch func(func(Record) error) error, emit Emit) error {
	s := x.sorter(false)
	var enc []byte
	err := fetch(func(r Record) error {
		enc = AppendRecord(enc[:0], r)
		return s.add(Record{Key: enc})
	})
	if err != nil {
		return err
	}
	var last []byte
	first := true
	return s.each(func(r Record) error {
		if !first && bytes.Equal(last, r.Key) {
			return nil
		}
		first = false
		last = append(last[:0], r.Key...)
		return DecodeRecords(r.Key, emit)
	})
}

// groupPartition is groupByKey, cogroup and join: the records of every
// input, tagged with the input, sorted by key (externally when over the
// budget), then each key's values gathered (a key's values must fit in
// memory, as in Spark) and emitted.
func (x *exec) groupPartition(n *plan.Node, fetch func(d plan.Dep, fn func(Record) error) error, emit Emit) error {
	s := x.sorter(false)
	for i, d := range n.Deps {
		tag := byte(i)
		var val []byte
		err := fetch(d, func(r Record) error {
			val = append(append(val[:0], tag), r.Value...)
			return s.add(Record{Key: r.Key, Value: val, HasKey: true})
		})
		if err != nil {
			return err
		}
	}
	how := "inner"
	if n.Op == "join" {
		var ps struct {
			How string `json:"how"`
		}
		if len(n.Params) > 0 {
			if err := params(n.Params, &ps); err != nil {
				return err
			}
		}
		if ps.How != "" {
			how = ps.How
		}
	}
	var key []byte
	have := false
	g := make([][]string, len(n.Deps))
	flush := func() error {
		if !have {
			return nil
		}
		defer func() {
			for i := range g {
				g[i] = g[i][:0]
			}
		}()
		switch n.Op {
		case "groupByKey":
			v, _ := json.Marshal(nonNil(g[0]))
			return emit(Record{Key: key, Value: v, HasKey: true})
		case "cogroup":
			out := make([][]string, len(g))
			for i := range g {
				out[i] = nonNil(g[i])
			}
			v, _ := json.Marshal(out)
			return emit(Record{Key: key, Value: v, HasKey: true})
		case "join":
			rights := []*string{}
			for i := range g[1] {
				rights = append(rights, &g[1][i])
			}
			if len(rights) == 0 && how == "left" {
				rights = []*string{nil}
			}
			for _, l := range g[0] {
				for _, r := range rights {
					v, _ := json.Marshal([]*string{&l, r})
					if err := emit(Record{Key: key, Value: v, HasKey: true}); err != nil {
						return err
					}
				}
			}
		}
		return nil
	}
	err := s.each(func(r Record) error {
		if !have || !bytes.Equal(key, r.Key) {
			if err := flush(); err != nil {
				return err
			}
			key, have = append(key[:0], r.Key...), true
		}
		if len(r.Value) == 0 || int(r.Value[0]) >= len(g) {
			return errCorruptRun
		}
		g[r.Value[0]] = append(g[r.Value[0]], string(r.Value[1:]))
		return nil
	})
	if err != nil {
		return err
	}
	return flush()
}

// canSpill reports whether the task has a budget and a place to spill.
func (x *exec) canSpill() bool {
	return x.r.TaskMemory > 0 && x.spill != nil && x.spill.root != ""
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}
