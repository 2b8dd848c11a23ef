package dag

import (
	"slices"
	"testing"
)

// TestBitsetEachFrom checks eachFrom against a plain walk of the members
// from every start, across word boundaries, and its early stop.
func TestBitsetEachFrom(t *testing.T) {
	b := newBitset(200)
	members := []int{0, 1, 63, 64, 65, 127, 128, 150, 199}
	for _, m := range members {
		b.set(m)
	}
	for from := -1; from <= 201; from++ {
		var got, want []int
		b.eachFrom(from, func(i int) bool { got = append(got, i); return true })
		for _, m := range members {
			if m >= from {
				want = append(want, m)
			}
		}
		if !slices.Equal(got, want) {
			t.Fatalf("eachFrom(%d) = %v, want %v", from, got, want)
		}
	}
	var got []int
	if b.eachFrom(64, func(i int) bool { got = append(got, i); return len(got) < 2 }) || !slices.Equal(got, []int{64, 65}) {
		t.Fatalf("eachFrom stopped early gave %v, want [64 65] and false", got)
	}
}
