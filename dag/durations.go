package dag

import "math/bits"

// Task durations for speculation. Spark's TaskSetManager keeps the
// durations of a task set's successful tasks (successfulTaskDurations, a
// MedianHeap) and copies a task running longer than a multiple of their
// median once enough of them succeeded. Baton keeps them in the state, so
// that a leader taking over speculates as the one before it would have:
// the durations come from the log (TaskEnded.DurationMs, measured by the
// executors), not from the leader's memory.
//
// A stage attempt keeps a histogram rather than every duration, so that
// a million-task stage costs the state a few hundred bytes: durations in
// milliseconds fall in buckets of 1/8 of an octave (at most 12.5% wide), and
// the median is the upper bound of the bucket that holds it, which
// overstates it by at most 12.5% (a larger threshold copies no task the
// exact median would not).

// Buckets: 0 to durExact milliseconds each have their own; above, each
// octave [2^k, 2^(k+1)) has durPerOctave buckets.
const (
	durExact     = 16
	durPerOctave = 8
	durBuckets   = durExact + 1 + 60*durPerOctave
)

// durBucket returns the bucket of a duration in milliseconds.
func durBucket(ms int64) int {
	if ms <= durExact {
		return int(max(ms, 0))
	}
	v := uint64(ms)
	oct := bits.Len64(v) - 1 // 2^oct <= v < 2^(oct+1), oct >= 4
	frac := (v >> (oct - 3)) & 7
	return durExact + 1 + (oct-4)*durPerOctave + int(frac)
}

// durUpper returns the largest duration in milliseconds bucket b holds.
func durUpper(b int) int64 {
	if b <= durExact {
		return int64(b)
	}
	k := b - durExact - 1
	oct, frac := k/durPerOctave+4, uint64(k%durPerOctave)
	lo := uint64(1) << oct
	return int64(lo + (frac+1)*(lo>>3) - 1)
}

// durations is a histogram of successful task durations, by bucket.
type durations struct {
	n      int
	counts map[int]int
}

func (h *durations) add(ms int64) {
	if ms < 0 {
		ms = 0
	}
	if h.counts == nil {
		h.counts = map[int]int{}
	}
	h.counts[durBucket(ms)]++
	h.n++
}

// median returns the upper bound of the bucket holding the median, in
// milliseconds, or 0 with no durations.
func (h *durations) median() int64 {
	if h.n == 0 {
		return 0
	}
	want := h.n/2 + 1 // the (n/2+1)-th smallest, as sorting and taking [n/2]
	seen := 0
	for b := 0; ; b++ {
		seen += h.counts[b]
		if seen >= want {
			return durUpper(b)
		}
	}
}

// TaskDurations returns, for a stage attempt, how many of its tasks
// succeeded with a measured duration and their median in milliseconds (see
// durations); zeros for an attempt that is not the stage's current one.
func (s *State) TaskDurations(id StageID, attempt int) (succeeded int, medianMs int64) {
	st := s.stages[id]
	if st == nil || st.attempt != attempt {
		return 0, 0
	}
	return st.durs.n, st.durs.median()
}

// encoder.durations appends a histogram: its buckets in ascending order.
func (e *encoder) durations(h *durations) {
	e.uint(uint64(len(h.counts)))
	for b, seen := 0, 0; seen < len(h.counts); b++ {
		if c, ok := h.counts[b]; ok {
			e.uint(uint64(b))
			e.uint(uint64(c))
			seen++
		}
	}
}

// decoder.durations reads what encoder.durations wrote.
func (d *decoder) durations(h *durations) {
	n := d.count()
	last := -1
	for ; n > 0 && d.err == nil; n-- {
		b, c := d.int32(), d.int32()
		if b <= last || b >= durBuckets || c == 0 {
			d.fail("duration bucket %d (count %d) after %d", b, c, last)
			return
		}
		last = b
		if h.counts == nil {
			h.counts = map[int]int{}
		}
		h.counts[b] = c
		h.n += c
	}
}
