package server

import (
	"fmt"
	"sync"
	"time"
)

// Leader churn: how often this node saw the leader change lately. A
// quorum whose leader changes every few minutes with no member stopped is
// telling its operator that a machine is too busy to answer Raft in time.
const (
	churnWindow = 5 * time.Minute
	// churnWarn is how many leader changes in churnWindow make a warning.
	churnWarn = 3
)

// churn records when this node saw a new leader (its own observations,
// not replicated: each member says what it saw).
type churn struct {
	mu    sync.Mutex
	times []time.Time // the latest, oldest first, at most 64
}

func (c *churn) saw(t time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.times = append(c.times, t)
	if len(c.times) > 64 {
		c.times = append(c.times[:0:0], c.times[len(c.times)-64:]...)
	}
}

// recent returns how many changes fell in the window ending at now, and
// the warning to show for them ("" when there are few).
func (c *churn) recent(now time.Time) (int, string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	n := 0
	for _, t := range c.times {
		if now.Sub(t) <= churnWindow {
			n++
		}
	}
	// The first leader this node saw (its start) is not a change.
	if len(c.times) > 0 && len(c.times) == n {
		n--
	}
	if n < churnWarn {
		return n, ""
	}
	return n, fmt.Sprintf("the leader changed %d times in the last %s; if no member was stopped, the likely cause is a busy machine "+
		"(Raft heartbeats answered late): check the load on the scheduler machines, keep executors off them, or raise schedd -raft-multiplier", n, churnWindow)
}
