package server

import (
	"strings"
	"testing"
	"time"
)

func TestChurnWarnsAfterAFewLeaderChanges(t *testing.T) {
	var c churn
	now := time.Unix(1000, 0)
	c.saw(now.Add(-time.Hour)) // the node's first leader, long ago
	if n, w := c.recent(now); n != 0 || w != "" {
		t.Fatalf("one old election: %d %q", n, w)
	}
	for i := 0; i < churnWarn; i++ {
		c.saw(now.Add(-time.Duration(i) * time.Minute))
	}
	n, w := c.recent(now)
	if n != churnWarn || !strings.Contains(w, "busy machine") || !strings.Contains(w, "-raft-multiplier") {
		t.Fatalf("%d changes in 5 minutes: %d %q", churnWarn, n, w)
	}
	// Ten minutes later they are history.
	if n, w := c.recent(now.Add(10 * time.Minute)); n != 0 || w != "" {
		t.Fatalf("later: %d %q", n, w)
	}
	// A node that just started saw one leader: not a change.
	var fresh churn
	fresh.saw(now)
	if n, _ := fresh.recent(now); n != 0 {
		t.Fatalf("a fresh node counts %d changes", n)
	}
}
