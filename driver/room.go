package driver

import "container/heap"

// mostFreeHeap orders the executors with room for a stage's tasks by free
// slots (most first, ties by id), so that a round places each task in
// O(log executors) rather than scanning every executor: at 1,000
// executors the scan was most of a round's time.
type mostFreeHeap struct {
	items []*freeItem
	at    map[string]*freeItem
}

type freeItem struct {
	id  string
	n   int
	idx int
}

func (h *mostFreeHeap) Len() int { return len(h.items) }

func (h *mostFreeHeap) Less(a, b int) bool {
	x, y := h.items[a], h.items[b]
	if x.n != y.n {
		return x.n > y.n
	}
	return x.id < y.id
}

func (h *mostFreeHeap) Swap(a, b int) {
	h.items[a], h.items[b] = h.items[b], h.items[a]
	h.items[a].idx, h.items[b].idx = a, b
}

func (h *mostFreeHeap) Push(x any) {
	it := x.(*freeItem)
	it.idx = len(h.items)
	h.items = append(h.items, it)
}

func (h *mostFreeHeap) Pop() any {
	it := h.items[len(h.items)-1]
	h.items = h.items[:len(h.items)-1]
	return it
}

// reset fills the heap from free (executor → free slots).
func (h *mostFreeHeap) reset(free map[string]int) {
	h.items = h.items[:0]
	if h.at == nil {
		h.at = map[string]*freeItem{}
	}
	clear(h.at)
	for id, n := range free {
		it := &freeItem{id: id, n: n, idx: len(h.items)}
		h.items = append(h.items, it)
		h.at[id] = it
	}
	heap.Init(h)
}

// best returns the executor with the most free slots ("" if none).
func (h *mostFreeHeap) best() string {
	if len(h.items) == 0 {
		return ""
	}
	return h.items[0].id
}

// take records one slot of id taken.
func (h *mostFreeHeap) take(id string) {
	it := h.at[id]
	if it == nil {
		return
	}
	if it.n--; it.n <= 0 {
		heap.Remove(h, it.idx)
		delete(h.at, id)
		return
	}
	heap.Fix(h, it.idx)
}
