package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/baton-sched/baton/api"
	"github.com/baton-sched/baton/client"
	pflag "github.com/spf13/pflag"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

func init() {
	register(&command{name: "status", summary: "the quorum at a glance: leader, term, peers, executors, jobs", run: runStatus,
		examples: "batonctl status\nbatonctl -addr 127.0.0.1:7102 status -o json"})
	register(&command{name: "operator raft list-peers", summary: "the Raft peers with their state and last contact", examples: "batonctl operator raft list-peers\nbatonctl operator raft list-peers -o json",
		run: runListPeers})
	register(&command{name: "operator raft add-peer", summary: "add a voting member", examples: "batonctl operator raft add-peer --id d --raft-addr 10.0.0.4:7001 --api-addr 10.0.0.4:7101 --http-addr 10.0.0.4:7201",
		run: runAddPeer, flags: addPeerFlags})
	register(&command{name: "operator raft remove-peer", args: "ID", summary: "remove a member", examples: "batonctl operator raft remove-peer c",
		run: runRemovePeer})
	register(&command{name: "operator raft transfer-leader", args: "[ID]", summary: "hand leadership to a member (any, without ID)", examples: "batonctl operator raft transfer-leader      # to any other member\nbatonctl operator raft transfer-leader b    # to member b",
		run: runTransfer})
	register(&command{name: "jobs", summary: "the jobs the quorum retains", run: runJobs, read: true,
		examples: "batonctl jobs\nbatonctl jobs -o name     # the ids, one a line\nbatonctl jobs -stale      # this member's replica, also without a leader"})
	register(&command{name: "job status", args: "ID", summary: "a job and its stages (-watch: live progress until it ends)", run: runJobStatus, flags: jobStatusFlags, read: true,
		examples: "batonctl job status 3\nbatonctl job status 3 -watch\nbatonctl job status 3 -o json"})
	register(&command{name: "job cancel", args: "ID | -group G | -all", summary: "cancel a running job, every running job of a group, or every running job", run: runJobCancel, flags: jobCancelFlags,
		examples: "batonctl job cancel 3\nbatonctl job cancel -group etl\nbatonctl job cancel -all"})
	register(&command{name: "stage cancel", args: "ID", summary: "cancel every running job that needs a stage", examples: "batonctl stage cancel 12",
		run: runStageCancel})
	register(&command{name: "job release", args: "ID", summary: "drop an ended job's results (releasing twice is no error)", examples: "batonctl job release 3",
		run: runJobRelease})
	register(&command{name: "job results", args: "ID", summary: "a succeeded job's results: key<TAB>value a line (waits for the job)", examples: "batonctl job results 3\nbatonctl job results 3 -o json",
		run: runJobResults})
	register(&command{name: "submit", summary: "submit a plan (JSON, see docs/plans.md) and print the job id; with -wait, wait for its end and print its results", run: runSubmit, flags: submitFlags,
		examples: "batonctl submit -f examples/plans/wordcount.json\nbatonctl submit -f examples/plans/wordcount.json -wait\nbatonctl submit -f plan.json -o name       # just the id, for scripts\nbatonctl submit -f plan.json -wait -timeout 10m"})
	register(&command{name: "executors", summary: "the executors the quorum knows (the leader's view: heartbeats and running tasks)", run: runExecutors, read: true,
		examples: "batonctl executors\nbatonctl executors -stale   # this member's replica, also without a leader"})
}

func table(w io.Writer) *tabwriter.Writer { return tabwriter.NewWriter(w, 0, 0, 2, ' ', 0) }

func ms(d int64) string {
	if d < 0 {
		return "-"
	}
	return (time.Duration(d) * time.Millisecond).String()
}

func yes(b bool) string {
	if b {
		return "yes"
	}
	return "no"
}

func runStatus(ctx context.Context, c *common, args []string) error {
	if len(args) > 0 {
		return usagef("status takes no arguments")
	}
	cl, err := c.dial()
	if err != nil {
		return err
	}
	defer cl.Close()
	st, err := cl.Status(ctx)
	if err != nil {
		return err
	}
	if c.json() || c.name() {
		return c.emit(statusJSON(st), nil, nil)
	}
	w := c.env.Stdout
	leader := st.LeaderId
	if leader == "" {
		leader = "none (election under way or quorum lost)"
	}
	fmt.Fprintf(w, "Leader     %s\n", leader)
	fmt.Fprintf(w, "Term       %d\n", st.Node.Term)
	fmt.Fprintf(w, "Commit     %d (applied %d on %s)\n", st.Node.CommitIndex, st.Node.AppliedIndex, st.Node.Id)
	fmt.Fprintf(w, "Executors  %d alive of %d\n", st.ExecutorsAlive, st.Executors)
	fmt.Fprintf(w, "Jobs       %d running of %d\n", st.JobsRunning, st.Jobs)
	if st.Warning != "" {
		fmt.Fprintf(w, "Warning    %s\n", st.Warning)
	}
	fmt.Fprintln(w)
	return printPeers(w, st.Peers)
}

func printPeers(w io.Writer, peers []*api.Peer) error {
	tw := table(w)
	fmt.Fprintln(tw, "PEER\tSTATE\tVOTER\tRAFT ADDRESS\tAPI ADDRESS\tTERM\tCOMMIT\tAPPLIED\tLAST CONTACT")
	for _, p := range peers {
		state := peerState(p)
		id := p.Id
		if p.Leader {
			id += " *"
		}
		term, commit, applied := "-", "-", "-"
		if p.Reachable {
			term, commit, applied = strconv.FormatUint(p.Term, 10), strconv.FormatUint(p.CommitIndex, 10), strconv.FormatUint(p.AppliedIndex, 10)
		}
		api := p.ApiAddr
		if api == "" {
			api = "-"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", id, state, yes(p.Voter), p.RaftAddr, api, term, commit, applied, ms(p.LastContactMs))
	}
	return tw.Flush()
}

func runListPeers(ctx context.Context, c *common, args []string) error {
	if len(args) > 0 {
		return usagef("list-peers takes no arguments")
	}
	cl, err := c.dial()
	if err != nil {
		return err
	}
	defer cl.Close()
	peers, err := cl.Peers(ctx)
	if err != nil {
		return err
	}
	names := []string{}
	for _, p := range peers {
		names = append(names, p.Id)
	}
	return c.emit(map[string]any{"peers": peersJSON(peers)}, names, func() error { return printPeers(c.env.Stdout, peers) })
}

var addPeer api.AddPeerRequest

func addPeerFlags(fs *pflag.FlagSet) {
	fs.StringVar(&addPeer.Id, "id", "", "the new member's id (required)")
	fs.StringVar(&addPeer.RaftAddr, "raft-addr", "", "the new member's Raft address (required)")
	fs.StringVar(&addPeer.ApiAddr, "api-addr", "", "the new member's API address")
	fs.StringVar(&addPeer.HttpAddr, "http-addr", "", "the new member's HTTP address")
}

func runAddPeer(ctx context.Context, c *common, args []string) error {
	if len(args) > 0 || addPeer.Id == "" || addPeer.RaftAddr == "" {
		return usagef("add-peer needs -id and -raft-addr and no arguments")
	}
	cl, err := c.dial()
	if err != nil {
		return err
	}
	defer cl.Close()
	if err := cl.AddPeer(ctx, &addPeer); err != nil {
		return err
	}
	fmt.Fprintf(c.env.Stdout, "added %s (%s)\n", addPeer.Id, addPeer.RaftAddr)
	return nil
}

func runRemovePeer(ctx context.Context, c *common, args []string) error {
	if len(args) != 1 {
		return usagef("remove-peer needs exactly one member id")
	}
	cl, err := c.dial()
	if err != nil {
		return err
	}
	defer cl.Close()
	if err := cl.RemovePeer(ctx, args[0]); err != nil {
		return err
	}
	fmt.Fprintf(c.env.Stdout, "removed %s\n", args[0])
	return nil
}

func runTransfer(ctx context.Context, c *common, args []string) error {
	if len(args) > 1 {
		return usagef("transfer-leader takes at most one member id")
	}
	id := ""
	if len(args) == 1 {
		id = args[0]
	}
	cl, err := c.dial()
	if err != nil {
		return err
	}
	defer cl.Close()
	leader, err := cl.TransferLeadership(ctx, id)
	if err != nil {
		return err
	}
	fmt.Fprintf(c.env.Stdout, "leader is now %s\n", leader)
	return nil
}

var jobStateNames = map[api.JobState]string{
	api.JobState_JOB_STATE_RUNNING:   "running",
	api.JobState_JOB_STATE_SUCCEEDED: "succeeded",
	api.JobState_JOB_STATE_FAILED:    "failed",
	api.JobState_JOB_STATE_CANCELLED: "cancelled",
}

func when(ns int64) string {
	if ns == 0 {
		return "-"
	}
	return time.Unix(0, ns).Local().Format("2006-01-02 15:04:05")
}

func duration(j *api.Job) string {
	if j.SubmittedUnixNano == 0 {
		return "-"
	}
	end := j.EndedUnixNano
	if end == 0 {
		end = time.Now().UnixNano()
	}
	return time.Duration(end - j.SubmittedUnixNano).Round(time.Millisecond).String()
}

func runJobs(ctx context.Context, c *common, args []string) error {
	if len(args) > 0 {
		return usagef("jobs takes no arguments")
	}
	cl, err := c.dial()
	if err != nil {
		return err
	}
	defer cl.Close()
	jobs, err := cl.Jobs(ctx, !c.stale)
	if err != nil {
		return err
	}
	out := []jobOut{}
	names := []string{}
	for _, j := range jobs {
		out = append(out, jobJSON(j))
		names = append(names, strconv.FormatUint(j.Id, 10))
	}
	if c.json() || c.name() {
		return c.emit(map[string]any{"jobs": out}, names, nil)
	}
	tw := table(c.env.Stdout)
	fmt.Fprintln(tw, "ID\tNAME\tPOOL\tSTATE\tPROGRESS\tTASK FAILURES\tSUBMITTED\tDURATION\tMESSAGE")
	for _, j := range jobs {
		fmt.Fprintf(tw, "%d\t%s\t%s\t%s\t%s %d/%d\t%d\t%s\t%s\t%s\n", j.Id, dash(j.Name), dash(j.Pool), jobStateName(j.State),
			progressBar(int(j.Finished), int(j.Tasks), 10), j.Finished, j.Tasks, j.TaskFailures, when(j.SubmittedUnixNano), duration(j), oneLine(j.Message))
	}
	return tw.Flush()
}

func dash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

func oneLine(s string) string {
	s = strings.ReplaceAll(s, "\n", " ")
	if len(s) > 100 {
		s = s[:97] + "..."
	}
	return s
}

func jobID(args []string) (uint64, error) {
	if len(args) != 1 {
		return 0, usagef("needs exactly one job id")
	}
	id, err := strconv.ParseUint(args[0], 10, 64)
	if err != nil {
		return 0, usagef("job id %q is not a number", args[0])
	}
	return id, nil
}

func runJobStatus(ctx context.Context, c *common, args []string) error {
	id, err := jobID(args)
	if err != nil {
		return err
	}
	if jobStatusOpts.watch {
		return watchJob(ctx, c, id)
	}
	cl, err := c.dial()
	if err != nil {
		return err
	}
	defer cl.Close()
	j, err := cl.Job(ctx, id, !c.stale)
	if err != nil {
		return jobNotFound(err, id)
	}
	return c.emit(jobJSON(j), []string{strconv.FormatUint(j.Id, 10)}, func() error {
		printJob(c.env.Stdout, j)
		return nil
	})
}

func printJob(w io.Writer, j *api.Job) {
	fmt.Fprintf(w, "Job        %d %s\n", j.Id, j.Name)
	fmt.Fprintf(w, "State      %s\n", jobStateName(j.State))
	fmt.Fprintf(w, "Tasks      %d/%d results\n", j.Finished, j.Tasks)
	fmt.Fprintf(w, "Submitted  %s (%s)\n", when(j.SubmittedUnixNano), duration(j))
	if j.Group != "" {
		fmt.Fprintf(w, "Group      %s\n", j.Group)
	}
	if j.Message != "" {
		fmt.Fprintf(w, "Message    %s\n", j.Message)
	}
	if j.AdaptiveTarget > 0 {
		fmt.Fprintf(w, "Adaptive   coalescing reducer partitions to about %s each\n", humanBytes(j.AdaptiveTarget))
	}
	if j.MapStage {
		fmt.Fprintf(w, "Map stage  %s\n", mapStatisticsLine(j.MapStatistics))
	}
	printAccumulators(w, j)
	if len(j.Stages) == 0 {
		return
	}
	fmt.Fprintln(w)
	tw := table(w)
	fmt.Fprintln(tw, "STAGE\tNAME\tKIND\tSTATE\tATTEMPT\tDONE\tPARENTS")
	for _, s := range j.Stages {
		kind := "result"
		if s.Map {
			kind = fmt.Sprintf("map (shuffle %d)", s.Shuffle)
		}
		if len(s.Coalesced) > 0 {
			kind += fmt.Sprintf(", %d partitions coalesced", s.Reducers)
		}
		var parents []string
		for _, p := range s.Parents {
			parents = append(parents, strconv.FormatUint(p, 10))
		}
		fmt.Fprintf(tw, "%d\t%s\t%s\t%s\t%s\t%d/%d\t%s\n", s.Id, s.Name, kind, stageStateName(s), attempt(s), s.Available, s.Tasks, dash(strings.Join(parents, ",")))
	}
	tw.Flush()
}

// attempt is a stage's attempt for tables: "-" before it first ran.
func attempt(s *api.Stage) string {
	if s.Attempt < 0 {
		return "-"
	}
	return strconv.Itoa(int(s.Attempt))
}

// mapStatisticsLine summarises a map-stage job's shuffle statistics.
func mapStatisticsLine(m *api.MapStageStatistics) string {
	if m == nil {
		return "its shuffle is released"
	}
	line := fmt.Sprintf("shuffle %d: %d/%d map outputs, %s for %d reducers", m.Shuffle, m.MapsRegistered, m.Maps, humanBytes(int64(m.TotalBytes)), m.Reducers)
	if len(m.ReducerBytes) > 0 {
		lo, hi := m.ReducerBytes[0], m.ReducerBytes[0]
		for _, b := range m.ReducerBytes {
			lo, hi = min(lo, b), max(hi, b)
		}
		line += fmt.Sprintf(" (%s to %s each)", humanBytes(int64(lo)), humanBytes(int64(hi)))
	}
	return line
}

var jobCancelOpts struct {
	group string
	all   bool
}

func jobCancelFlags(fs *pflag.FlagSet) {
	fs.StringVar(&jobCancelOpts.group, "group", "", "cancel every running job of this group (submit -group) instead of one job")
	fs.BoolVar(&jobCancelOpts.all, "all", false, "cancel every running job (Spark's cancelAllJobs)")
}

// printCancelled says which jobs a group's or a stage's cancellation
// ended.
func printCancelled(c *common, what string, ids []uint64) error {
	names := []string{}
	for _, id := range ids {
		names = append(names, strconv.FormatUint(id, 10))
	}
	if c.json() || c.name() {
		return c.emit(map[string]any{"cancelled": append([]uint64{}, ids...)}, names, nil)
	}
	if len(ids) == 0 {
		fmt.Fprintln(c.env.Stdout, strings.TrimSpace("no running job "+what))
		return nil
	}
	var s []string
	for _, id := range ids {
		s = append(s, strconv.FormatUint(id, 10))
	}
	fmt.Fprintf(c.env.Stdout, "%s: %s\n", strings.TrimSpace(fmt.Sprintf("cancelled %d jobs %s", len(ids), what)), strings.Join(s, ", "))
	return nil
}

func runStageCancel(ctx context.Context, c *common, args []string) error {
	if len(args) != 1 {
		return usagef("needs exactly one stage id")
	}
	stage, err := strconv.ParseUint(args[0], 10, 64)
	if err != nil {
		return usagef("stage id %q is not a number", args[0])
	}
	cl, err := c.dial()
	if err != nil {
		return err
	}
	defer cl.Close()
	ids, err := cl.CancelStage(ctx, stage, "cancelled with batonctl")
	if err != nil {
		return err
	}
	return printCancelled(c, fmt.Sprintf("needed stage %d", stage), ids)
}

func runJobCancel(ctx context.Context, c *common, args []string) error {
	if jobCancelOpts.all {
		if len(args) > 0 || jobCancelOpts.group != "" {
			return usagef("job cancel -all takes no job id and no -group")
		}
		cl, err := c.dial()
		if err != nil {
			return err
		}
		defer cl.Close()
		ids, err := cl.CancelAllJobs(ctx, "cancelled with batonctl")
		if err != nil {
			return err
		}
		return printCancelled(c, "", ids)
	}
	if g := jobCancelOpts.group; g != "" {
		if len(args) > 0 {
			return usagef("job cancel takes a job id or -group, not both")
		}
		cl, err := c.dial()
		if err != nil {
			return err
		}
		defer cl.Close()
		ids, err := cl.CancelJobGroup(ctx, g, "cancelled with batonctl")
		if err != nil {
			return err
		}
		return printCancelled(c, fmt.Sprintf("in group %q", g), ids)
	}
	id, err := jobID(args)
	if err != nil {
		return err
	}
	cl, err := c.dial()
	if err != nil {
		return err
	}
	defer cl.Close()
	if err := cl.Cancel(ctx, id, "cancelled with batonctl"); err != nil {
		if status.Code(err) != codes.FailedPrecondition {
			return jobNotFound(err, id)
		}
		// It has ended already: cancelling it again is no error.
		j, jerr := cl.Job(ctx, id, true)
		if jerr != nil {
			return jobNotFound(jerr, id)
		}
		state := jobStateName(j.State)
		return c.emit(map[string]any{"id": id, "state": state, "cancelled": false}, []string{strconv.FormatUint(id, 10)}, func() error {
			_, err := fmt.Fprintf(c.env.Stdout, "job %d has already ended (%s): nothing to cancel\n", id, state)
			return err
		})
	}
	return c.emit(map[string]any{"id": id, "state": "cancelled", "cancelled": true}, []string{strconv.FormatUint(id, 10)}, func() error {
		_, err := fmt.Fprintf(c.env.Stdout, "job %d cancelled\n", id)
		return err
	})
}

// jobNotFound says "job N not found" for an error that says the job is
// not there, as every job command does.
func jobNotFound(err error, id uint64) error {
	if status.Code(err) == codes.NotFound {
		return saidf("job %d not found", id)
	}
	return err
}

// endedError says how a job that did not succeed ended: "job 3
// cancelled: cancelled with batonctl" (its message is not repeated when
// it names the job itself, as Spark's do).
func endedError(j *api.Job) error {
	head := fmt.Sprintf("job %d %s", j.Id, jobStateName(j.State))
	msg := strings.TrimSpace(j.Message)
	switch {
	case msg == "":
		return saidError{head}
	case strings.HasPrefix(strings.ToLower(msg), head):
		return saidError{head + msg[len(head):]}
	}
	return saidError{head + ": " + msg}
}

// stillRunning explains a wait for job id that ended before the job did:
// the job goes on, and how to cancel or follow it.
func (c *common) stillRunning(ctx context.Context, id uint64, err error) error {
	hint := fmt.Sprintf("job %d is still running (batonctl job cancel %d cancels it; batonctl job status %d -watch follows it)", id, id, id)
	switch cause := context.Cause(ctx); {
	case errors.Is(cause, errInterrupted):
		return saidf("interrupted: %s", hint)
	case errors.Is(cause, errTimeout):
		return saidf("gave up waiting after -timeout %s: %s", c.timeout, hint)
	}
	return saidf("waiting for job %d: %s; the job may still be running (batonctl job status %d)", id, c.plain(ctx, err), id)
}

func runJobRelease(ctx context.Context, c *common, args []string) error {
	id, err := jobID(args)
	if err != nil {
		return err
	}
	cl, err := c.dial()
	if err != nil {
		return err
	}
	defer cl.Close()
	if err := cl.Release(ctx, id); err != nil {
		return jobNotFound(err, id)
	}
	return c.emit(map[string]any{"id": id, "released": true}, []string{strconv.FormatUint(id, 10)}, func() error {
		_, err := fmt.Fprintf(c.env.Stdout, "job %d released\n", id)
		return err
	})
}

func runExecutors(ctx context.Context, c *common, args []string) error {
	if len(args) > 0 {
		return usagef("executors takes no arguments")
	}
	cl, err := c.dial()
	if err != nil {
		return err
	}
	defer cl.Close()
	resp, err := c.executors(ctx, cl)
	if err != nil {
		return err
	}
	execs, replica := resp.Executors, resp.Replica != ""
	out := executorsOut{Executors: []executorOut{}, Replica: resp.Replica}
	names := []string{}
	for _, e := range execs {
		out.Executors = append(out.Executors, executorJSON(e, replica))
		names = append(names, e.Id)
	}
	if replica {
		fmt.Fprintf(c.env.Stderr, "batonctl executors: no leader answered; this is member %s's replica: liveness as last logged, no heartbeats, running tasks or health\n", resp.Replica)
	}
	if c.json() || c.name() {
		return c.emit(out, names, nil)
	}
	tw := table(c.env.Stdout)
	fmt.Fprintln(tw, "ID\tADDRESS\tSLOTS\tALIVE\tRUNNING\tBLOCKS\tSHUFFLES\tHEARTBEAT\tREGISTERED\tLOST")
	for _, e := range execs {
		lost := "-"
		if !e.Alive {
			lost = fmt.Sprintf("%s (%s)", when(e.LostUnixNano), e.LostReason)
		}
		blocks, shuffles, beat := "-", "-", "-"
		if e.BlockBytes >= 0 {
			blocks = humanBytes(e.BlockBytes)
		}
		if e.Shuffles >= 0 {
			shuffles = strconv.Itoa(int(e.Shuffles))
		}
		if e.LastHeartbeatUnixNano > 0 {
			beat = time.Since(time.Unix(0, e.LastHeartbeatUnixNano)).Round(time.Millisecond).String() + " ago"
		}
		alive := yes(e.Alive)
		if e.Alive && e.Unhealthy != "" {
			alive = "unhealthy"
		}
		running := strconv.Itoa(int(e.RunningTasks))
		if replica {
			running = "-"
			if e.Alive {
				alive = "yes (as logged)"
			}
		}
		fmt.Fprintf(tw, "%s\t%s\t%d\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", e.Id, e.Addr, e.Cores, alive, running, blocks, shuffles, beat, when(e.RegisteredUnixNano), lost)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	for _, e := range execs {
		if e.Alive && e.Unhealthy != "" {
			fmt.Fprintf(c.env.Stdout, "executor %s is unhealthy and gets no tasks: %s\n", e.Id, e.Unhealthy)
		}
	}
	return nil
}

// executors lists the executors as the leader knows them. Without a
// leader a member answers from its replica: that is an answer with -stale
// only; otherwise, once an election has had its time, "no leader".
func (c *common) executors(ctx context.Context, cl *client.Client) (*api.ListExecutorsResponse, error) {
	deadline := time.Now().Add(noLeaderFor)
	for {
		resp, err := cl.ListExecutors(ctx)
		if err != nil || resp.Replica == "" || c.stale {
			return resp, err
		}
		if time.Now().After(deadline) {
			if err := cl.NoLeader(ctx); err != nil {
				return nil, err
			}
			return nil, saidf("the leader did not answer; member %s has only its replica (use -stale to read it)", resp.Replica)
		}
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(200 * time.Millisecond):
		}
	}
}

var accKindNames = map[api.AccumulatorKind]string{
	api.AccumulatorKind_ACCUMULATOR_KIND_SUM: "sum", api.AccumulatorKind_ACCUMULATOR_KIND_COUNT: "count",
	api.AccumulatorKind_ACCUMULATOR_KIND_MIN: "min", api.AccumulatorKind_ACCUMULATOR_KIND_MAX: "max",
	api.AccumulatorKind_ACCUMULATOR_KIND_SUM_FLOAT: "sumFloat", api.AccumulatorKind_ACCUMULATOR_KIND_MIN_FLOAT: "minFloat",
	api.AccumulatorKind_ACCUMULATOR_KIND_MAX_FLOAT: "maxFloat",
}

func accKindName(k api.AccumulatorKind) string {
	if n, ok := accKindNames[k]; ok {
		return n
	}
	return fmt.Sprintf("kind %d", k)
}

func accFloat(k api.AccumulatorKind) bool {
	return k >= api.AccumulatorKind_ACCUMULATOR_KIND_SUM_FLOAT && k <= api.AccumulatorKind_ACCUMULATOR_KIND_MAX_FLOAT
}

func accValue(a *api.Accumulator) any {
	if accFloat(a.Kind) {
		if math.IsInf(a.FloatValue, 0) || math.IsNaN(a.FloatValue) {
			// A total can overflow where no update did; JSON has no
			// number for it.
			return fmt.Sprint(a.FloatValue)
		}
		return a.FloatValue
	}
	return a.IntValue
}

// printAccumulators writes a job's accumulators: what its partitions'
// successes counted (each partition once), then what failed attempts
// counted, apart.
func printAccumulators(w io.Writer, j *api.Job) {
	if len(j.Accumulators)+len(j.FailedAccumulators) == 0 {
		return
	}
	fmt.Fprintln(w)
	tw := table(w)
	fmt.Fprintln(tw, "ACCUMULATOR\tKIND\tVALUE\tFROM")
	for _, a := range j.Accumulators {
		fmt.Fprintf(tw, "%s\t%s\t%v\t%d partitions\n", a.Name, accKindName(a.Kind), accValue(a), a.Tasks)
	}
	for _, a := range j.FailedAccumulators {
		fmt.Fprintf(tw, "%s\t%s\t%v\t%d failed attempts\n", a.Name, accKindName(a.Kind), accValue(a), a.Tasks)
	}
	tw.Flush()
	if j.DroppedAccumulatorUpdates > 0 {
		fmt.Fprintf(w, "(%d updates of accumulators past the 256 a job keeps were dropped)\n", j.DroppedAccumulatorUpdates)
	}
}
