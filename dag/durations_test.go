package dag

import (
	"slices"
	"testing"
)

// TestDurationBucketsCoverEveryDuration: every duration falls in a bucket
// whose upper bound is at least the duration and at most 12.5% above it,
// and buckets grow with the duration.
func TestDurationBucketsCoverEveryDuration(t *testing.T) {
	prev := -1
	for _, ms := range []int64{0, 1, 2, 15, 16, 17, 18, 19, 31, 32, 33, 35, 36, 100, 999, 1000, 1 << 20, 1<<40 + 12345, 1 << 62} {
		b := durBucket(ms)
		if b < prev || b >= durBuckets {
			t.Fatalf("%d ms: bucket %d after %d (of %d)", ms, b, prev, durBuckets)
		}
		prev = b
		up := durUpper(b)
		if up < ms || float64(up) > float64(ms)*1.125+0.5 {
			t.Fatalf("%d ms: bucket %d's upper bound is %d", ms, b, up)
		}
		if b > 0 && durUpper(b-1) >= ms {
			t.Fatalf("%d ms: the bucket below (%d) already reaches %d", ms, b-1, durUpper(b-1))
		}
	}
}

// TestDurationMedianIsTheSortedMiddle: the histogram's median is the
// bucket bound of what sorting the durations and taking [n/2] gives.
func TestDurationMedianIsTheSortedMiddle(t *testing.T) {
	for _, ds := range [][]int64{{300}, {300, 310, 20000}, {5, 7, 1000, 1001, 1002, 1003, 90000, 90000}, {0, 0, 1}} {
		var h durations
		for _, d := range ds {
			h.add(d)
		}
		s := slices.Clone(ds)
		slices.Sort(s)
		if got, want := h.median(), durUpper(durBucket(s[len(s)/2])); got != want {
			t.Fatalf("%v: median %d, want %d", ds, got, want)
		}
	}
}
