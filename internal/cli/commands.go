package cli

import (
	"bufio"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"math"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/baton-sched/baton/api"
	"github.com/baton-sched/baton/client"
	"github.com/baton-sched/baton/ops"
	"github.com/baton-sched/baton/plan"
)

func init() {
	register(&command{name: "status", summary: "the quorum at a glance: leader, term, peers, executors, jobs", run: runStatus})
	register(&command{name: "operator raft list-peers", summary: "the Raft peers with their state and last contact", run: runListPeers})
	register(&command{name: "operator raft add-peer", summary: "add a voting member", run: runAddPeer, flags: addPeerFlags})
	register(&command{name: "operator raft remove-peer", args: "ID", summary: "remove a member", run: runRemovePeer})
	register(&command{name: "operator raft transfer-leader", args: "[ID]", summary: "hand leadership to a member (any, without ID)", run: runTransfer})
	register(&command{name: "jobs", summary: "the jobs the quorum retains", run: runJobs})
	register(&command{name: "job status", args: "ID", summary: "a job and its stages (-watch: live progress until it ends)", run: runJobStatus, flags: jobStatusFlags})
	register(&command{name: "job cancel", args: "ID | -group G | -all", summary: "cancel a running job, every running job of a group, or every running job", run: runJobCancel, flags: jobCancelFlags})
	register(&command{name: "stage cancel", args: "ID", summary: "cancel every running job that needs a stage", run: runStageCancel})
	register(&command{name: "job release", args: "ID", summary: "drop an ended job's results", run: runJobRelease})
	register(&command{name: "job results", args: "ID", summary: "a succeeded job's results: key<TAB>value a line (waits for the job)", run: runJobResults})
	register(&command{name: "submit", summary: "submit a plan (JSON) and print the job id, or wait for its end", run: runSubmit, flags: submitFlags})
	register(&command{name: "executors", summary: "the executors the quorum knows", run: runExecutors})
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

func runStatus(ctx context.Context, c *common, fs *flag.FlagSet, args []string) error {
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
	if c.json() {
		return printJSON(c.env.Stdout, st)
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
		state := strings.ToLower(p.State)
		if !p.Reachable {
			state = "unreachable"
		}
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

func runListPeers(ctx context.Context, c *common, fs *flag.FlagSet, args []string) error {
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
	if c.json() {
		return printJSON(c.env.Stdout, &api.ListPeersResponse{Peers: peers})
	}
	return printPeers(c.env.Stdout, peers)
}

var addPeer api.AddPeerRequest

func addPeerFlags(fs *flag.FlagSet) {
	fs.StringVar(&addPeer.Id, "id", "", "the new member's id (required)")
	fs.StringVar(&addPeer.RaftAddr, "raft-addr", "", "the new member's Raft address (required)")
	fs.StringVar(&addPeer.ApiAddr, "api-addr", "", "the new member's API address")
	fs.StringVar(&addPeer.HttpAddr, "http-addr", "", "the new member's HTTP address")
}

func runAddPeer(ctx context.Context, c *common, fs *flag.FlagSet, args []string) error {
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

func runRemovePeer(ctx context.Context, c *common, fs *flag.FlagSet, args []string) error {
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

func runTransfer(ctx context.Context, c *common, fs *flag.FlagSet, args []string) error {
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

func runJobs(ctx context.Context, c *common, fs *flag.FlagSet, args []string) error {
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
	if c.json() {
		return printJSON(c.env.Stdout, &api.ListJobsResponse{Jobs: jobs})
	}
	tw := table(c.env.Stdout)
	fmt.Fprintln(tw, "ID\tNAME\tPOOL\tSTATE\tPROGRESS\tTASK FAILURES\tSUBMITTED\tDURATION\tMESSAGE")
	for _, j := range jobs {
		fmt.Fprintf(tw, "%d\t%s\t%s\t%s\t%s %d/%d\t%d\t%s\t%s\t%s\n", j.Id, dash(j.Name), dash(j.Pool), jobStateNames[j.State],
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

func runJobStatus(ctx context.Context, c *common, fs *flag.FlagSet, args []string) error {
	id, err := jobID(args)
	if err != nil {
		return err
	}
	if jobStatusOpts.watch {
		return watchJob(c, id)
	}
	cl, err := c.dial()
	if err != nil {
		return err
	}
	defer cl.Close()
	j, err := cl.Job(ctx, id, !c.stale)
	if err != nil {
		return err
	}
	if c.json() {
		return printJSON(c.env.Stdout, j)
	}
	printJob(c.env.Stdout, j)
	return nil
}

func printJob(w io.Writer, j *api.Job) {
	fmt.Fprintf(w, "Job        %d %s\n", j.Id, j.Name)
	fmt.Fprintf(w, "State      %s\n", jobStateNames[j.State])
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
		fmt.Fprintf(tw, "%d\t%s\t%s\t%s\t%d\t%d/%d\t%s\n", s.Id, s.Name, kind, s.State, s.Attempt, s.Available, s.Tasks, dash(strings.Join(parents, ",")))
	}
	tw.Flush()
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

func jobCancelFlags(fs *flag.FlagSet) {
	fs.StringVar(&jobCancelOpts.group, "group", "", "cancel every running job of this group (submit -group) instead of one job")
	fs.BoolVar(&jobCancelOpts.all, "all", false, "cancel every running job (Spark's cancelAllJobs)")
}

// printCancelled says which jobs a group's or a stage's cancellation
// ended.
func printCancelled(c *common, what string, ids []uint64) error {
	if c.json() {
		return printJSON(c.env.Stdout, map[string]any{"cancelled": append([]uint64{}, ids...)})
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

func runStageCancel(ctx context.Context, c *common, fs *flag.FlagSet, args []string) error {
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

func runJobCancel(ctx context.Context, c *common, fs *flag.FlagSet, args []string) error {
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
		return err
	}
	fmt.Fprintf(c.env.Stdout, "job %d cancelled\n", id)
	return nil
}

func runJobRelease(ctx context.Context, c *common, fs *flag.FlagSet, args []string) error {
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
		return err
	}
	fmt.Fprintf(c.env.Stdout, "job %d released\n", id)
	return nil
}

var submitOpts struct {
	file            string
	wait            bool
	keep            bool
	key             string
	maxTaskFailures int
	maxResultSize   int64
	pool            string
	group           string
	mapStage        bool
	adaptive        bool
	adaptiveTarget  byteSize
}

// byteSize is a flag of bytes with an optional unit: 64MiB, 512KiB, 1GB.
type byteSize int64

func (b *byteSize) String() string { return strconv.FormatInt(int64(*b), 10) }

func (b *byteSize) Set(v string) error {
	n, err := parseByteSize(v)
	if err != nil {
		return err
	}
	*b = byteSize(n)
	return nil
}

// parseByteSize reads a size: a number, then optionally B, KB, MB, GB,
// KiB, MiB or GiB (case-insensitive).
func parseByteSize(v string) (int64, error) {
	s := strings.ToLower(strings.TrimSpace(v))
	units := []struct {
		suffix string
		mult   int64
	}{{"kib", 1 << 10}, {"mib", 1 << 20}, {"gib", 1 << 30}, {"kb", 1e3}, {"mb", 1e6}, {"gb", 1e9}, {"k", 1 << 10}, {"m", 1 << 20}, {"g", 1 << 30}, {"b", 1}}
	mult := int64(1)
	for _, u := range units {
		if strings.HasSuffix(s, u.suffix) {
			s, mult = strings.TrimSpace(strings.TrimSuffix(s, u.suffix)), u.mult
			break
		}
	}
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil || n <= 0 || n > (1<<62)/mult {
		return 0, fmt.Errorf("%q is not a size in bytes (such as 64MiB)", v)
	}
	return n * mult, nil
}

func submitFlags(fs *flag.FlagSet) {
	fs.StringVar(&submitOpts.file, "f", "", "the plan, a JSON file (- for standard input) (required)")
	fs.BoolVar(&submitOpts.wait, "wait", false, "wait for the job to end, print its state and results, and release it")
	fs.BoolVar(&submitOpts.keep, "keep", false, "with -wait: do not release the job after printing its results")
	fs.StringVar(&submitOpts.key, "key", "", "idempotency key (default: a fresh one)")
	fs.IntVar(&submitOpts.maxTaskFailures, "max-task-failures", 0, "failures of one task that abort the job (default: the quorum's)")
	fs.Int64Var(&submitOpts.maxResultSize, "max-result-size", 0, "bytes of results the job may hold (default: the quorum's)")
	fs.StringVar(&submitOpts.group, "group", "", "the job group: job cancel -group cancels the group's running jobs")
	fs.StringVar(&submitOpts.pool, "pool", "", "the FAIR pool the job's tasks share slots in (default: the default pool)")
	fs.BoolVar(&submitOpts.mapStage, "map-stage", false, "run only the map stage of the shuffle the plan's output reads and print its statistics (Spark's submitMapStage); with -wait the job is kept, so later jobs reading the shuffle reuse its outputs until job release")
	fs.BoolVar(&submitOpts.adaptive, "adaptive", false, "coalesce small reducer partitions: each stage reading shuffles runs tasks of about -adaptive-target bytes of input, decided from its parents' map output statistics")
	submitOpts.adaptiveTarget = 64 << 20
	fs.Var(&submitOpts.adaptiveTarget, "adaptive-target", "with -adaptive: the bytes of shuffle input a coalesced task reads (64MiB, 1GiB, ...)")
}

// resultRecords reads a job's answer (its partitions' results merged as
// its action says).
func resultRecords(ctx context.Context, cl *client.Client, j *api.Job) ([]ops.Record, error) {
	return cl.Answer(ctx, j.Id)
}

// jsonRecords renders records as [key, value] pairs (key null for a
// value-only record).
func jsonRecords(recs []ops.Record) [][2]*string {
	out := make([][2]*string, 0, len(recs))
	for _, r := range recs {
		v := string(r.Value)
		var pair [2]*string
		pair[1] = &v
		if r.HasKey {
			k := string(r.Key)
			pair[0] = &k
		}
		out = append(out, pair)
	}
	return out
}

func printRecords(w io.Writer, recs []ops.Record) {
	bw := bufio.NewWriter(w)
	for _, r := range recs {
		bw.WriteString(ops.FormatRecord(r))
		bw.WriteByte('\n')
	}
	bw.Flush()
}

func runJobResults(ctx context.Context, c *common, fs *flag.FlagSet, args []string) error {
	id, err := jobID(args)
	if err != nil {
		return err
	}
	cl, err := c.dial()
	if err != nil {
		return err
	}
	defer cl.Close()
	wctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	j, err := cl.Wait(wctx, id, nil)
	if err != nil {
		return err
	}
	if j.State != api.JobState_JOB_STATE_SUCCEEDED {
		return fmt.Errorf("job %d %s: %s", id, jobStateNames[j.State], j.Message)
	}
	recs, err := resultRecords(wctx, cl, j)
	if err != nil {
		return err
	}
	if c.json() {
		return printJSON(c.env.Stdout, jsonRecords(recs))
	}
	printRecords(c.env.Stdout, recs)
	return nil
}

func runSubmit(ctx context.Context, c *common, fs *flag.FlagSet, args []string) error {
	if submitOpts.file == "" || len(args) > 0 {
		return usagef("submit needs -f plan.json and no arguments")
	}
	var data []byte
	var err error
	if submitOpts.file == "-" {
		data, err = io.ReadAll(os.Stdin)
	} else {
		data, err = os.ReadFile(submitOpts.file)
	}
	if err != nil {
		return err
	}
	p, err := plan.Parse(data)
	if err != nil {
		return err
	}
	cl, err := c.dial()
	if err != nil {
		return err
	}
	defer cl.Close()
	sopts := client.SubmitOptions{IdempotencyKey: submitOpts.key, MaxTaskFailures: submitOpts.maxTaskFailures, MaxResultSize: submitOpts.maxResultSize, Pool: submitOpts.pool, Group: submitOpts.group,
		MapStage: submitOpts.mapStage}
	if submitOpts.adaptive {
		sopts.AdaptiveTarget = int64(submitOpts.adaptiveTarget)
	}
	if submitOpts.mapStage && (p.Action.Op == "take" || p.Action.Op == "first") {
		return usagef("-map-stage runs a shuffle's map stage: it does not go with a %s action", p.Action.Op)
	}
	if submitOpts.wait && (p.Action.Op == "take" || p.Action.Op == "first") {
		// take(n) reads as few partitions as it can, in growing jobs.
		wctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
		defer stop()
		recs, err := cl.Run(wctx, p, sopts)
		if err != nil {
			return err
		}
		if c.json() {
			return printJSON(c.env.Stdout, map[string]any{"state": "succeeded", "results": jsonRecords(recs)})
		}
		printRecords(c.env.Stdout, recs)
		return nil
	}
	id, err := cl.Submit(ctx, p, sopts)
	if err != nil {
		return err
	}
	if !submitOpts.wait {
		if c.json() {
			return printJSON(c.env.Stdout, map[string]any{"job": id})
		}
		fmt.Fprintf(c.env.Stdout, "job %d submitted\n", id)
		return nil
	}
	// Waiting has no deadline of its own (a job may run for hours); an
	// interrupt stops it, and the job goes on.
	wctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	j, err := cl.Wait(wctx, id, nil)
	if err != nil {
		return err
	}
	var recs []ops.Record
	if j.State == api.JobState_JOB_STATE_SUCCEEDED && !j.MapStage {
		recs, err = resultRecords(wctx, cl, j)
		switch {
		case errors.Is(err, client.ErrUnmerged):
			// A reduce with a user function: show each partition's value.
			fmt.Fprintf(c.env.Stderr, "batonctl: %v\n", err)
		case err != nil:
			return err
		}
		if !submitOpts.keep {
			if err := cl.Release(wctx, id); err != nil {
				fmt.Fprintf(c.env.Stderr, "batonctl: releasing job %d: %v\n", id, err)
			}
		}
	}
	if c.json() {
		out := map[string]any{"job": id, "state": jobStateNames[j.State], "message": j.Message, "results": jsonRecords(recs),
			"accumulators": jsonAccumulators(j.Accumulators), "failed_accumulators": jsonAccumulators(j.FailedAccumulators)}
		if m := j.MapStatistics; m != nil {
			out["map_statistics"] = map[string]any{"shuffle": m.Shuffle, "maps": m.Maps, "maps_registered": m.MapsRegistered,
				"reducers": m.Reducers, "total_bytes": m.TotalBytes, "reducer_bytes": m.ReducerBytes}
		}
		if err := printJSON(c.env.Stdout, out); err != nil {
			return err
		}
	} else {
		printJob(c.env.Stderr, j)
		printRecords(c.env.Stdout, recs)
	}
	if j.State != api.JobState_JOB_STATE_SUCCEEDED {
		return fmt.Errorf("job %d %s", id, jobStateNames[j.State])
	}
	return nil
}

func runExecutors(ctx context.Context, c *common, fs *flag.FlagSet, args []string) error {
	if len(args) > 0 {
		return usagef("executors takes no arguments")
	}
	cl, err := c.dial()
	if err != nil {
		return err
	}
	defer cl.Close()
	execs, err := cl.Executors(ctx)
	if err != nil {
		return err
	}
	if c.json() {
		return printJSON(c.env.Stdout, &api.ListExecutorsResponse{Executors: execs})
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
		fmt.Fprintf(tw, "%s\t%s\t%d\t%s\t%d\t%s\t%s\t%s\t%s\t%s\n", e.Id, e.Addr, e.Cores, alive, e.RunningTasks, blocks, shuffles, beat, when(e.RegisteredUnixNano), lost)
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

// jsonAccumulators gives accumulators as plain JSON: values as numbers.
func jsonAccumulators(as []*api.Accumulator) []map[string]any {
	out := []map[string]any{}
	for _, a := range as {
		out = append(out, map[string]any{"name": a.Name, "kind": accKindName(a.Kind), "value": accValue(a), "tasks": a.Tasks})
	}
	return out
}
