package client

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/baton-sched/baton/api"
	"github.com/baton-sched/baton/internal/grpcdial"
	"github.com/baton-sched/baton/ops"
	"github.com/baton-sched/baton/plan"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
)

// Options configure a Client.
type Options struct {
	// CallTimeout bounds one attempt of a call on one member. Default 10s.
	CallTimeout time.Duration
	// SubmitTimeout bounds one attempt of a submission, which runs a
	// sortByKey's sampling jobs before it answers. Default 5m.
	SubmitTimeout time.Duration
	// RetryFor is how long a call keeps trying members while they are
	// unavailable (no leader, member down). Default 30s.
	RetryFor time.Duration
	// DownFor and NoLeaderFor end that sooner: a call gives up with an
	// *UnavailableError once no member has answered for DownFor (every
	// one refused, unresolvable, silent or not a Baton API), or members
	// answer but none knows a leader for NoLeaderFor. Default RetryFor
	// each.
	DownFor, NoLeaderFor time.Duration
	// Registry holds the functions the client merges reduce answers
	// with (a reduce's partitions each give a value, combined here).
	// Default: the built-ins; a user with their own aggregators passes
	// the registry their executors use.
	Registry *ops.Registry
	// TLS, when set, dials the members over TLS (with a client
	// certificate for mutual TLS): tlsconf.Load(files).Client("server").
	TLS *tls.Config
	// Token is the ACL token every call carries (BATON_TOKEN for
	// batonctl); empty for none.
	Token string
}

// dialOptions are the options every connection to a member takes.
func (o *Options) dialOptions() []grpc.DialOption {
	creds := insecure.NewCredentials()
	if o.TLS != nil {
		creds = credentials.NewTLS(o.TLS)
	}
	opts := []grpc.DialOption{grpc.WithTransportCredentials(creds), grpcdial.ConnectParams(),
		grpc.WithDefaultCallOptions(grpc.MaxCallRecvMsgSize(64 << 20)), grpc.WithStatsHandler(answerStats{})}
	if o.Token != "" {
		opts = append(opts, grpc.WithPerRPCCredentials(tokenCreds(o.Token)))
	}
	return opts
}

// tokenCreds sends an ACL token with every call.
type tokenCreds string

func (t tokenCreds) GetRequestMetadata(context.Context, ...string) (map[string]string, error) {
	return map[string]string{"authorization": "Bearer " + string(t)}, nil
}

func (tokenCreds) RequireTransportSecurity() bool { return false }

// Client talks to a Baton quorum. It is safe for concurrent use.
type Client struct {
	opts  Options
	addrs []string
	conns []*grpc.ClientConn

	mu  sync.Mutex
	cur int // the member that answered last
	// index is the highest log index of this client's writes: reads ask
	// members to have applied it, so the client reads its own writes on
	// any member.
	index uint64
	// datasetSeq names the datasets Dataset builds.
	datasetSeq atomic.Uint64
	// persisted maps the names of persisted datasets of this client's
	// submissions to their keys (Dataset.Unpersist); guarded by mu.
	persisted map[string]string
}

// leaderHeader is the response header in which members name the leader's
// API address.
const leaderHeader = "baton-leader-api"

// followLeader reads the leader's address from each response and, when
// it is one of the client's members, sends the next calls there (writes
// then need no forwarding, and reads see commits first).
func (c *Client) followLeader(ctx context.Context, method string, req, reply any, cc *grpc.ClientConn, invoker grpc.UnaryInvoker, opts ...grpc.CallOption) error {
	var md metadata.MD
	err := invoker(ctx, method, req, reply, cc, append(opts, grpc.Header(&md))...)
	if addrs := md.Get(leaderHeader); len(addrs) > 0 {
		for i, a := range c.addrs {
			if a == addrs[0] {
				c.mu.Lock()
				c.cur = i
				c.mu.Unlock()
				break
			}
		}
	}
	return err
}

func (c *Client) seen(index uint64) {
	c.mu.Lock()
	c.index = max(c.index, index)
	c.mu.Unlock()
}

func (c *Client) minIndex() uint64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.index
}

// Dial returns a client for the members at addrs (host:port of their gRPC
// APIs). It does not contact them until the first call.
func Dial(addrs []string, opts Options) (*Client, error) {
	var clean []string
	for _, a := range addrs {
		for _, x := range strings.Split(a, ",") {
			if x = strings.TrimSpace(x); x != "" {
				clean = append(clean, x)
			}
		}
	}
	if len(clean) == 0 {
		return nil, errors.New("client: no addresses")
	}
	if opts.CallTimeout <= 0 {
		opts.CallTimeout = 10 * time.Second
	}
	if opts.RetryFor <= 0 {
		opts.RetryFor = 30 * time.Second
	}
	if opts.DownFor <= 0 {
		opts.DownFor = opts.RetryFor
	}
	if opts.NoLeaderFor <= 0 {
		opts.NoLeaderFor = opts.RetryFor
	}
	if opts.SubmitTimeout <= 0 {
		opts.SubmitTimeout = 5 * time.Minute
	}
	if opts.Registry == nil {
		opts.Registry = ops.NewRegistry()
	}
	c := &Client{opts: opts, addrs: clean}
	for _, a := range clean {
		cc, err := grpc.NewClient(a, append(opts.dialOptions(), grpc.WithUnaryInterceptor(c.followLeader))...)
		if err != nil {
			c.Close()
			return nil, fmt.Errorf("client: %s: %w", a, err)
		}
		c.conns = append(c.conns, cc)
	}
	return c, nil
}

// Close closes the connections.
func (c *Client) Close() error {
	for _, cc := range c.conns {
		cc.Close()
	}
	return nil
}

// retryable reports whether another member (or the same one later) may
// succeed where this attempt failed. Aborted (leadership lost while a
// write was in flight: it may have been applied) is retried only by calls
// that are safe to repeat.
func retryable(err error, idempotent bool) bool {
	switch status.Code(err) {
	case codes.Unavailable:
		return true
	case codes.DeadlineExceeded, codes.Aborted:
		return idempotent
	}
	return false
}

// call runs fn against members, starting with the last one that answered,
// until it succeeds, fails for good, or RetryFor passes. Reads and
// submissions (which carry an idempotency key) are idempotent; other
// writes are not retried when their outcome is unknown.
func (c *Client) call(ctx context.Context, fn func(ctx context.Context, cc *grpc.ClientConn) error) error {
	return c.callx(ctx, true, c.opts.CallTimeout, fn)
}

func (c *Client) write(ctx context.Context, fn func(ctx context.Context, cc *grpc.ClientConn) error) error {
	return c.callx(ctx, false, c.opts.CallTimeout, fn)
}

func (c *Client) callx(ctx context.Context, idempotent bool, timeout time.Duration, fn func(ctx context.Context, cc *grpc.ClientConn) error) error {
	deadline := time.Now().Add(c.opts.RetryFor)
	backoff := 20 * time.Millisecond
	var last error
	tr := c.newTracker()
	for attempt := 0; ; attempt++ {
		c.mu.Lock()
		i := c.cur
		c.mu.Unlock()
		actx, cancel := context.WithTimeout(ctx, timeout)
		actx, answered := withAnswerFlag(actx)
		err := fn(actx, c.conns[i])
		cancel()
		if err == nil {
			return nil
		}
		if ctx.Err() != nil {
			return gaveUp(ctx.Err(), err)
		}
		if !answered.Load() && status.Code(err) != codes.Unavailable && status.Code(err) != codes.DeadlineExceeded {
			// Something that is not a Baton API answered (an HTTP
			// server speaking HTTP/2): no member will do better.
			return &UnavailableError{Addrs: []string{c.addrs[i]}, Reasons: []string{plainReason(err)}, Last: err}
		}
		if !retryable(err, idempotent) {
			return err
		}
		last = err
		if ferr := tr.failed(ctx, i, err, answered.Load()); ferr != nil {
			return ferr
		}
		c.mu.Lock()
		if c.cur == i {
			c.cur = (i + 1) % len(c.conns)
		}
		c.mu.Unlock()
		if time.Now().After(deadline) {
			return fmt.Errorf("client: no member answered within %s: %w", c.opts.RetryFor, last)
		}
		// Go round every member once quickly, then back off.
		if (attempt+1)%len(c.conns) == 0 {
			select {
			case <-ctx.Done():
				return gaveUp(ctx.Err(), last)
			case <-time.After(backoff):
			}
			backoff = min(2*backoff, time.Second)
		}
	}
}

// gaveUp explains a call abandoned because its context ended, with the
// last error a member gave.
func gaveUp(ctxErr, last error) error {
	if last == nil || errors.Is(last, ctxErr) || status.Code(last) == codes.DeadlineExceeded && ctxErr == context.DeadlineExceeded && status.Convert(last).Message() == ctxErr.Error() {
		return ctxErr
	}
	return fmt.Errorf("client: %w (last error from a member: %s)", ctxErr, plainReason(last))
}

// Status returns the cluster as the answering member sees it.
func (c *Client) Status(ctx context.Context) (*api.StatusResponse, error) {
	var resp *api.StatusResponse
	err := c.call(ctx, func(ctx context.Context, cc *grpc.ClientConn) (err error) {
		resp, err = api.NewOperatorClient(cc).Status(ctx, &api.StatusRequest{})
		return err
	})
	return resp, err
}

// Peers returns the Raft configuration.
func (c *Client) Peers(ctx context.Context) ([]*api.Peer, error) {
	var resp *api.ListPeersResponse
	err := c.call(ctx, func(ctx context.Context, cc *grpc.ClientConn) (err error) {
		resp, err = api.NewOperatorClient(cc).ListPeers(ctx, &api.ListPeersRequest{})
		return err
	})
	if err != nil {
		return nil, err
	}
	return resp.Peers, nil
}

// LeaderHistory returns the latest leader takeovers, oldest first.
func (c *Client) LeaderHistory(ctx context.Context) ([]*api.Takeover, error) {
	var resp *api.LeaderHistoryResponse
	err := c.call(ctx, func(ctx context.Context, cc *grpc.ClientConn) (err error) {
		resp, err = api.NewOperatorClient(cc).LeaderHistory(ctx, &api.LeaderHistoryRequest{})
		return err
	})
	if err != nil {
		return nil, err
	}
	return resp.Takeovers, nil
}

// Stage returns a stage with its task attempts (see api.StageDetail).
func (c *Client) Stage(ctx context.Context, id uint64) (*api.StageDetail, error) {
	var resp *api.StageDetail
	err := c.call(ctx, func(ctx context.Context, cc *grpc.ClientConn) (err error) {
		resp, err = api.NewSchedulerClient(cc).GetStage(ctx, &api.GetStageRequest{StageId: id})
		return err
	})
	return resp, err
}

// AddPeer adds a voting member.
func (c *Client) AddPeer(ctx context.Context, req *api.AddPeerRequest) error {
	return c.write(ctx, func(ctx context.Context, cc *grpc.ClientConn) error {
		_, err := api.NewOperatorClient(cc).AddPeer(ctx, req)
		return err
	})
}

// RemovePeer removes a member.
func (c *Client) RemovePeer(ctx context.Context, id string) error {
	return c.write(ctx, func(ctx context.Context, cc *grpc.ClientConn) error {
		_, err := api.NewOperatorClient(cc).RemovePeer(ctx, &api.RemovePeerRequest{Id: id})
		return err
	})
}

// TransferLeadership hands leadership to member id (any member when id is
// empty) and returns the new leader.
func (c *Client) TransferLeadership(ctx context.Context, id string) (string, error) {
	var resp *api.TransferLeadershipResponse
	err := c.write(ctx, func(ctx context.Context, cc *grpc.ClientConn) (err error) {
		resp, err = api.NewOperatorClient(cc).TransferLeadership(ctx, &api.TransferLeadershipRequest{Id: id})
		return err
	})
	if err != nil {
		return "", err
	}
	return resp.NewLeaderId, nil
}

// SubmitOptions refine a submission.
type SubmitOptions struct {
	// IdempotencyKey names the submission: retries with the same key
	// return the same job. Empty: Submit makes one, so its own retries
	// never submit twice.
	IdempotencyKey string
	// Partitions, when non-nil, limits the job to these partitions of
	// its final dataset.
	Partitions []int
	Pool       string
	// MaxTaskFailures and MaxResultSize override the quorum's defaults
	// for this job.
	MaxTaskFailures int
	MaxResultSize   int64
	// Group is the job group (Spark's setJobGroup): CancelJobGroup
	// cancels the group's running jobs.
	Group string
	// MapStage runs only the map stage of the shuffle the plan's output
	// reads (Spark's submitMapStage): the job has no results, and its
	// status carries the shuffle's statistics (api.Job.MapStatistics).
	// While it is not released, later jobs reading the shuffle reuse its
	// outputs.
	MapStage bool
	// AdaptiveTarget > 0 coalesces neighbouring reducer partitions of the
	// job's stages into tasks of about this many bytes of shuffle input
	// (Spark's adaptive query execution).
	AdaptiveTarget int64
}

// Submit submits a plan and returns the job id.
func (c *Client) Submit(ctx context.Context, p *plan.Plan, opts SubmitOptions) (uint64, error) {
	// Checked here too: the wire form's counts are 32-bit, and a count
	// that does not fit must be refused, not truncated.
	if err := p.Validate(); err != nil {
		return 0, err
	}
	if opts.MaxTaskFailures < 0 || opts.MaxTaskFailures > math.MaxInt32 {
		return 0, fmt.Errorf("client: MaxTaskFailures %d out of range", opts.MaxTaskFailures)
	}
	for _, x := range opts.Partitions {
		if x < 0 || x > math.MaxInt32 {
			return 0, fmt.Errorf("client: partition %d out of range", x)
		}
	}
	req := &api.SubmitJobRequest{Plan: api.PlanToProto(p), IdempotencyKey: opts.IdempotencyKey, Pool: opts.Pool,
		MaxTaskFailures: int32(opts.MaxTaskFailures), MaxResultSize: opts.MaxResultSize, Group: opts.Group,
		MapStage: opts.MapStage, AdaptiveTarget: opts.AdaptiveTarget}
	if req.IdempotencyKey == "" {
		req.IdempotencyKey = NewKey()
	}
	if opts.Partitions != nil {
		req.SomePartitions = true
		for _, x := range opts.Partitions {
			req.Partitions = append(req.Partitions, int32(x))
		}
	}
	var resp *api.SubmitJobResponse
	err := c.callx(ctx, true, c.opts.SubmitTimeout, func(ctx context.Context, cc *grpc.ClientConn) (err error) {
		resp, err = api.NewSchedulerClient(cc).SubmitJob(ctx, req)
		return err
	})
	if err != nil {
		return 0, err
	}
	c.seen(resp.Index)
	if len(resp.Persisted) > 0 {
		c.mu.Lock()
		if c.persisted == nil {
			c.persisted = map[string]string{}
		}
		for name, key := range resp.Persisted {
			c.persisted[name] = key
		}
		c.mu.Unlock()
	}
	return resp.JobId, nil
}

// persistedKey returns the key of a persisted dataset one of this client's
// submissions named.
func (c *Client) persistedKey(name string) (string, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	key, ok := c.persisted[name]
	return key, ok
}

// NewKey returns a fresh random idempotency key.
func NewKey() string {
	var b [16]byte
	rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// Job returns a job with its stages; linearizable reads go through the
// leader and see every write acknowledged before the call.
func (c *Client) Job(ctx context.Context, id uint64, linearizable bool) (*api.Job, error) {
	var resp *api.Job
	err := c.call(ctx, func(ctx context.Context, cc *grpc.ClientConn) (err error) {
		resp, err = api.NewSchedulerClient(cc).GetJob(ctx, &api.GetJobRequest{JobId: id, Linearizable: linearizable, MinIndex: c.minIndex()})
		return err
	})
	return resp, err
}

// JobResults returns a page of a job's finished results' descriptions
// (partition, size, where an indirect one is held): limit of them (at
// most 10,000) from the offset-th, in partition order.
func (c *Client) JobResults(ctx context.Context, id uint64, offset, limit int) ([]*api.ResultInfo, error) {
	var resp *api.Job
	err := c.call(ctx, func(ctx context.Context, cc *grpc.ClientConn) (err error) {
		resp, err = api.NewSchedulerClient(cc).GetJob(ctx, &api.GetJobRequest{JobId: id, MinIndex: c.minIndex(),
			ResultsOffset: int32(min(max(offset, 0), math.MaxInt32)), ResultsLimit: int32(min(max(limit, 0), math.MaxInt32))})
		return err
	})
	if err != nil {
		return nil, err
	}
	return resp.Results, nil
}

// Jobs returns the retained jobs.
func (c *Client) Jobs(ctx context.Context, linearizable bool) ([]*api.Job, error) {
	var resp *api.ListJobsResponse
	err := c.call(ctx, func(ctx context.Context, cc *grpc.ClientConn) (err error) {
		resp, err = api.NewSchedulerClient(cc).ListJobs(ctx, &api.ListJobsRequest{Linearizable: linearizable, MinIndex: c.minIndex()})
		return err
	})
	if err != nil {
		return nil, err
	}
	return resp.Jobs, nil
}

// Cancel cancels a running job.
func (c *Client) Cancel(ctx context.Context, id uint64, reason string) error {
	return c.write(ctx, func(ctx context.Context, cc *grpc.ClientConn) error {
		resp, err := api.NewSchedulerClient(cc).CancelJob(ctx, &api.CancelJobRequest{JobId: id, Reason: reason})
		if err == nil {
			c.seen(resp.Index)
		}
		return err
	})
}

// CancelJobGroup cancels every running job of a group (Spark's
// cancelJobGroup) and returns the jobs it cancelled: none is not an error.
func (c *Client) CancelJobGroup(ctx context.Context, group, reason string) ([]uint64, error) {
	var ids []uint64
	err := c.write(ctx, func(ctx context.Context, cc *grpc.ClientConn) error {
		resp, err := api.NewSchedulerClient(cc).CancelJobGroup(ctx, &api.CancelJobGroupRequest{Group: group, Reason: reason})
		if err == nil {
			c.seen(resp.Index)
			ids = resp.Cancelled
		}
		return err
	})
	return ids, err
}

// CancelAllJobs cancels every running job (Spark's cancelAllJobs) and
// returns the jobs it cancelled.
func (c *Client) CancelAllJobs(ctx context.Context, reason string) ([]uint64, error) {
	var ids []uint64
	err := c.write(ctx, func(ctx context.Context, cc *grpc.ClientConn) error {
		resp, err := api.NewSchedulerClient(cc).CancelAllJobs(ctx, &api.CancelAllJobsRequest{Reason: reason})
		if err == nil {
			c.seen(resp.Index)
			ids = resp.Cancelled
		}
		return err
	})
	return ids, err
}

// CancelStage cancels every running job that needs a stage (Spark's
// cancelStage) and returns the jobs it cancelled.
func (c *Client) CancelStage(ctx context.Context, stage uint64, reason string) ([]uint64, error) {
	var ids []uint64
	err := c.write(ctx, func(ctx context.Context, cc *grpc.ClientConn) error {
		resp, err := api.NewSchedulerClient(cc).CancelStage(ctx, &api.CancelStageRequest{StageId: stage, Reason: reason})
		if err == nil {
			c.seen(resp.Index)
			ids = resp.Cancelled
		}
		return err
	})
	return ids, err
}

// Cached lists the persisted datasets and where their partitions are
// kept (Spark UI's Storage).
func (c *Client) Cached(ctx context.Context) ([]*api.CachedDataset, error) {
	var resp *api.ListCachedResponse
	err := c.call(ctx, func(ctx context.Context, cc *grpc.ClientConn) (err error) {
		resp, err = api.NewSchedulerClient(cc).ListCached(ctx, &api.ListCachedRequest{})
		return err
	})
	if err != nil {
		return nil, err
	}
	return resp.Datasets, nil
}

// Unpersist frees the persisted datasets whose key or plan name is
// dataset (Spark's unpersist) and returns how many it freed; none is a
// NotFound error.
func (c *Client) Unpersist(ctx context.Context, dataset string) (int, error) {
	n := 0
	err := c.write(ctx, func(ctx context.Context, cc *grpc.ClientConn) error {
		resp, err := api.NewSchedulerClient(cc).Unpersist(ctx, &api.UnpersistRequest{Dataset: dataset})
		if err == nil {
			c.seen(resp.Index)
			n = len(resp.Keys)
		}
		return err
	})
	return n, err
}

// Release drops an ended job's results.
func (c *Client) Release(ctx context.Context, id uint64) error {
	return c.write(ctx, func(ctx context.Context, cc *grpc.ClientConn) error {
		resp, err := api.NewSchedulerClient(cc).ReleaseJob(ctx, &api.ReleaseJobRequest{JobId: id})
		if err == nil {
			c.seen(resp.Index)
		}
		return err
	})
}

// Executors lists the executors.
func (c *Client) Executors(ctx context.Context) ([]*api.Executor, error) {
	resp, err := c.ListExecutors(ctx)
	if err != nil {
		return nil, err
	}
	return resp.Executors, nil
}

// ListExecutors lists the executors, saying (resp.Replica) when a member
// answered from its replica because the leader did not.
func (c *Client) ListExecutors(ctx context.Context) (*api.ListExecutorsResponse, error) {
	var resp *api.ListExecutorsResponse
	err := c.call(ctx, func(ctx context.Context, cc *grpc.ClientConn) (err error) {
		resp, err = api.NewSchedulerClient(cc).ListExecutors(ctx, &api.ListExecutorsRequest{})
		return err
	})
	return resp, err
}

// Wait follows a job until it ends and returns its final state, calling
// progress (when not nil) with every update. It rides through member
// failures: when a watch breaks it resumes on another member.
func (c *Client) Wait(ctx context.Context, id uint64, progress func(*api.Job)) (*api.Job, error) {
	var final *api.Job
	err := c.stream(ctx, func(ctx context.Context, cc *grpc.ClientConn, moved func()) error {
		st, err := api.NewSchedulerClient(cc).WatchJob(ctx, &api.WatchJobRequest{JobId: id, MinIndex: c.minIndex()})
		if err != nil {
			return err
		}
		for {
			j, err := st.Recv()
			if err == nil {
				moved()
			}
			if err == io.EOF {
				if final != nil && final.State != api.JobState_JOB_STATE_RUNNING {
					return nil
				}
				return status.Error(codes.Unavailable, "watch ended early")
			}
			if err != nil {
				return err
			}
			final = j
			if progress != nil {
				progress(j)
			}
		}
	})
	return final, err
}

// stream is call for streaming calls: no per-attempt timeout, and a
// stream that breaks after it made progress (fn called progress) starts
// over without using up the retry budget.
func (c *Client) stream(ctx context.Context, fn func(ctx context.Context, cc *grpc.ClientConn, progress func()) error) error {
	deadline := time.Now().Add(c.opts.RetryFor)
	tr := c.newTracker()
	for {
		c.mu.Lock()
		i := c.cur
		c.mu.Unlock()
		progressed := false
		sctx, answered := withAnswerFlag(ctx)
		err := fn(sctx, c.conns[i], func() { progressed = true })
		if err == nil {
			return nil
		}
		if ctx.Err() != nil {
			return gaveUp(ctx.Err(), err)
		}
		if !retryable(err, true) && status.Code(err) != codes.Canceled && status.Code(err) != codes.Unknown {
			return err
		}
		if progressed {
			tr = c.newTracker()
		} else if ferr := tr.failed(ctx, i, err, answered.Load()); ferr != nil {
			return ferr
		}
		c.mu.Lock()
		if c.cur == i {
			c.cur = (i + 1) % len(c.conns)
		}
		c.mu.Unlock()
		if progressed {
			deadline = time.Now().Add(c.opts.RetryFor)
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("client: no member answered within %s: %w", c.opts.RetryFor, err)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// Results returns a job's results, waiting for it to succeed: each
// partition's serialized result, in partition order. It rides through
// member failures and waits while lost results are recomputed.
func (c *Client) Results(ctx context.Context, id uint64) ([][]byte, error) {
	var parts [][]byte
	err := c.stream(ctx, func(ctx context.Context, cc *grpc.ClientConn, moved func()) error {
		parts = nil
		st, err := api.NewSchedulerClient(cc).CollectResults(ctx, &api.CollectResultsRequest{JobId: id, MinIndex: c.minIndex()})
		if err != nil {
			return err
		}
		var cur []byte
		for {
			chunk, err := st.Recv()
			if err == io.EOF {
				return nil
			}
			if err != nil {
				return err
			}
			moved()
			cur = append(cur, chunk.Data...)
			if chunk.Last {
				parts = append(parts, cur)
				cur = nil
			}
		}
	})
	return parts, err
}

// Collect returns a job's records (a collect, take or first action), in
// partition order.
func (c *Client) Collect(ctx context.Context, id uint64) ([]ops.Record, error) {
	parts, err := c.Results(ctx, id)
	if err != nil {
		return nil, err
	}
	var out []ops.Record
	for _, p := range parts {
		if err := ops.DecodeRecords(p, func(r ops.Record) error {
			out = append(out, ops.Record{Key: append([]byte(nil), r.Key...), Value: append([]byte(nil), r.Value...), HasKey: r.HasKey})
			return nil
		}); err != nil {
			return nil, fmt.Errorf("client: %w", err)
		}
	}
	return out, nil
}

// Count returns a count job's answer: the sum of its partitions' counts.
func (c *Client) Count(ctx context.Context, id uint64) (int64, error) {
	recs, err := c.Collect(ctx, id)
	if err != nil {
		return 0, err
	}
	var n int64
	for _, r := range recs {
		v, err := ops.ParseInt(r.Value)
		if err != nil {
			return 0, fmt.Errorf("client: job %d is not a count: %w", id, err)
		}
		n += v
	}
	return n, nil
}

// ErrUnmerged is returned by Answer with a reduce job's per-partition
// values when the client does not hold the reduce function to merge them.
var ErrUnmerged = errors.New("the partitions' values are returned unmerged")

// Answer returns a succeeded job's answer, its partitions' results merged
// as its action says: collect concatenates them in partition order;
// count sums them (one value-only record); take(n) and first keep the
// first records in partition order; countByKey adds the counts of each
// key (sorted by key); reduce combines the partitions' values with its
// function (a built-in one).
func (c *Client) Answer(ctx context.Context, id uint64) ([]ops.Record, error) {
	j, err := c.Wait(ctx, id, nil)
	if err != nil {
		return nil, err
	}
	if j.State != api.JobState_JOB_STATE_SUCCEEDED {
		return nil, fmt.Errorf("client: job %d has no answer: it %s: %s", id, strings.TrimPrefix(strings.ToLower(j.State.String()), "job_state_"), j.Message)
	}
	recs, err := c.Collect(ctx, id)
	if err != nil {
		return nil, err
	}
	a := j.GetActionSpec()
	switch j.Action {
	case "count", "saveAsTextFile":
		var n int64
		for _, r := range recs {
			v, err := ops.ParseInt(r.Value)
			if err != nil {
				return nil, fmt.Errorf("client: job %d: %w", id, err)
			}
			n += v
		}
		return []ops.Record{{Value: []byte(strconv.FormatInt(n, 10))}}, nil
	case "take":
		if n := a.GetN(); int64(len(recs)) > n {
			recs = recs[:n]
		}
		return recs, nil
	case "first":
		if len(recs) > 1 {
			recs = recs[:1]
		}
		return recs, nil
	case "countByKey":
		counts := map[string]int64{}
		for _, r := range recs {
			v, err := ops.ParseInt(r.Value)
			if err != nil {
				return nil, fmt.Errorf("client: job %d: %w", id, err)
			}
			counts[string(r.Key)] += v
		}
		keys := make([]string, 0, len(counts))
		for k := range counts {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		out := make([]ops.Record, 0, len(keys))
		for _, k := range keys {
			out = append(out, ops.Record{Key: []byte(k), Value: []byte(strconv.FormatInt(counts[k], 10)), HasKey: true})
		}
		return out, nil
	case "reduce":
		if len(recs) <= 1 {
			return recs, nil
		}
		f, ok := c.opts.Registry.Lookup(a.GetFn().GetName())
		if !ok {
			return recs, fmt.Errorf("client: job %d: reduce with %q, which this client does not know (Options.Registry): %w", id, a.GetFn().GetName(), ErrUnmerged)
		}
		inst, err := f.New(json.RawMessage(a.GetFn().GetArgsJson()))
		if err != nil {
			return nil, err
		}
		agg, ok := inst.(*ops.Aggregator)
		if !ok {
			return nil, fmt.Errorf("client: job %d: %q is not an aggregator", id, f.Name)
		}
		if agg.IsInt() {
			var acc int64
			for i, r := range recs {
				v, err := ops.ParseInt(r.Value)
				if err != nil {
					return nil, err
				}
				if i == 0 {
					acc = v
				} else {
					acc = agg.IntMerge(acc, v)
				}
			}
			return []ops.Record{{Value: []byte(strconv.FormatInt(acc, 10))}}, nil
		}
		acc := recs[0].Value
		for _, r := range recs[1:] {
			if acc, err = agg.BytesMerge(acc, r.Value); err != nil {
				return nil, err
			}
		}
		return []ops.Record{{Value: acc}}, nil
	}
	return recs, nil
}

// Run submits a plan, waits for its answer (see Answer), releases its
// jobs and returns the answer. A take(n) plan (and first, which is
// take(1)) runs as Spark's take does:
// one partition first, then more and more (up to four times as many each
// round, fewer when the records found so far suggest it), until n records
// are found or every partition is read.
func (c *Client) Run(ctx context.Context, p *plan.Plan, opts SubmitOptions) ([]ops.Record, error) {
	if (p.Action.Op == "take" || p.Action.Op == "first") && opts.Partitions == nil {
		return c.take(ctx, p, opts)
	}
	id, err := c.Submit(ctx, p, opts)
	if err != nil {
		return nil, err
	}
	recs, err := c.Answer(ctx, id)
	if err != nil {
		return nil, err
	}
	c.Release(ctx, id)
	return recs, nil
}

func (c *Client) take(ctx context.Context, p *plan.Plan, opts SubmitOptions) ([]ops.Record, error) {
	n := int(p.Action.N)
	if p.Action.Op == "first" {
		n = 1 // first is take(1), as in Spark
	}
	key := opts.IdempotencyKey
	if key == "" {
		key = NewKey()
	}
	var buf []ops.Record
	var jobs []uint64
	defer func() {
		for _, id := range jobs {
			c.Release(context.WithoutCancel(ctx), id)
		}
	}()
	total, scanned := -1, 0
	for round := 0; len(buf) < n && (total < 0 || scanned < total); round++ {
		try := 1
		if scanned > 0 {
			try = scanned * 4
			if len(buf) > 0 {
				// Spark's estimate: half as many again as the rate so far
				// suggests for the records still missing.
				left := n - len(buf)
				try = min(try, (3*left*scanned+2*len(buf)-1)/(2*len(buf)))
			}
		}
		end := scanned + try
		if total >= 0 {
			end = min(end, total)
		}
		parts := make([]int, 0, end-scanned)
		for i := scanned; i < end; i++ {
			parts = append(parts, i)
		}
		o := opts
		o.Partitions = parts
		o.IdempotencyKey = fmt.Sprintf("%s/take/%d", key, round)
		id, err := c.Submit(ctx, p, o)
		if err != nil {
			return nil, err
		}
		jobs = append(jobs, id)
		recs, err := c.Answer(ctx, id)
		if err != nil {
			return nil, err
		}
		if total < 0 {
			j, err := c.Job(ctx, id, false)
			if err != nil {
				return nil, err
			}
			total = int(j.OutputPartitions)
		}
		buf = append(buf, recs...)
		scanned = end
	}
	if len(buf) > n {
		buf = buf[:n]
	}
	return buf, nil
}
