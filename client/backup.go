package client

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/baton-sched/baton/api"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// leaderConn dials the leader's API (streams are served by the leader
// only): the caller closes it.
func (c *Client) leaderConn(ctx context.Context) (*grpc.ClientConn, error) {
	// A new leader publishes its address a moment after its election:
	// wait for it as long as calls retry.
	deadline := time.Now().Add(c.opts.RetryFor)
	for {
		st, err := c.Status(ctx)
		if err != nil {
			return nil, err
		}
		if st.LeaderApiAddr != "" {
			return grpc.NewClient(st.LeaderApiAddr, c.opts.dialOptions()...)
		}
		if time.Now().After(deadline) {
			return nil, errors.New("client: no leader known")
		}
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// Backup writes a backup of the replicated state to w (the leader's state
// after a barrier: every write acknowledged before the call is in it) and
// returns the log index it holds. Restore puts it back.
func (c *Client) Backup(ctx context.Context, w io.Writer) (uint64, error) {
	deadline := time.Now().Add(c.opts.RetryFor)
	for {
		index, written, err := c.backup(ctx, w)
		// Nothing written yet and the leader moved (an election): find
		// the new one and ask again, as long as calls retry.
		if err == nil || written || !leaderMoved(err) || time.Now().After(deadline) {
			return index, err
		}
		select {
		case <-ctx.Done():
			return 0, ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// leaderMoved reports an error that says the member asked no longer
// leads.
func leaderMoved(err error) bool {
	switch status.Code(err) {
	case codes.Unavailable:
		return true
	case codes.FailedPrecondition:
		return strings.Contains(status.Convert(err).Message(), "not the leader")
	}
	return false
}

func (c *Client) backup(ctx context.Context, w io.Writer) (index uint64, written bool, err error) {
	cc, err := c.leaderConn(ctx)
	if err != nil {
		return 0, false, err
	}
	defer cc.Close()
	stream, err := api.NewOperatorClient(cc).SnapshotSave(ctx, &api.SnapshotSaveRequest{})
	if err != nil {
		return 0, false, err
	}
	for first := true; ; first = false {
		m, err := stream.Recv()
		if errors.Is(err, io.EOF) {
			return index, written, nil
		}
		if err != nil {
			return 0, written, err
		}
		if first {
			index = m.Index
		}
		written = true
		if _, err := w.Write(m.Data); err != nil {
			return 0, written, fmt.Errorf("client: backup: %w", err)
		}
	}
}

// Restore replaces the replicated state with a backup read from r. The
// leader checks the whole backup first: a corrupt one changes nothing.
func (c *Client) Restore(ctx context.Context, r io.Reader) error {
	cc, err := c.leaderConn(ctx)
	if err != nil {
		return err
	}
	defer cc.Close()
	stream, err := api.NewOperatorClient(cc).SnapshotRestore(ctx)
	if err != nil {
		return err
	}
	buf := make([]byte, 1<<20)
	for {
		n, rerr := r.Read(buf)
		if n > 0 {
			if err := stream.Send(&api.SnapshotChunk{Data: append([]byte(nil), buf[:n]...)}); err != nil {
				break // the server's answer says why
			}
		}
		if errors.Is(rerr, io.EOF) {
			break
		}
		if rerr != nil {
			stream.CloseSend()
			return fmt.Errorf("client: restore: %w", rerr)
		}
	}
	_, err = stream.CloseAndRecv()
	return err
}
