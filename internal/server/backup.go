package server

import (
	"bytes"
	"errors"
	"io"
	"time"

	"github.com/baton-sched/baton/api"
	"github.com/baton-sched/baton/fsm"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// maxBackup bounds a backup a restore accepts.
const maxBackup = 1 << 30

// notLeader is a streaming call's answer on a follower: the client goes
// to the leader named (streams are not forwarded).
func (s *Server) notLeader() error {
	id, addr := s.leaderAPI()
	switch {
	case id == "":
		return status.Errorf(codes.Unavailable, "node %s is not the leader and no leader is known (an election may be under way); retry", s.cfg.ID)
	case addr == "":
		return status.Errorf(codes.Unavailable, "node %s is not the leader; the leader %s has not published its API address yet; retry", s.cfg.ID, id)
	}
	return status.Errorf(codes.FailedPrecondition, "not the leader; the leader is %s at %s", id, addr)
}

// SnapshotSave streams a backup of the replicated state: the leader's,
// after a barrier, so it holds every write acknowledged before the call.
func (s *Server) SnapshotSave(req *api.SnapshotSaveRequest, stream grpc.ServerStreamingServer[api.SnapshotChunk]) error {
	if !s.node.IsLeader() {
		return s.notLeader()
	}
	if err := s.node.Barrier(10 * time.Second); err != nil {
		return status.Errorf(codes.Unavailable, "server: barrier before a backup: %v", err)
	}
	data, index, err := s.fsm.Backup()
	if err != nil {
		return status.Errorf(codes.Internal, "server: backup: %v", err)
	}
	const chunk = 1 << 20
	for first := true; first || len(data) > 0; first = false {
		n := min(chunk, len(data))
		msg := &api.SnapshotChunk{Data: data[:n]}
		if first {
			msg.Index = index
		}
		if err := stream.Send(msg); err != nil {
			return err
		}
		data = data[n:]
	}
	s.log.Info("backup taken", "index", index)
	return nil
}

// SnapshotRestore replaces the replicated state with a backup, checked in
// full first: a corrupt or foreign file changes nothing.
func (s *Server) SnapshotRestore(stream grpc.ClientStreamingServer[api.SnapshotChunk, api.SnapshotRestoreResponse]) error {
	if !s.node.IsLeader() {
		return s.notLeader()
	}
	var buf bytes.Buffer
	for {
		m, err := stream.Recv()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return err
		}
		if buf.Len()+len(m.Data) > maxBackup {
			return status.Errorf(codes.InvalidArgument, "backup larger than %d bytes", maxBackup)
		}
		buf.Write(m.Data)
	}
	if err := fsm.CheckBackup(buf.Bytes()); err != nil {
		return status.Errorf(codes.InvalidArgument, "not a backup this build can restore: %v", err)
	}
	// A backup carries the ACL system it was taken with: one taken before
	// ACLs were bootstrapped would turn them off.
	if on, _ := fsm.BackupHasACL(buf.Bytes()); !on && s.fsm.ACLBootstrapped() {
		return status.Error(codes.FailedPrecondition, "server: the backup was taken before ACLs were bootstrapped; restoring it would turn them off")
	}
	// The member table is this quorum's, not the backup's: put it back.
	members := s.fsm.Members()
	if err := s.node.Restore(buf.Bytes(), time.Minute); err != nil {
		return status.Errorf(codes.Unavailable, "server: restore: %v", err)
	}
	for _, m := range members {
		if err := s.applyMember(m); err != nil {
			s.log.Warn("restoring a member's addresses after a restore", "member", m.ID, "err", err)
		}
	}
	// The driver starts over from the restored state, as a new leader.
	s.drv.Restart()
	s.log.Warn("state restored from a backup", "bytes", buf.Len())
	return stream.SendAndClose(&api.SnapshotRestoreResponse{})
}
