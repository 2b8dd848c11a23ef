package server

import (
	"context"
	"sort"
	"sync"
	"time"

	"github.com/baton-sched/baton/api"
	"github.com/baton-sched/baton/dag"
	"github.com/baton-sched/baton/fsm"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// GetNodeStatus returns this node's own view of Raft.
func (s *Server) GetNodeStatus(ctx context.Context, req *api.NodeStatusRequest) (*api.NodeStatus, error) {
	st := s.node.Status()
	lc := st.LastContact.Milliseconds()
	if st.LastContact < 0 {
		lc = -1
	}
	return &api.NodeStatus{
		Id: st.ID, State: st.State, Term: st.Term, LeaderId: st.LeaderID, CommitIndex: st.CommitIndex,
		AppliedIndex: st.AppliedIndex, LastIndex: st.LastIndex, LastContactMs: lc,
		LastSnapshotIndex: st.LastSnapshotIndex, RaftAddr: s.node.Addr(), ApiAddr: s.APIAddr(), HttpAddr: s.HTTPAddr(),
		Driving: s.drv.Driving(), StateIndex: stateIndex(s.fsm),
	}, nil
}

// Status returns the cluster as this node sees it, with each peer's own
// report of its Raft state where the peer answers within half a second.
func (s *Server) Status(ctx context.Context, req *api.StatusRequest) (*api.StatusResponse, error) {
	self, _ := s.GetNodeStatus(ctx, nil)
	peers, err := s.peers(ctx)
	if err != nil {
		return nil, err
	}
	resp := &api.StatusResponse{Node: self, LeaderId: self.LeaderId, Peers: peers, LeaderChangesWindowS: int32(churnWindow.Seconds())}
	n, warning := s.churn.recent(time.Now())
	resp.LeaderChanges, resp.Warning = int32(n), warning
	if m, ok := s.fsm.Member(self.LeaderId); ok {
		resp.LeaderApiAddr = m.APIAddr
	}
	s.fsm.Read(func(st *dag.State) {
		for _, e := range st.Executors() {
			resp.Executors++
			if e.Alive {
				resp.ExecutorsAlive++
			}
		}
		for _, j := range st.Jobs() {
			resp.Jobs++
			if j.Status == dag.JobRunning {
				resp.JobsRunning++
			}
		}
	})
	return resp, nil
}

// ListPeers returns the Raft configuration with each peer's report.
func (s *Server) ListPeers(ctx context.Context, req *api.ListPeersRequest) (*api.ListPeersResponse, error) {
	peers, err := s.peers(ctx)
	if err != nil {
		return nil, err
	}
	return &api.ListPeersResponse{Peers: peers}, nil
}

// peers lists the Raft configuration, asking every member for its own
// status in parallel.
func (s *Server) peers(ctx context.Context) ([]*api.Peer, error) {
	servers, err := s.node.Servers()
	if err != nil {
		return nil, rpcError(err)
	}
	out := make([]*api.Peer, len(servers))
	var wg sync.WaitGroup
	for i, sv := range servers {
		p := &api.Peer{Id: sv.ID, RaftAddr: sv.Addr, Voter: sv.Voter, Leader: sv.IsLeader, LastContactMs: -1}
		out[i] = p
		m, known := s.fsm.Member(sv.ID)
		if known {
			p.ApiAddr, p.HttpAddr = m.APIAddr, m.HTTPAddr
		}
		var ns *api.NodeStatus
		switch {
		case sv.ID == s.cfg.ID:
			ns, _ = s.GetNodeStatus(ctx, nil)
		case known && m.APIAddr != "":
			wg.Add(1)
			go func() {
				defer wg.Done()
				cc, err := s.fwd.conn(m.APIAddr)
				if err != nil {
					return
				}
				cctx, cancel := context.WithTimeout(ctx, 500*time.Millisecond)
				defer cancel()
				if ns, err := api.NewOperatorClient(cc).GetNodeStatus(cctx, &api.NodeStatusRequest{}); err == nil {
					fillPeer(p, ns)
				}
			}()
			continue
		}
		if ns != nil {
			fillPeer(p, ns)
		}
	}
	wg.Wait()
	sort.Slice(out, func(a, b int) bool { return out[a].Id < out[b].Id })
	return out, nil
}

func fillPeer(p *api.Peer, ns *api.NodeStatus) {
	p.Reachable = true
	p.State = ns.State
	p.Term = ns.Term
	p.CommitIndex = ns.CommitIndex
	p.AppliedIndex = ns.AppliedIndex
	p.LastContactMs = ns.LastContactMs
	p.LastSnapshotIndex = ns.LastSnapshotIndex
}

// AddPeer adds a voting member and records its addresses (leader; a
// follower forwards).
func (s *Server) AddPeer(ctx context.Context, req *api.AddPeerRequest) (*api.AddPeerResponse, error) {
	if req.Id == "" || req.RaftAddr == "" {
		return nil, invalid("add-peer needs an id and a raft address")
	}
	if err := s.node.AddVoter(req.Id, req.RaftAddr, 10*time.Second); err != nil {
		return nil, rpcError(err)
	}
	if req.ApiAddr != "" {
		if err := s.applyMember(fsm.Member{ID: req.Id, RaftAddr: req.RaftAddr, APIAddr: req.ApiAddr, HTTPAddr: req.HttpAddr}); err != nil {
			return nil, rpcError(err)
		}
	}
	s.log.Info("peer added", "peer", req.Id, "raft", req.RaftAddr)
	return &api.AddPeerResponse{}, nil
}

// RemovePeer removes a member (leader; a follower forwards).
func (s *Server) RemovePeer(ctx context.Context, req *api.RemovePeerRequest) (*api.RemovePeerResponse, error) {
	servers, err := s.node.Servers()
	if err != nil {
		return nil, rpcError(err)
	}
	found := false
	for _, sv := range servers {
		found = found || sv.ID == req.Id
	}
	if !found {
		return nil, status.Errorf(codes.NotFound, "no peer %q in the quorum", req.Id)
	}
	// Forget the addresses first: once the leader removes itself it can
	// no longer write. If the removal then fails, restore them.
	old, hadAddrs := s.fsm.Member(req.Id)
	if err := s.applyMember(fsm.Member{ID: req.Id, Removed: true}); err != nil {
		return nil, rpcError(err)
	}
	if err := s.node.RemoveServer(req.Id, 10*time.Second); err != nil {
		if hadAddrs {
			if rerr := s.applyMember(old); rerr != nil {
				s.log.Warn("could not restore a member's addresses after a failed removal", "peer", req.Id, "err", rerr)
			}
		}
		return nil, rpcError(err)
	}
	s.log.Info("peer removed", "peer", req.Id)
	return &api.RemovePeerResponse{}, nil
}

// TransferLeadership hands leadership to a member (leader; a follower
// forwards) and waits for the new leader.
func (s *Server) TransferLeadership(ctx context.Context, req *api.TransferLeadershipRequest) (*api.TransferLeadershipResponse, error) {
	if req.Id == s.cfg.ID {
		return &api.TransferLeadershipResponse{NewLeaderId: s.cfg.ID}, nil
	}
	if req.Id != "" {
		servers, err := s.node.Servers()
		if err != nil {
			return nil, rpcError(err)
		}
		found := false
		for _, sv := range servers {
			found = found || sv.ID == req.Id
		}
		if !found {
			return nil, status.Errorf(codes.NotFound, "no peer %q in the quorum", req.Id)
		}
	}
	if err := s.node.TransferLeadership(req.Id); err != nil {
		return nil, rpcError(err)
	}
	t := time.NewTicker(10 * time.Millisecond)
	defer t.Stop()
	for {
		if id, _ := s.node.Leader(); id != "" && id != s.cfg.ID {
			s.log.Info("leadership transferred", "to", id)
			return &api.TransferLeadershipResponse{NewLeaderId: id}, nil
		}
		select {
		case <-ctx.Done():
			return nil, status.Errorf(codes.DeadlineExceeded, "no new leader yet: %v", ctx.Err())
		case <-t.C:
		}
	}
}

// RegisterMember records a member's addresses (leader; a follower
// forwards).
func (s *Server) RegisterMember(ctx context.Context, req *api.RegisterMemberRequest) (*api.RegisterMemberResponse, error) {
	m := fsm.Member{ID: req.Id, RaftAddr: req.RaftAddr, APIAddr: req.ApiAddr, HTTPAddr: req.HttpAddr}
	if m.ID == "" {
		return nil, invalid("register-member needs an id")
	}
	if cur, ok := s.fsm.Member(m.ID); ok && cur == m {
		return &api.RegisterMemberResponse{}, nil
	}
	if err := s.applyMember(m); err != nil {
		return nil, rpcError(err)
	}
	return &api.RegisterMemberResponse{}, nil
}

// ReportResultLost logs that a job's indirect result could not be read:
// the partition runs again (leader; a follower forwards).
func (s *Server) ReportResultLost(ctx context.Context, req *api.ReportResultLostRequest) (*api.ReportResultLostResponse, error) {
	var cmd *dag.TaskEnded
	s.fsm.Read(func(st *dag.State) {
		info, ok := st.Job(dag.JobID(req.Job))
		if !ok || info.Tasks == 0 {
			return
		}
		stage, ok := st.Stage(info.FinalStage)
		if !ok {
			return
		}
		refs, finished, _ := st.Results(info.ID)
		exec := dag.ExecutorID("")
		for i, r := range refs {
			if finished[i] && r.Partition == int(req.Partition) {
				exec = r.Executor
			}
		}
		cmd = &dag.TaskEnded{Task: dag.TaskID(req.Task), Stage: stage.ID, StageAttempt: stage.Attempt, Partition: int(req.Partition),
			Executor: exec, Epoch: stage.Epoch, Reason: dag.ResultLost, Message: "result lost: " + req.Reason}
	})
	if cmd == nil {
		return nil, status.Errorf(codes.NotFound, "job %d has no result for partition %d", req.Job, req.Partition)
	}
	_, index, err := s.propose(ctx, cmd)
	if err != nil {
		return nil, err
	}
	return &api.ReportResultLostResponse{Index: index}, nil
}

func stateIndex(f interface{ Applied() (uint64, uint64) }) uint64 {
	i, _ := f.Applied()
	return i
}
