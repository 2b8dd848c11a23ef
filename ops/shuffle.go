package ops

import (
	"bytes"
	"encoding/json"
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
				} else {
					m[string(r.Key)] = v
				}
				return nil
			})
			for red, m := range combined {
				blocks[red] = appendSortedInts(nil, m)
			}
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
				if old, ok := m[string(r.Key)]; ok {
					if v, err = agg.BytesMerge(old, v); err != nil {
						return err
					}
				}
				m[string(r.Key)] = append([]byte(nil), v...)
				return nil
			})
			for red, m := range combined {
				blocks[red] = appendSortedBytes(nil, m)
			}
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
			blocks[red] = AppendRecord(blocks[red], r)
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
		out.Bytes += uint64(len(b))
		if out.Sizes != nil {
			out.Sizes[i] = blocksize.Compress(uint64(len(b)))
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
	switch n.Op {
	case "reduceByKey":
		agg, err := x.r.aggregator(n.Fn)
		if err != nil {
			return err
		}
		combined := n.Deps[0].Shuffle.Combiner.Name != ""
		if agg.IsInt() {
			m := map[string]int64{}
			err = fetch(n.Deps[0], func(r Record) error {
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
					v = agg.IntMerge(old, v)
				}
				m[string(r.Key)] = v
				return nil
			})
			if err != nil {
				return err
			}
			return emitSortedInts(m, emit)
		}
		m := map[string][]byte{}
		err = fetch(n.Deps[0], func(r Record) error {
			v := r.Value
			if !combined {
				var err error
				if v, err = agg.BytesCreate(v); err != nil {
					return err
				}
			}
			if old, ok := m[string(r.Key)]; ok {
				var err error
				if v, err = agg.BytesMerge(old, v); err != nil {
					return err
				}
			}
			m[string(r.Key)] = append([]byte(nil), v...)
			return nil
		})
		if err != nil {
			return err
		}
		return emitSortedBytes(m, emit)
	case "repartition":
		return fetch(n.Deps[0], emit)
	case "sortByKey":
		// The range partitioner sent this reducer one range of keys;
		// sorting it (stably, by key bytes) orders the whole output.
		var recs []Record
		err := fetch(n.Deps[0], func(r Record) error {
			recs = append(recs, Record{Key: append([]byte(nil), r.Key...), Value: append([]byte(nil), r.Value...), HasKey: r.HasKey})
			return nil
		})
		if err != nil {
			return err
		}
		desc := n.Deps[0].Shuffle.Partitioner.Descending
		sort.SliceStable(recs, func(a, b int) bool {
			c := bytes.Compare(recs[a].Key, recs[b].Key)
			if desc {
				return c > 0
			}
			return c < 0
		})
		for _, r := range recs {
			if err := emit(r); err != nil {
				return err
			}
		}
		return nil
	case "distinct":
		seen := map[string]bool{}
		return fetch(n.Deps[0], func(r Record) error {
			enc := AppendRecord(nil, r)
			if seen[string(enc)] {
				return nil
			}
			seen[string(enc)] = true
			return emit(r)
		})
	case "groupByKey", "cogroup", "join":
		// groups[key][input] holds the values of each input for a key.
		groups := map[string][][]string{}
		for i, d := range n.Deps {
			err := fetch(d, func(r Record) error {
				g := groups[string(r.Key)]
				if g == nil {
					g = make([][]string, len(n.Deps))
					groups[string(r.Key)] = g
				}
				g[i] = append(g[i], string(r.Value))
				return nil
			})
			if err != nil {
				return err
			}
		}
		keys := make([]string, 0, len(groups))
		for k := range groups {
			keys = append(keys, k)
		}
		sort.Strings(keys)
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
		for _, k := range keys {
			g := groups[k]
			switch n.Op {
			case "groupByKey":
				v, _ := json.Marshal(nonNil(g[0]))
				if err := emit(Record{Key: []byte(k), Value: v, HasKey: true}); err != nil {
					return err
				}
			case "cogroup":
				for i := range g {
					g[i] = nonNil(g[i])
				}
				v, _ := json.Marshal(g)
				if err := emit(Record{Key: []byte(k), Value: v, HasKey: true}); err != nil {
					return err
				}
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
						if err := emit(Record{Key: []byte(k), Value: v, HasKey: true}); err != nil {
							return err
						}
					}
				}
			}
		}
		return nil
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
