package drill

import (
	"fmt"
	"io"
	"text/tabwriter"
)

// Print writes the report as a table a person reads at a glance.
func (r *Report) Print(w io.Writer) {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "ROUND\tJOB\tKILLED\tAT\tNEW LEADER\tTAKEOVER\tRE-RUN (FAILOVER)\tRE-RUN (DATA LOST)\tJOB TIME\tFAULT-FREE\tANSWER")
	for _, x := range r.Rounds {
		answer := "exact"
		if !x.Exact {
			answer = "WRONG"
			if x.Error != "" {
				answer = "ERROR: " + x.Error
			}
		}
		leader, takeover := "-", "-"
		if x.NewLeader != "" {
			leader = x.NewLeader
			takeover = ms(x.TakeoverMs)
			if x.TakeoverMs <= 0 {
				takeover = "no launch needed"
			}
		}
		fmt.Fprintf(tw, "%d\t%s\t%s\t%s\t%s\t%s\t%d\t%d\t%s\t%s\t%s\n", x.N, x.Job, x.Target, x.At, leader, takeover,
			x.RerunFailover, x.RerunDataLoss, ms(x.JobMs), ms(x.BaselineMs), answer)
	}
	tw.Flush()
	fmt.Fprintf(w, "\n%d/%d answers and accumulators exact; tasks re-run because of a scheduler failover: %d", r.Exact, len(r.Rounds), r.RerunsFailover)
	if r.TakeoverSamples > 0 {
		fmt.Fprintf(w, "; takeover (kill to first launch by the new leader) median %s, max %s over %d leader kills",
			ms(r.TakeoverMedianMs), ms(r.TakeoverMaxMs), r.TakeoverSamples)
	}
	fmt.Fprintln(w)
	if r.Speculation {
		fmt.Fprintln(w, "(speculation on: a straggler and its copy may both succeed, so re-runs count those duplicates too)")
	}
	if r.OK() {
		fmt.Fprintln(w, "PASS")
	} else {
		fmt.Fprintln(w, "FAIL")
	}
}
