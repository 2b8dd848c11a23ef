package raftnet

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"runtime/debug"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/raft"
	raftboltdb "github.com/hashicorp/raft-boltdb/v2"
	"go.etcd.io/bbolt"
)

// Errors. Callers test them with errors.Is.
var (
	// ErrNotLeader: the operation needs the leader and this node is not.
	ErrNotLeader = errors.New("raftnet: not the leader")
	// ErrWrongNode: the data directory belongs to another node id.
	ErrWrongNode = errors.New("raftnet: data directory belongs to another node")
	// ErrNoLeader: no leader is known (an election is under way, or the
	// quorum is lost).
	ErrNoLeader = errors.New("raftnet: no leader")
	// ErrShutdown: the node is shut down.
	ErrShutdown = errors.New("raftnet: node is shut down")
	// ErrOutcomeUnknown: leadership was lost while a write was in flight;
	// it may or may not have been committed.
	ErrOutcomeUnknown = errors.New("raftnet: leadership lost before the write was confirmed; it may or may not have been applied")
)

// Peer is a quorum member's id and Raft address.
type Peer struct {
	ID   string
	Addr string
}

// ParsePeers parses "id=host:port,id=host:port".
func ParsePeers(s string) ([]Peer, error) {
	var peers []Peer
	seen := map[string]bool{}
	for _, item := range strings.Split(s, ",") {
		item = strings.TrimSpace(item)
		if item == "" {
			continue
		}
		id, addr, ok := strings.Cut(item, "=")
		if !ok || id == "" || addr == "" {
			return nil, fmt.Errorf("raftnet: peer %q: want id=host:port", item)
		}
		if _, _, err := net.SplitHostPort(addr); err != nil {
			return nil, fmt.Errorf("raftnet: peer %q: %w", item, err)
		}
		if seen[id] {
			return nil, fmt.Errorf("raftnet: peer id %q listed twice", id)
		}
		seen[id] = true
		peers = append(peers, Peer{ID: id, Addr: addr})
	}
	if len(peers) == 0 {
		return nil, fmt.Errorf("raftnet: no peers in %q", s)
	}
	return peers, nil
}

// Options configure a Node. Zero fields take the defaults documented on
// each; the defaults suit a three-node quorum on a LAN, where a dead
// leader should be replaced in well under a second.
type Options struct {
	// ID is the node's Raft server id. Required.
	ID string
	// DataDir holds the Raft log and stable store (bbolt) and snapshots.
	// Required.
	DataDir string
	// RaftAddr is the TCP address Raft listens on. Required.
	RaftAddr string
	// Advertise is the address peers reach this node at. Default: the
	// listener's address (RaftAddr with its port resolved).
	Advertise string
	// Bootstrap is the initial configuration, used only when the data
	// directory holds no Raft state. It must include this node.
	Bootstrap []Peer

	// HeartbeatTimeout: a follower without contact from the leader for
	// this long (randomised up to twice as long) starts an election.
	// Default 200ms.
	HeartbeatTimeout time.Duration
	// ElectionTimeout: a candidate without a result for this long starts
	// another election. Default 200ms.
	ElectionTimeout time.Duration
	// LeaderLeaseTimeout: a leader that cannot reach a quorum for this
	// long steps down. At most HeartbeatTimeout. Default HeartbeatTimeout:
	// a shorter lease makes a leader on a busy machine (its followers'
	// answers late by a scheduling delay) step down though nothing died,
	// and one election on a loaded machine brings the next (measured by
	// loadbench: a lease of half the heartbeat timeout made 42 term changes
	// a minute with 200 executors on 2 cores; equal to it, none).
	LeaderLeaseTimeout time.Duration
	// CommitTimeout bounds how long a follower may wait to learn of a
	// commit when no new entries arrive. Default 20ms.
	CommitTimeout time.Duration
	// MaxAppendEntries is the most entries sent in one append request and
	// written in one disk batch. Default 256.
	MaxAppendEntries int

	// SnapshotThreshold: snapshot once this many entries are logged since
	// the last snapshot. The scheduler's state is small (tens to hundreds
	// of KiB) and its entries many, so snapshots are cheap and frequent.
	// Default 4096.
	SnapshotThreshold uint64
	// SnapshotInterval: how often to check the threshold. Default 10s.
	SnapshotInterval time.Duration
	// TrailingLogs: entries kept after a snapshot, so a briefly absent
	// follower catches up from the log, not a snapshot. Default 4096.
	TrailingLogs uint64
	// SnapshotsRetained: snapshots kept on disk. Default 2.
	SnapshotsRetained int
	// LogCacheSize: recent entries kept in memory. Default 1024.
	LogCacheSize int

	// TLS, when set, runs Raft over mutual TLS and serves only current
	// members (see TLS). The node's own certificate should name its ID:
	// its peers identify it by that name.
	TLS *TLS

	// FSM is the state machine. Required.
	FSM raft.FSM
	// Logger receives Raft's log; nil discards it.
	Logger *slog.Logger
}

func (o *Options) ensureDefaults() {
	def := func(d *time.Duration, v time.Duration) {
		if *d <= 0 {
			*d = v
		}
	}
	def(&o.HeartbeatTimeout, 200*time.Millisecond)
	def(&o.ElectionTimeout, 200*time.Millisecond)
	def(&o.LeaderLeaseTimeout, o.HeartbeatTimeout)
	def(&o.CommitTimeout, 20*time.Millisecond)
	def(&o.SnapshotInterval, 10*time.Second)
	if o.LeaderLeaseTimeout > o.HeartbeatTimeout {
		o.LeaderLeaseTimeout = o.HeartbeatTimeout
	}
	if o.MaxAppendEntries <= 0 {
		o.MaxAppendEntries = 256
	}
	if o.SnapshotThreshold == 0 {
		o.SnapshotThreshold = 4096
	}
	if o.TrailingLogs == 0 {
		o.TrailingLogs = 4096
	}
	if o.SnapshotsRetained <= 0 {
		o.SnapshotsRetained = 2
	}
	if o.LogCacheSize <= 0 {
		o.LogCacheSize = 1024
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
}

func (o *Options) validate() error {
	var errs []string
	if o.ID == "" {
		errs = append(errs, "no node id")
	}
	if o.DataDir == "" {
		errs = append(errs, "no data directory")
	}
	if o.RaftAddr == "" {
		errs = append(errs, "no raft address")
	}
	if o.FSM == nil {
		errs = append(errs, "no FSM")
	}
	if len(o.Bootstrap) > 0 {
		found := false
		for _, p := range o.Bootstrap {
			found = found || p.ID == o.ID
		}
		if !found {
			errs = append(errs, fmt.Sprintf("bootstrap peers do not include this node %q", o.ID))
		}
	}
	if o.TLS != nil {
		if err := o.TLS.validate(); err != nil {
			errs = append(errs, err.Error())
		}
	}
	if len(errs) > 0 {
		return fmt.Errorf("raftnet: %s", strings.Join(errs, "; "))
	}
	return nil
}

// Node is one Raft member: hashicorp/raft over TCP with bbolt log and
// stable stores behind a log cache, and file snapshots.
type Node struct {
	opts  Options
	raft  *raft.Raft
	store *raftboltdb.BoltStore
	trans *raft.NetworkTransport
	lock  *os.File // flock on the data directory

	// Leadership changes fan out from raft's notify channel to
	// subscribers.
	mu       sync.Mutex
	subs     map[int]chan bool
	nextID   int
	done     chan struct{}
	wg       sync.WaitGroup
	stopOnce sync.Once
	// members caches the configuration's server ids for the TLS check.
	members members
}

// Open starts a node. If the data directory holds no Raft state and
// Bootstrap is set, it bootstraps the cluster from Bootstrap; with neither,
// the node waits to be added by a leader.
func Open(opts Options) (*Node, error) {
	opts.ensureDefaults()
	if err := opts.validate(); err != nil {
		return nil, err
	}
	raftDir := filepath.Join(opts.DataDir, "raft")
	if err := os.MkdirAll(raftDir, 0o755); err != nil {
		return nil, fmt.Errorf("raftnet: %w", err)
	}
	lock, err := lockDataDir(opts.DataDir)
	if err != nil {
		return nil, err
	}
	if err := claimDataDir(opts.DataDir, opts.ID); err != nil {
		lock.Close()
		return nil, err
	}
	ln, err := net.Listen("tcp", opts.RaftAddr)
	if err != nil {
		lock.Close()
		return nil, fmt.Errorf("raftnet: listen on %s: %w", opts.RaftAddr, err)
	}
	advertise := opts.Advertise
	if advertise == "" {
		advertise = ln.Addr().String()
	}
	adv, err := net.ResolveTCPAddr("tcp", advertise)
	if err != nil || adv.IP.IsUnspecified() {
		ln.Close()
		lock.Close()
		return nil, fmt.Errorf("raftnet: advertise address %q is not an address peers can reach", advertise)
	}
	hlog := newHCLogger(opts.Logger, "raft", hclog.Info)
	n := &Node{opts: opts, lock: lock, subs: map[int]chan bool{}, done: make(chan struct{})}
	var stream raft.StreamLayer = &streamLayer{Listener: ln, advertise: adv}
	if opts.TLS != nil {
		stream = &tlsStream{streamLayer: streamLayer{Listener: ln, advertise: adv}, tls: opts.TLS, members: &n.members, log: opts.Logger}
	}
	n.trans = raft.NewNetworkTransportWithConfig(&raft.NetworkTransportConfig{
		Stream:  stream,
		MaxPool: 3,
		Timeout: 10 * time.Second,
		Logger:  hlog,
	})
	fail := func(err error) (*Node, error) {
		n.trans.Close()
		if n.store != nil {
			n.store.Close()
		}
		lock.Close()
		return nil, err
	}
	// The freelist is not written on every commit (it is rebuilt by a
	// scan at open) and is kept as a hash map: both cut the cost of the
	// many small transactions a Raft log makes.
	boltOpts := &bbolt.Options{Timeout: time.Second, NoFreelistSync: true, FreelistType: bbolt.FreelistMapType}
	if n.store, err = openLogStore(filepath.Join(raftDir, "raft.db"), boltOpts); err != nil {
		return fail(err)
	}
	logs, err := raft.NewLogCache(opts.LogCacheSize, n.store)
	if err != nil {
		return fail(fmt.Errorf("raftnet: %w", err))
	}
	snaps, err := raft.NewFileSnapshotStoreWithLogger(raftDir, opts.SnapshotsRetained, hlog)
	if err != nil {
		return fail(fmt.Errorf("raftnet: snapshot store: %w", err))
	}
	cfg := raft.DefaultConfig()
	cfg.LocalID = raft.ServerID(opts.ID)
	cfg.HeartbeatTimeout = opts.HeartbeatTimeout
	cfg.ElectionTimeout = opts.ElectionTimeout
	cfg.LeaderLeaseTimeout = opts.LeaderLeaseTimeout
	cfg.CommitTimeout = opts.CommitTimeout
	cfg.MaxAppendEntries = opts.MaxAppendEntries
	cfg.SnapshotThreshold = opts.SnapshotThreshold
	cfg.SnapshotInterval = opts.SnapshotInterval
	cfg.TrailingLogs = opts.TrailingLogs
	cfg.Logger = hlog
	notify := make(chan bool, 16)
	cfg.NotifyCh = notify
	if err := raft.ValidateConfig(cfg); err != nil {
		return fail(fmt.Errorf("raftnet: %w", err))
	}
	existing, err := raft.HasExistingState(logs, n.store, snaps)
	if err != nil {
		return fail(fmt.Errorf("raftnet: %w", err))
	}
	if !existing && len(opts.Bootstrap) > 0 {
		var servers []raft.Server
		// Every node must bootstrap the same configuration: use the
		// addresses exactly as listed.
		for _, p := range opts.Bootstrap {
			servers = append(servers, raft.Server{ID: raft.ServerID(p.ID), Address: raft.ServerAddress(p.Addr), Suffrage: raft.Voter})
		}
		if err := raft.BootstrapCluster(cfg, logs, n.store, snaps, n.trans, raft.Configuration{Servers: servers}); err != nil {
			return fail(fmt.Errorf("raftnet: bootstrap: %w", err))
		}
	}
	if n.raft, err = raft.NewRaft(cfg, opts.FSM, logs, n.store, snaps, n.trans); err != nil {
		return fail(fmt.Errorf("raftnet: %w", err))
	}
	n.wg.Add(1)
	go n.fanOut(notify)
	if opts.TLS != nil {
		n.wg.Add(1)
		go n.watchMembers()
	}
	return n, nil
}

// watchMembers keeps the member cache of the TLS check current.
func (n *Node) watchMembers() {
	defer n.wg.Done()
	t := time.NewTicker(250 * time.Millisecond)
	defer t.Stop()
	for {
		if f := n.raft.GetConfiguration(); f.Error() == nil {
			n.members.set(f.Configuration())
		}
		select {
		case <-n.done:
			return
		case <-t.C:
		}
	}
}

// ErrDamagedLog: the Raft log store cannot be read (a truncated or
// overwritten file). The node cannot start from it.
var ErrDamagedLog = errors.New("raftnet: the Raft log store is damaged")

// openLogStore opens the bbolt log and stable store. bbolt asserts (panics)
// on pages that are not what its metadata says, and a truncated file faults
// when read through its memory map: both become ErrDamagedLog with what to
// do, never a stack trace. Opening walks every page of the store (the
// freelist is rebuilt by a scan), so a damaged store is found here.
func openLogStore(path string, opts *bbolt.Options) (store *raftboltdb.BoltStore, err error) {
	if err := checkBoltFile(path); err != nil {
		return nil, fmt.Errorf("%w: %s: %v; move the data directory aside and join the quorum again (schedd -join), or restore a backup", ErrDamagedLog, path, err)
	}
	defer debug.SetPanicOnFault(debug.SetPanicOnFault(true))
	defer func() {
		if r := recover(); r != nil {
			store, err = nil, fmt.Errorf("%w: %s: %v; move the data directory aside and join the quorum again (schedd -join), or restore a backup", ErrDamagedLog, path, r)
		}
	}()
	store, err = raftboltdb.New(raftboltdb.Options{Path: path, BoltOptions: opts})
	if err != nil {
		return nil, fmt.Errorf("raftnet: open log store %s: %w", path, err)
	}
	// Every entry is read once (the log holds a few thousand entries past
	// the last snapshot): a store whose pages are readable but whose
	// entries are not, or are missing, is damaged too.
	if err := checkEntries(store); err != nil {
		store.Close()
		return nil, fmt.Errorf("%w: %s: %v; move the data directory aside and join the quorum again (schedd -join), or restore a backup", ErrDamagedLog, path, err)
	}
	return store, nil
}

func checkEntries(store *raftboltdb.BoltStore) error {
	first, err := store.FirstIndex()
	if err != nil {
		return err
	}
	last, err := store.LastIndex()
	if err != nil {
		return err
	}
	if first == 0 {
		return nil
	}
	var l raft.Log
	for i := first; i <= last; i++ {
		if err := store.GetLog(i, &l); err != nil {
			return fmt.Errorf("entry %d of %d..%d: %w", i, first, last, err)
		}
		if l.Index != i {
			return fmt.Errorf("entry %d of %d..%d holds index %d", i, first, last, l.Index)
		}
	}
	return nil
}

// ErrDataDirInUse: another process holds the data directory.
var ErrDataDirInUse = errors.New("raftnet: data directory is in use by another process")

// lockDataDir takes an exclusive lock on the data directory, so two
// processes never share one Raft log. The lock goes with the process.
func lockDataDir(dir string) (*os.File, error) {
	f, err := os.OpenFile(filepath.Join(dir, "LOCK"), os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		return nil, fmt.Errorf("raftnet: %w", err)
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		f.Close()
		return nil, fmt.Errorf("%w: %s", ErrDataDirInUse, dir)
	}
	return f, nil
}

// claimDataDir records the node id in the data directory, or checks that
// the directory is this node's.
func claimDataDir(dir, id string) error {
	path := filepath.Join(dir, "node-id")
	b, err := os.ReadFile(path)
	switch {
	case err == nil:
		if got := strings.TrimSpace(string(b)); got != id {
			return fmt.Errorf("%w: %s belongs to node %q, not %q", ErrWrongNode, dir, got, id)
		}
		return nil
	case errors.Is(err, os.ErrNotExist):
		if err := os.WriteFile(path, []byte(id+"\n"), 0o644); err != nil {
			return fmt.Errorf("raftnet: %w", err)
		}
		return nil
	}
	return fmt.Errorf("raftnet: %w", err)
}

// fanOut passes leadership changes from raft to every subscriber. It runs
// until Shutdown; a slow subscriber loses intermediate values but always
// sees the latest (its channel holds one value and is overwritten).
func (n *Node) fanOut(notify <-chan bool) {
	defer n.wg.Done()
	for {
		select {
		case v := <-notify:
			n.mu.Lock()
			for _, ch := range n.subs {
				select {
				case <-ch:
				default:
				}
				ch <- v
			}
			n.mu.Unlock()
		case <-n.done:
			return
		}
	}
}

// Subscribe returns a channel that receives true when this node becomes
// leader and false when it stops being leader, and a function to stop.
func (n *Node) Subscribe() (<-chan bool, func()) {
	n.mu.Lock()
	defer n.mu.Unlock()
	id := n.nextID
	n.nextID++
	ch := make(chan bool, 1)
	if n.IsLeader() {
		ch <- true // it may have won before subscribing
	}
	n.subs[id] = ch
	return ch, func() {
		n.mu.Lock()
		delete(n.subs, id)
		n.mu.Unlock()
	}
}

// ID returns the node's id.
func (n *Node) ID() string { return n.opts.ID }

// Addr returns the node's advertised Raft address.
func (n *Node) Addr() string { return string(n.trans.LocalAddr()) }

// Raft returns the underlying raft.Raft, for what this type does not wrap.
func (n *Node) Raft() *raft.Raft { return n.raft }

// IsLeader reports whether this node is the leader.
func (n *Node) IsLeader() bool { return n.raft.State() == raft.Leader }

// Leader returns the leader's id and Raft address; both are empty when no
// leader is known.
func (n *Node) Leader() (id, addr string) {
	a, i := n.raft.LeaderWithID()
	return string(i), string(a)
}

// WaitLeader waits until a leader is known and returns its id.
func (n *Node) WaitLeader(ctx context.Context) (string, error) {
	t := time.NewTicker(10 * time.Millisecond)
	defer t.Stop()
	for {
		if id, _ := n.Leader(); id != "" {
			return id, nil
		}
		select {
		case <-ctx.Done():
			return "", fmt.Errorf("%w: %w", ErrNoLeader, ctx.Err())
		case <-t.C:
		}
	}
}

// Apply proposes a log entry and waits for it to be applied here. It
// returns the FSM's response. On a follower it returns ErrNotLeader.
func (n *Node) Apply(data []byte, timeout time.Duration) (any, error) {
	f := n.raft.Apply(data, timeout)
	if err := f.Error(); err != nil {
		return nil, translate(err)
	}
	return f.Response(), nil
}

// ApplyAsync proposes a log entry without waiting; the future reports the
// outcome. Its Error is one of this package's (ErrNotLeader,
// ErrOutcomeUnknown, ErrShutdown, ...), as Apply's is.
func (n *Node) ApplyAsync(data []byte, timeout time.Duration) raft.ApplyFuture {
	return applyFuture{n.raft.Apply(data, timeout)}
}

// applyFuture is a raft.ApplyFuture whose Error is translated.
type applyFuture struct{ raft.ApplyFuture }

func (f applyFuture) Error() error { return translate0(f.ApplyFuture.Error()) }

func translate(err error) error {
	switch {
	case errors.Is(err, raft.ErrLeadershipLost):
		return ErrOutcomeUnknown
	case errors.Is(err, raft.ErrNotLeader), errors.Is(err, raft.ErrLeadershipTransferInProgress),
		errors.Is(err, raft.ErrEnqueueTimeout):
		return fmt.Errorf("%w: %v", ErrNotLeader, err)
	case errors.Is(err, raft.ErrRaftShutdown):
		return ErrShutdown
	}
	return fmt.Errorf("raftnet: %w", err)
}

// ReadIndex makes a linearizable read possible on the leader: it commits
// a barrier entry in the current term (which confirms leadership with a
// quorum) and returns once this node's FSM has applied everything before
// it. Reads of the local FSM after it returns see every write committed
// before it was called. On a follower it fails with ErrNotLeader.
func (n *Node) ReadIndex(ctx context.Context) error {
	timeout := 5 * time.Second
	if dl, ok := ctx.Deadline(); ok {
		timeout = time.Until(dl)
	}
	if timeout <= 0 {
		return fmt.Errorf("raftnet: read index: %w", context.DeadlineExceeded)
	}
	return translate0(n.raft.Barrier(timeout).Error())
}

// Barrier waits until every entry committed before it is applied here.
func (n *Node) Barrier(timeout time.Duration) error {
	return translate0(n.raft.Barrier(timeout).Error())
}

func translate0(err error) error {
	if err == nil {
		return nil
	}
	return translate(err)
}

// Server is a member of the Raft configuration.
type Server struct {
	ID       string
	Addr     string
	Voter    bool
	IsLeader bool
}

// Servers returns the current Raft configuration.
func (n *Node) Servers() ([]Server, error) {
	f := n.raft.GetConfiguration()
	if err := f.Error(); err != nil {
		return nil, translate(err)
	}
	leader, _ := n.Leader()
	var out []Server
	for _, s := range f.Configuration().Servers {
		out = append(out, Server{ID: string(s.ID), Addr: string(s.Address), Voter: s.Suffrage == raft.Voter, IsLeader: string(s.ID) == leader})
	}
	return out, nil
}

// AddVoter adds a voting member (leader only). Adding a member that is
// already there with the same address is a no-op.
func (n *Node) AddVoter(id, addr string, timeout time.Duration) error {
	return translate0(n.raft.AddVoter(raft.ServerID(id), raft.ServerAddress(addr), 0, timeout).Error())
}

// RemoveServer removes a member (leader only).
func (n *Node) RemoveServer(id string, timeout time.Duration) error {
	return translate0(n.raft.RemoveServer(raft.ServerID(id), 0, timeout).Error())
}

// TransferLeadership hands leadership to the given member, or to the most
// up-to-date follower when id is empty (leader only).
func (n *Node) TransferLeadership(id string) error {
	if id == "" {
		return translate0(n.raft.LeadershipTransfer().Error())
	}
	servers, err := n.Servers()
	if err != nil {
		return err
	}
	for _, s := range servers {
		if s.ID == id {
			return translate0(n.raft.LeadershipTransferToServer(raft.ServerID(id), raft.ServerAddress(s.Addr)).Error())
		}
	}
	return fmt.Errorf("raftnet: no member %q", id)
}

// Restore replaces the replicated state with a snapshot (the leader
// only): every member installs it, and the log goes on from there. For
// restoring a backup (fsm.FSM.Backup) into a quorum, new or old.
func (n *Node) Restore(data []byte, timeout time.Duration) error {
	meta := &raft.SnapshotMeta{Version: raft.SnapshotVersionMax, Size: int64(len(data))}
	return translate0(n.raft.Restore(meta, bytes.NewReader(data), timeout))
}

// Snapshot takes a snapshot now.
func (n *Node) Snapshot() error { return translate0(n.raft.Snapshot().Error()) }

// Status is the node's view of Raft.
type Status struct {
	ID           string
	State        string // Leader, Follower, Candidate, Shutdown
	Term         uint64
	LeaderID     string
	LeaderAddr   string
	CommitIndex  uint64
	AppliedIndex uint64
	LastIndex    uint64
	// LastContact is the time since this node last heard from the leader
	// (zero on the leader itself, -1 when it never has).
	LastContact       time.Duration
	LastSnapshotIndex uint64
	LastSnapshotTerm  uint64
}

// Term returns the node's current term.
func (n *Node) Term() uint64 { return n.raft.CurrentTerm() }

// Status returns the node's view of Raft.
func (n *Node) Status() Status {
	st := Status{
		ID:           n.opts.ID,
		State:        n.raft.State().String(),
		Term:         n.raft.CurrentTerm(),
		CommitIndex:  n.raft.CommitIndex(),
		AppliedIndex: n.raft.AppliedIndex(),
		LastIndex:    n.raft.LastIndex(),
	}
	st.LeaderID, st.LeaderAddr = n.Leader()
	if n.raft.State() != raft.Leader {
		if lc := n.raft.LastContact(); lc.IsZero() {
			st.LastContact = -1
		} else {
			st.LastContact = time.Since(lc)
		}
	}
	stats := n.raft.Stats()
	fmt.Sscan(stats["last_snapshot_index"], &st.LastSnapshotIndex)
	fmt.Sscan(stats["last_snapshot_term"], &st.LastSnapshotTerm)
	return st
}

// Shutdown stops the node. A leader first hands leadership to a follower,
// so the cluster does not wait out an election timeout. The node's data
// stays: it rejoins as it was when started again.
func (n *Node) Shutdown() error {
	var err error
	n.stopOnce.Do(func() {
		if n.IsLeader() {
			if servers, serr := n.Servers(); serr == nil && len(servers) > 1 {
				n.raft.LeadershipTransfer().Error()
			}
		}
		err = n.close()
	})
	return translate0(err)
}

func (n *Node) close() error {
	err := n.raft.Shutdown().Error()
	close(n.done)
	n.wg.Wait()
	n.trans.Close()
	if cerr := n.store.Close(); err == nil {
		err = cerr
	}
	n.lock.Close()
	return err
}

// Kill stops the node abruptly, as a crash would (no leadership transfer),
// for tests.
func (n *Node) Kill() {
	n.stopOnce.Do(func() { n.close() })
}

// streamLayer is a TCP listener with an advertised address.
type streamLayer struct {
	net.Listener
	advertise net.Addr
}

func (s *streamLayer) Addr() net.Addr { return s.advertise }

func (s *streamLayer) Dial(addr raft.ServerAddress, timeout time.Duration) (net.Conn, error) {
	return net.DialTimeout("tcp", string(addr), timeout)
}
