package ops

import (
	"bytes"
	"fmt"
	"hash/fnv"
	"sort"
	"strconv"

	"github.com/baton-sched/baton/blocksize"
	"github.com/baton-sched/baton/plan"
)

// shuffleDep finds the dependency of the shuffle with a key, and the node
// that reads it.
func shuffleDep(g *plan.Graph, key string) (*plan.Dep, *plan.Node) {
	for i := range g.Nodes {
		for j := range g.Nodes[i].Deps {
			if d := &g.Nodes[i].Deps[j]; d.Kind == plan.Shuffle && d.Shuffle.Key == key {
				return d, &g.Nodes[i]
			}
		}
	}
	return nil, nil
}

// hashKey is the hash partitioner's hash: FNV-1a, the same on every
// executor.
func hashKey(k []byte) uint64 {
	h := fnv.New64a()
	h.Write(k)
	return h.Sum64()
}

// partitionerFor returns the function that assigns a record to a reducer.
func partitionerFor(d *plan.Dep, reader *plan.Node, mapPartition int) (func(Record) (int, error), error) {
	p := d.Shuffle.Partitioner
	n := p.Partitions
	switch {
	case reader.Op == "repartition":
		// Spark spreads records round-robin from a position that depends
		// on the map partition.
		next := mapPartition % n
		return func(Record) (int, error) {
			r := next
			next = (next + 1) % n
			return r, nil
		}, nil
	case reader.Op == "distinct":
		return func(r Record) (int, error) {
			return int(hashKey(AppendRecord(nil, r)) % uint64(n)), nil
		}, nil
	case p.Kind == "hash":
		return func(r Record) (int, error) {
			return int(hashKey(r.Key) % uint64(n)), nil
		}, nil
	case p.Kind == "range":
		bounds := p.Bounds
		desc := p.Descending
		return func(r Record) (int, error) {
			i := sort.Search(len(bounds), func(i int) bool { return bytes.Compare(r.Key, bounds[i]) <= 0 })
			if desc {
				i = n - 1 - i
			}
			return i, nil
		}, nil
	}
	return nil, fmt.Errorf("ops: unknown partitioner %q", p.Kind)
}

// runMap computes the task's partition and writes it into one block per
// reducer, combining values of a key first when the shuffle has a
// combiner (map-side combine).
func (x *exec) runMap() (*MapOutput, error) {
	d, reader := shuffleDep(x.g, x.t.ShuffleKey)
	if d == nil {
		return nil, fmt.Errorf("ops: the graph has no shuffle %s", x.t.ShuffleKey)
	}
	if d.Parent != x.t.Node {
		return nil, fmt.Errorf("ops: shuffle %s is written by node %d, not %d", x.t.ShuffleKey, d.Parent, x.t.Node)
	}
	part, err := partitionerFor(d, reader, x.t.Partition)
	if err != nil {
		return nil, err
	}
	reducers := d.Shuffle.Partitioner.Partitions
	blocks := make([][]byte, reducers)
	// Within a memory budget, the output goes to the task's sink a
	// segment at a time (a map output of several segments, read back in
	// order): whenever what is buffered passes the budget. Map-side
	// combining and de-duplication then start again, which the reducer's
	// own combining and de-duplication make good.
	totals := make([]uint64, reducers)
	var used int64
	var pending func() // turns what the combine maps hold into blocks
	flush := func() error {
		if pending != nil {
			pending()
		}
		if err := x.t.Sink.Segment(blocks); err != nil {
			return err
		}
		for i, b := range blocks {
			totals[i] += uint64(len(b))
			blocks[i] = b[:0]
		}
		used = 0
		return nil
	}
	over := func() bool { return x.t.Sink != nil && x.canSpill() && used > x.r.TaskMemory }
	keyed := reader.Op != "repartition" && reader.Op != "distinct"
	needKey := func(r Record) error {
		if keyed && !r.HasKey {
			return fmt.Errorf("ops: %s %q needs keyed records, got the value-only record %q", reader.Op, reader.Name, truncate(r.Value))
		}
		return nil
	}
	switch {
	case d.Shuffle.Combiner.Name != "" && reader.Op == "reduceByKey":
		agg, err := x.r.aggregator(d.Shuffle.Combiner)
		if err != nil {
			return nil, err
		}
		if agg.IsInt() {
			combined := make([]map[string]int64, reducers)
			err = x.compute(x.t.Node, x.t.Partition, func(r Record) error {
				if err := needKey(r); err != nil {
					return err
				}
				v, err := agg.IntCreate(r.Value)
				if err != nil {
					return err
				}
				red, err := part(r)
				if err != nil {
					return err
				}
				m := combined[red]
				if m == nil {
					m = map[string]int64{}
					combined[red] = m
				}
				if old, ok := m[string(r.Key)]; ok {
					m[string(r.Key)] = agg.IntMerge(old, v)
					return nil
				}
				m[string(r.Key)] = v
				used += int64(len(r.Key)) + 8 + entryOverhead
				if over() {
					return flush()
				}
				return nil
			})
			pending = func() {
				for red, m := range combined {
					blocks[red] = appendSortedInts(blocks[red], m)
					clear(m)
				}
			}
			pending()
		} else {
			combined := make([]map[string][]byte, reducers)
			err = x.compute(x.t.Node, x.t.Partition, func(r Record) error {
				if err := needKey(r); err != nil {
					return err
				}
				v, err := agg.BytesCreate(r.Value)
				if err != nil {
					return err
				}
				red, err := part(r)
				if err != nil {
					return err
				}
				m := combined[red]
				if m == nil {
					m = map[string][]byte{}
					combined[red] = m
				}
				old, ok := m[string(r.Key)]
				if ok {
					if v, err = agg.BytesMerge(old, v); err != nil {
						return err
					}
					used += int64(len(v) - len(old))
				} else {
					used += int64(len(r.Key)+len(v)) + entryOverhead
				}
				m[string(r.Key)] = append([]byte(nil), v...)
				if over() {
					return flush()
				}
				return nil
			})
			pending = func() {
				for red, m := range combined {
					blocks[red] = appendSortedBytes(blocks[red], m)
					clear(m)
				}
			}
			pending()
		}
		if err != nil {
			return nil, err
		}
	case reader.Op == "distinct":
		seen := make([]map[string]bool, reducers)
		err = x.compute(x.t.Node, x.t.Partition, func(r Record) error {
			red, err := part(r)
			if err != nil {
				return err
			}
			enc := AppendRecord(nil, r)
			if seen[red] == nil {
				seen[red] = map[string]bool{}
			}
			if !seen[red][string(enc)] {
				seen[red][string(enc)] = true
				blocks[red] = append(blocks[red], enc...)
				used += 2*int64(len(enc)) + entryOverhead
				if over() {
					for _, s := range seen {
						clear(s)
					}
					return flush()
				}
			}
			return nil
		})
		if err != nil {
			return nil, err
		}
	default:
		err = x.compute(x.t.Node, x.t.Partition, func(r Record) error {
			if err := needKey(r); err != nil {
				return err
			}
			red, err := part(r)
			if err != nil {
				return err
			}
			n := len(blocks[red])
			blocks[red] = AppendRecord(blocks[red], r)
			used += int64(len(blocks[red]) - n)
			if over() {
				return flush()
			}
			return nil
		})
		if err != nil {
			return nil, err
		}
	}
	out := &MapOutput{Blocks: blocks}
	if reducers <= blocksize.MaxSizedReducers {
		out.Sizes = make([]byte, reducers)
	}
	for i, b := range blocks {
		total := totals[i] + uint64(len(b))
		out.Bytes += total
		if out.Sizes != nil {
			out.Sizes[i] = blocksize.Compress(total)
		}
	}
	return out, nil
}

func appendSortedInts(b []byte, m map[string]int64) []byte {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var num []byte
	for _, k := range keys {
		num = strconv.AppendInt(num[:0], m[k], 10)
		b = AppendRecord(b, Record{Key: []byte(k), Value: num, HasKey: true})
	}
	return b
}

func appendSortedBytes(b []byte, m map[string][]byte) []byte {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		b = AppendRecord(b, Record{Key: []byte(k), Value: m[k], HasKey: true})
	}
	return b
}

// readShuffle computes partition p of a node that reads shuffles: it
// fetches reducer p's blocks from every map output and combines them as
// the node's operator says.
func (x *exec) readShuffle(node, p int, emit Emit) error {
	n := &x.g.Nodes[node]
	fetch := func(d plan.Dep, fn func(Record) error) error {
		in, ok := x.t.Inputs[d.Shuffle.Key]
		if !ok {
			return fmt.Errorf("ops: no locations for shuffle %s", d.Shuffle.Key)
		}
		if x.r.Fetcher == nil {
			return fmt.Errorf("ops: no fetcher for shuffle %s", d.Shuffle.Key)
		}
		return x.r.Fetcher.Fetch(x.ctx, in, p, func(mapIdx int, block []byte) error {
			if err := DecodeRecords(block, fn); err != nil {
				if err == ErrCorruptRecords {
					return &FetchFailedError{Shuffle: in.ID, Map: mapIdx, Reduce: p, Executor: locationOf(in, mapIdx), Err: err}
				}
				return err
			}
			return nil
		})
	}
	one := func(fn func(Record) error) error { return fetch(n.Deps[0], fn) }
	switch n.Op {
	case "reduceByKey":
		agg, err := x.r.aggregator(n.Fn)
		if err != nil {
			return err
		}
		combined := n.Deps[0].Shuffle.Combiner.Name != ""
		if agg.IsInt() {
			return x.reduceInts(agg, combined, one, emit)
		}
		return x.reduceBytes(agg, combined, one, emit)
	case "repartition":
		return fetch(n.Deps[0], emit)
	case "sortByKey":
		// The range partitioner sent this reducer one range of keys;
		// sorting it (stably, by key bytes) orders the whole output.
		return x.sortPartition(n.Deps[0].Shuffle.Partitioner.Descending, one, emit)
	case "distinct":
		return x.distinctPartition(one, emit)
	case "groupByKey", "cogroup", "join":
		return x.groupPartition(n, fetch, emit)
	}
	return fmt.Errorf("ops: dataset %q: operator %q does not read a shuffle", n.Name, n.Op)
}

func nonNil(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}

func locationOf(in ShuffleInput, mapIdx int) string {
	for _, l := range in.Locations {
		if l.Map == mapIdx {
			return l.Executor
		}
	}
	return ""
}

func emitSortedInts(m map[string]int64, emit Emit) error {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var num []byte
	for _, k := range keys {
		num = strconv.AppendInt(num[:0], m[k], 10)
		if err := emit(Record{Key: []byte(k), Value: num, HasKey: true}); err != nil {
			return err
		}
	}
	return nil
}

func emitSortedBytes(m map[string][]byte, emit Emit) error {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		if err := emit(Record{Key: []byte(k), Value: m[k], HasKey: true}); err != nil {
			return err
		}
	}
	return nil
}
