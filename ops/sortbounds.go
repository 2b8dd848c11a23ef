package ops

import (
	"bytes"
	"fmt"
	"sort"
)

// PartitionSample is one input partition's record count and a sample of
// its keys (the sampleKeys action's result).
type PartitionSample struct {
	Count int64
	Keys  [][]byte
}

// ParseSample decodes a sampleKeys result.
func ParseSample(b []byte) (PartitionSample, error) {
	var ps PartitionSample
	first := true
	err := DecodeRecords(b, func(r Record) error {
		if first {
			first = false
			n, err := ParseInt(r.Value)
			if err != nil {
				return fmt.Errorf("ops: sample without a count: %w", err)
			}
			ps.Count = n
			return nil
		}
		ps.Keys = append(ps.Keys, append([]byte(nil), r.Key...))
		return nil
	})
	return ps, err
}

// SampleSizes returns how many keys to sample from each of inputs
// partitions for a sort into reducers partitions (Spark's RangePartitioner:
// 20 keys a reducer, at most a million, three times over-sampled).
func SampleSizes(inputs, reducers int) int {
	size := min(20*reducers, 1_000_000)
	per := (3*size + inputs - 1) / inputs
	return max(per, 1)
}

// RangeBounds picks reducers-1 ascending bounds from the partitions'
// samples, each key weighted by how many records it stands for (its
// partition's count over its sample size), so that reducers get about
// equal shares (Spark's RangePartitioner.determineBounds). With fewer
// distinct keys than reducers it returns fewer bounds.
func RangeBounds(samples []PartitionSample, reducers int) [][]byte {
	type cand struct {
		key    []byte
		weight float64
	}
	var cands []cand
	var total float64
	for _, s := range samples {
		if len(s.Keys) == 0 {
			continue
		}
		w := float64(s.Count) / float64(len(s.Keys))
		for _, k := range s.Keys {
			cands = append(cands, cand{k, w})
			total += w
		}
	}
	if reducers <= 1 || len(cands) == 0 {
		return nil
	}
	sort.SliceStable(cands, func(a, b int) bool { return bytes.Compare(cands[a].key, cands[b].key) < 0 })
	step := total / float64(reducers)
	var bounds [][]byte
	var cum float64
	target := step
	for _, c := range cands {
		cum += c.weight
		if cum >= target {
			if len(bounds) == 0 || bytes.Compare(c.key, bounds[len(bounds)-1]) > 0 {
				bounds = append(bounds, c.key)
				if len(bounds) == reducers-1 {
					break
				}
			}
			target += step
		}
	}
	return bounds
}
