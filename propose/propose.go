package propose

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/baton-sched/baton/dag"
	"github.com/baton-sched/baton/fsm"
	"github.com/hashicorp/raft"
)

// Log is the replicated log proposals go to (*raftnet.Node). The future's
// Error is already the log's own (raftnet.ErrNotLeader,
// raftnet.ErrOutcomeUnknown, raftnet.ErrShutdown, tested with errors.Is):
// the proposer hands it to its callers as it is.
type Log interface {
	ApplyAsync(data []byte, timeout time.Duration) raft.ApplyFuture
}

// MaxEntryBytes is the size of log entry the proposer forms (the default
// MaxBatchBytes), and so the most one command should need. Nothing below
// the proposer bounds an entry (raftnet, hashicorp/raft and raft-boltdb
// take any size; a proposal larger than MaxBatchBytes is proposed alone,
// not refused), but every entry is fsynced on each member, sent in append
// requests of up to 256 entries, each under a 10 s I/O timeout, and kept
// in each member's 1024-entry log cache: a command larger than this makes
// an entry larger than the quorum is sized for. Callers bound what one
// command carries by it (schedd -max-direct-result-size).
const MaxEntryBytes = 4 << 20

// Options configure a Proposer.
type Options struct {
	// MaxBatch is the most commands in one log entry. Default 1024.
	MaxBatch int
	// MaxBatchBytes bounds an entry's estimated size. Default
	// MaxEntryBytes.
	MaxBatchBytes int
	// MaxInFlight is the most entries proposed and not yet applied. While
	// all are in flight, new commands queue and form the next, larger
	// batch: fewer in flight make fewer, larger entries, which is what a
	// three-node quorum with fsync needs (measured: 2 beats 16). Default 2.
	MaxInFlight int
	// Timeout bounds the wait to enqueue an entry in Raft. Default 5s.
	Timeout time.Duration
	// Now stamps entries; default time.Now.
	Now func() time.Time
}

// Proposer turns concurrent proposals of scheduler commands into as few
// Raft log entries as possible (group commit): while entries are in
// flight, new proposals accumulate, and the next entry carries them all.
// One entry costs one round of replication and one fsync on each node
// whatever it holds, so throughput grows with the batch.
//
// Concurrency: Propose may be called from any number of goroutines. One
// loop goroutine forms batches; one goroutine per in-flight entry waits
// for it and hands each proposal its results.
type Proposer struct {
	log  Log
	opts Options
	reqs chan *proposal
	sem  chan struct{}
	stop chan struct{}
	wg   sync.WaitGroup

	// mu orders sends on reqs before Close: Propose sends under the read
	// lock, Close sets closed under the write lock, so after Close no
	// proposal can slip into reqs unseen by the final drain.
	mu     sync.RWMutex
	closed bool
}

type proposal struct {
	ctx  context.Context
	cmds []dag.Command
	done chan proposalResult
}

type proposalResult struct {
	results []dag.Result
	index   uint64
	err     error
}

// ErrClosed is returned by Propose after Close.
var ErrClosed = errors.New("propose: proposer closed")

// New starts a proposer for log.
func New(log Log, opts Options) *Proposer {
	if opts.MaxBatch <= 0 {
		opts.MaxBatch = 1024
	}
	if opts.MaxBatchBytes <= 0 {
		opts.MaxBatchBytes = MaxEntryBytes
	}
	if opts.MaxInFlight <= 0 {
		opts.MaxInFlight = 2
	}
	if opts.Timeout <= 0 {
		opts.Timeout = 5 * time.Second
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	p := &Proposer{
		log:  log,
		opts: opts,
		reqs: make(chan *proposal, 4096),
		sem:  make(chan struct{}, opts.MaxInFlight),
		stop: make(chan struct{}),
	}
	p.wg.Add(1)
	go p.loop()
	return p
}

// Propose commits cmds (in order, in one entry) and returns their results.
// On a follower it fails with the log's ErrNotLeader.
func (p *Proposer) Propose(ctx context.Context, cmds ...dag.Command) ([]dag.Result, error) {
	r, _, err := p.ProposeIndex(ctx, cmds...)
	return r, err
}

// ProposeIndex is Propose that also returns the log index of the entry.
func (p *Proposer) ProposeIndex(ctx context.Context, cmds ...dag.Command) ([]dag.Result, uint64, error) {
	if len(cmds) == 0 {
		return nil, 0, nil
	}
	if err := ctx.Err(); err != nil {
		// A caller that gave up (a leadership that ended) proposes
		// nothing.
		return nil, 0, err
	}
	pr := &proposal{ctx: ctx, cmds: cmds, done: make(chan proposalResult, 1)}
	p.mu.RLock()
	if p.closed {
		p.mu.RUnlock()
		return nil, 0, ErrClosed
	}
	select {
	case p.reqs <- pr:
		p.mu.RUnlock()
	case <-ctx.Done():
		p.mu.RUnlock()
		return nil, 0, ctx.Err()
	}
	select {
	case r := <-pr.done:
		return r.results, r.index, r.err
	case <-ctx.Done():
		// The commands may still commit; the caller must not assume not.
		return nil, 0, ctx.Err()
	}
}

// Close stops the proposer; proposals in flight still complete.
func (p *Proposer) Close() {
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		return
	}
	p.closed = true
	p.mu.Unlock()
	close(p.stop)
	p.wg.Wait()
}

func (p *Proposer) loop() {
	defer p.wg.Done()
	var carry *proposal
	for {
		first := carry
		carry = nil
		if first == nil {
			select {
			case first = <-p.reqs:
			case <-p.stop:
				p.failQueued()
				return
			}
		}
		// Wait for an in-flight slot: meanwhile proposals queue up.
		select {
		case p.sem <- struct{}{}:
		case <-p.stop:
			first.done <- proposalResult{err: ErrClosed}
			p.failQueued()
			return
		}
		// Proposals whose callers gave up while queued are dropped, not
		// logged: they may come from a leadership that has ended.
		if err := first.ctx.Err(); err != nil {
			<-p.sem
			first.done <- proposalResult{err: err}
			continue
		}
		batch := []*proposal{first}
		n, size := len(first.cmds), estimate(first.cmds)
	drain:
		for n < p.opts.MaxBatch && size < p.opts.MaxBatchBytes {
			select {
			case pr := <-p.reqs:
				if err := pr.ctx.Err(); err != nil {
					pr.done <- proposalResult{err: err}
					continue
				}
				if n+len(pr.cmds) > p.opts.MaxBatch || size+estimate(pr.cmds) > p.opts.MaxBatchBytes {
					carry = pr
					break drain
				}
				batch = append(batch, pr)
				n += len(pr.cmds)
				size += estimate(pr.cmds)
			default:
				break drain
			}
		}
		p.submit(batch, n)
	}
}

func (p *Proposer) failQueued() {
	for {
		select {
		case pr := <-p.reqs:
			pr.done <- proposalResult{err: ErrClosed}
		default:
			return
		}
	}
}

// submit proposes one entry for the batch and hands a goroutine the wait.
func (p *Proposer) submit(batch []*proposal, n int) {
	cmds := make([]dag.Command, 0, n)
	for _, pr := range batch {
		cmds = append(cmds, pr.cmds...)
	}
	data, err := fsm.Encode(p.opts.Now().UnixNano(), cmds)
	if err != nil {
		// A command that cannot be encoded fails alone: retry each
		// proposal in its own entry.
		<-p.sem
		if len(batch) == 1 {
			batch[0].done <- proposalResult{err: err}
			return
		}
		for _, pr := range batch {
			p.sem <- struct{}{}
			p.submit([]*proposal{pr}, len(pr.cmds))
		}
		return
	}
	f := p.log.ApplyAsync(data, p.opts.Timeout)
	p.wg.Add(1)
	go func() {
		defer p.wg.Done()
		defer func() { <-p.sem }()
		if err := f.Error(); err != nil {
			for _, pr := range batch {
				pr.done <- proposalResult{err: err}
			}
			return
		}
		resp, ok := f.Response().(*fsm.Response)
		if !ok || len(resp.Results) != n {
			err := fmt.Errorf("propose: unexpected FSM response %T", f.Response())
			for _, pr := range batch {
				pr.done <- proposalResult{err: err}
			}
			return
		}
		i := 0
		for _, pr := range batch {
			pr.done <- proposalResult{results: resp.Results[i : i+len(pr.cmds)], index: resp.Index}
			i += len(pr.cmds)
		}
	}()
}

// estimate guesses a command's encoded size.
func estimate(cmds []dag.Command) int {
	n := 0
	for _, c := range cmds {
		switch c := c.(type) {
		case *dag.TaskEnded:
			n += 64 + len(c.Result) + len(c.MapSizes) + len(c.Message)
		case *dag.SubmitJob:
			n += 1024
			if c.Graph != nil {
				for _, node := range c.Graph.Nodes {
					n += 256 + len(node.Params) + len(node.Fn.Args)
				}
			}
		default:
			n += 128
		}
	}
	return n
}
