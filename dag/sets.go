package dag

import (
	"math/bits"
	"sort"
)

// idSet is a small sorted set of ids. Scheduler sets (waiting, running,
// failed stages; a stage's jobs) hold a handful of members, where a sorted
// slice beats a map and iterates in a deterministic order.
type idSet []uint64

func (s idSet) has(id uint64) bool {
	i := sort.Search(len(s), func(i int) bool { return s[i] >= id })
	return i < len(s) && s[i] == id
}

func (s *idSet) add(id uint64) bool {
	i := sort.Search(len(*s), func(i int) bool { return (*s)[i] >= id })
	if i < len(*s) && (*s)[i] == id {
		return false
	}
	*s = append(*s, 0)
	copy((*s)[i+1:], (*s)[i:])
	(*s)[i] = id
	return true
}

func (s *idSet) remove(id uint64) bool {
	i := sort.Search(len(*s), func(i int) bool { return (*s)[i] >= id })
	if i < len(*s) && (*s)[i] == id {
		*s = append((*s)[:i], (*s)[i+1:]...)
		if len(*s) == 0 {
			*s = nil // one representation of the empty set
		}
		return true
	}
	return false
}

func (s idSet) clone() idSet { return append(idSet(nil), s...) }

// bitset is a fixed-size set of task indices.
type bitset []uint64

func newBitset(n int) bitset { return make(bitset, (n+63)/64) }

func (b bitset) has(i int) bool { return b[i>>6]&(1<<(uint(i)&63)) != 0 }
func (b bitset) set(i int)      { b[i>>6] |= 1 << (uint(i) & 63) }
func (b bitset) clear(i int)    { b[i>>6] &^= 1 << (uint(i) & 63) }

// each calls fn for each member in ascending order until fn returns false.
func (b bitset) each(fn func(i int) bool) { b.eachFrom(0, fn) }

// eachFrom is each over the members from from on; it returns false if fn
// did.
func (b bitset) eachFrom(from int, fn func(i int) bool) bool {
	if from < 0 {
		from = 0
	}
	for w := from >> 6; w < len(b); w++ {
		word := b[w]
		if w == from>>6 {
			word &^= 1<<(uint(from)&63) - 1
		}
		for word != 0 {
			bit := bits.TrailingZeros64(word)
			if !fn(w*64 + bit) {
				return false
			}
			word &= word - 1
		}
	}
	return true
}
