package dag

import (
	"slices"
	"testing"
)

func TestCoalescePartitions(t *testing.T) {
	for _, c := range []struct {
		bytes  []uint64
		target uint64
		want   []int
	}{
		{nil, 10, nil},
		{[]uint64{5}, 10, []int{0}},
		{[]uint64{5, 5, 5, 5}, 10, []int{0, 2}},
		{[]uint64{20, 1, 1, 20}, 10, []int{0, 1, 3}},     // over the target stays alone
		{[]uint64{0, 0, 0, 0}, 10, []int{0}},             // empty partitions all merge
		{[]uint64{7, 2, 1}, 8, []int{0, 1}},              // the trailing group 2+1 is not under 8/5
		{[]uint64{8, 1}, 8, []int{0}},                    // 1 is under 8/5 and 8+1 <= 1.2*8: merged
		{[]uint64{8, 1}, 7, []int{0, 1}},                 // 8+1 > 1.2*7: kept apart
		{[]uint64{3, 3, 3, 3, 3, 3, 3, 3, 3, 3}, 1, nil}, // filled below
	} {
		want := c.want
		if want == nil && len(c.bytes) == 10 {
			want = []int{0, 1, 2, 3, 4, 5, 6, 7, 8, 9}
		}
		if got := CoalescePartitions(c.bytes, c.target); !slices.Equal(got, want) {
			t.Errorf("CoalescePartitions(%v, %d) = %v, want %v", c.bytes, c.target, got, want)
		}
	}
}
