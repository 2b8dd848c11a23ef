package blockstore

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/baton-sched/baton/api"
	"github.com/baton-sched/baton/internal/grpcdial"
	"github.com/baton-sched/baton/tlsconf"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/connectivity"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/keepalive"
	"google.golang.org/grpc/status"
)

// chunkSize bounds the data in one streamed message.
const chunkSize = 1 << 20

// Service serves a Store's blocks over gRPC (api.Blocks): shuffle blocks
// to reducers, indirect results to the scheduler and clients.
type Service struct {
	api.UnimplementedBlocksServer
	Store *Store
	// Key returns the public key grants are checked with (Signer.Public)
	// and whether it is known yet (the executor learns it from the
	// leader's welcome). An empty known key serves anyone (ACLs off); an
	// unknown one serves no one. nil serves anyone.
	Key func() (key []byte, known bool)

	verified verifier
}

// allow checks a fetch: its grant, made for holder, and that the peer's
// certificate (when TLS is on) is that holder's: the executor a shuffle
// grant names, or a member for results. Clients read results through the
// members.
func (s *Service) allow(ctx context.Context, got []byte, kind byte, id uint64, holder string) error {
	p, tls := tlsconf.PeerFromContext(ctx)
	if tls && p.Role == tlsconf.RoleClient {
		return status.Errorf(codes.PermissionDenied, "blockstore: %s holds a client's certificate: blocks are served to executors and members only", p.Name)
	}
	if s.Key == nil {
		return nil
	}
	key, known := s.Key()
	switch {
	case !known:
		return status.Error(codes.Unavailable, "blockstore: this executor has not been welcomed by a leader yet; retry")
	case len(key) == 0:
		return nil
	case kind == 'r' && tls && p.Role != tlsconf.RoleServer:
		return status.Errorf(codes.PermissionDenied, "blockstore: %s is not a member: results are served to members only", p.Name)
	case kind == 's' && tls && p.Role == tlsconf.RoleExecutor && p.Name != holder:
		return status.Errorf(codes.PermissionDenied, "blockstore: the fetch's grant was made for executor %q, and %s's certificate names another", holder, p.Name)
	case !s.verified.valid(key, got, kind, id, holder):
		return status.Error(codes.PermissionDenied, "blockstore: the fetch carries no valid grant for these blocks (only the executors running the job's tasks, and members, may read them)")
	}
	return nil
}

// FetchShuffle streams the requested map outputs' blocks for a reducer,
// each verified; a block that is missing or corrupt is reported in its
// chunk, and the others are still sent.
func (s *Service) FetchShuffle(req *api.FetchShuffleRequest, stream grpc.ServerStreamingServer[api.BlockChunk]) error {
	if err := s.allow(stream.Context(), req.Grant, 's', req.Shuffle, req.Holder); err != nil {
		return err
	}
	for _, m := range req.Maps {
		sent := false
		err := s.Store.ShuffleSegments(req.Shuffle, int(m), int(req.Reduce), func(data []byte, last bool) error {
			sent = true
			return sendSegment(stream, m, data, !last)
		})
		if err != nil && stream.Context().Err() == nil {
			// Missing or corrupt (possibly after some segments): the
			// map's error ends its block.
			if err := sendBlock(stream, m, nil, err); err != nil {
				return err
			}
		}
		_ = sent
	}
	return nil
}

// FetchResult streams an indirect result.
func (s *Service) FetchResult(req *api.FetchResultRequest, stream grpc.ServerStreamingServer[api.BlockChunk]) error {
	if err := s.allow(stream.Context(), req.Grant, 'r', req.Job, ""); err != nil {
		return err
	}
	data, err := s.Store.Result(req.Job, req.Task)
	return sendBlock(stream, 0, data, err)
}

func sendBlock(stream grpc.ServerStreamingServer[api.BlockChunk], m int32, data []byte, err error) error {
	if err != nil {
		c := &api.BlockChunk{Map: m, Last: true, Message: err.Error(), Error: api.BlockError_BLOCK_ERROR_INTERNAL}
		switch {
		case errors.Is(err, ErrNotFound):
			c.Error = api.BlockError_BLOCK_ERROR_NOT_FOUND
		case errors.Is(err, ErrCorrupt):
			c.Error = api.BlockError_BLOCK_ERROR_CORRUPT
		}
		return stream.Send(c)
	}
	return sendSegment(stream, m, data, false)
}

// sendSegment sends a block, or one segment of a map's block (more: one
// follows), in chunks.
func sendSegment(stream grpc.ServerStreamingServer[api.BlockChunk], m int32, data []byte, more bool) error {
	for {
		n := min(len(data), chunkSize)
		last := n == len(data)
		if err := stream.Send(&api.BlockChunk{Map: m, Data: data[:n], Last: last, More: last && more}); err != nil {
			return err
		}
		data = data[n:]
		if last {
			return nil
		}
	}
}

// Conns keeps one gRPC connection per executor block service address.
type Conns struct {
	// Creds secure the connections (TLS to executors' block services);
	// nil: plain.
	Creds credentials.TransportCredentials
	// ResultGrant returns the grant result fetches of a job carry (a
	// member computes it; nil: none).
	ResultGrant func(job uint64) []byte

	mu    sync.Mutex
	conns map[string]*grpc.ClientConn
}

// KeepaliveTime and KeepaliveTimeout: a block connection with a call in
// progress that hears nothing for KeepaliveTime is pinged, and closed if
// the ping is not answered within KeepaliveTimeout. Block servers must
// allow pings this frequent (ServerOptions).
const (
	KeepaliveTime    = 5 * time.Second
	KeepaliveTimeout = 5 * time.Second
)

// ServerOptions are the gRPC server options a block service needs: it
// accepts the clients' keepalive pings.
func ServerOptions() []grpc.ServerOption {
	return []grpc.ServerOption{grpc.KeepaliveEnforcementPolicy(keepalive.EnforcementPolicy{MinTime: KeepaliveTime / 2})}
}

// ready returns a Blocks client for addr once its connection is up,
// waiting up to connectWait: an executor that restarted (its blocks are on
// disk) may be coming back, and a connection that failed before is in
// backoff. After that the executor is taken for gone (Spark also retries
// a fetch a little before giving up). The wait covers connecting only,
// never a transfer.
func (c *Conns) ready(ctx context.Context, addr string) (api.BlocksClient, error) {
	cc, err := c.conn(addr)
	if err != nil {
		return nil, err
	}
	wctx, cancel := context.WithTimeout(ctx, connectWait)
	defer cancel()
	for {
		s := cc.GetState()
		switch s {
		case connectivity.Ready:
			return api.NewBlocksClient(cc), nil
		case connectivity.Idle:
			cc.Connect()
		}
		if !cc.WaitForStateChange(wctx, s) {
			if err := ctx.Err(); err != nil {
				return nil, err
			}
			return nil, fmt.Errorf("blockstore: executor at %s unreachable for %v (connection %s)", addr, connectWait, s)
		}
	}
}

// Client returns a Blocks client for addr.
func (c *Conns) Client(addr string) (api.BlocksClient, error) {
	cc, err := c.conn(addr)
	if err != nil {
		return nil, err
	}
	return api.NewBlocksClient(cc), nil
}

func (c *Conns) conn(addr string) (*grpc.ClientConn, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.conns == nil {
		c.conns = map[string]*grpc.ClientConn{}
	}
	cc, ok := c.conns[addr]
	if !ok {
		var err error
		creds := c.Creds
		if creds == nil {
			creds = insecure.NewCredentials()
		}
		cc, err = grpc.NewClient(addr, grpc.WithTransportCredentials(creds), grpcdial.ConnectParams(),
			grpc.WithDefaultCallOptions(grpc.MaxCallRecvMsgSize(2*chunkSize)),
			// A peer that froze mid-stream (its kernel still acks) is
			// found by unanswered pings, not waited on forever.
			grpc.WithKeepaliveParams(keepalive.ClientParameters{Time: KeepaliveTime, Timeout: KeepaliveTimeout}))
		if err != nil {
			return nil, err
		}
		c.conns[addr] = cc
	}
	return cc, nil
}

// Close closes every connection.
func (c *Conns) Close() {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, cc := range c.conns {
		cc.Close()
	}
	c.conns = nil
}

// readBlock assembles one block from a stream's chunks. It returns the
// map index, the data, a block-level error (missing or corrupt), or a
// stream error.
func readBlock(stream grpc.ServerStreamingClient[api.BlockChunk]) (m int32, data []byte, blockErr, err error) {
	m, data, _, blockErr, err = readSegment(stream)
	return m, data, blockErr, err
}

// readSegment reads a block or a segment of one; more says another
// segment of the same map follows.
func readSegment(stream grpc.ServerStreamingClient[api.BlockChunk]) (m int32, data []byte, more bool, blockErr, err error) {
	for {
		c, err := stream.Recv()
		if err != nil {
			return m, nil, false, nil, err
		}
		m = c.Map
		if c.Error != api.BlockError_BLOCK_ERROR_NONE {
			be := fmt.Errorf("%s", c.Message)
			switch c.Error {
			case api.BlockError_BLOCK_ERROR_NOT_FOUND:
				be = fmt.Errorf("%w: %s", ErrNotFound, strings.TrimPrefix(c.Message, ErrNotFound.Error()+": "))
			case api.BlockError_BLOCK_ERROR_CORRUPT:
				be = fmt.Errorf("%w: %s", ErrCorrupt, strings.TrimPrefix(c.Message, ErrCorrupt.Error()+": "))
			}
			return m, nil, false, be, nil
		}
		if len(data)+len(c.Data) > maxSegment {
			return m, nil, false, fmt.Errorf("%w: a block of more than %d bytes", ErrCorrupt, maxSegment), nil
		}
		data = append(data, c.Data...)
		if c.Last {
			return m, data, c.More, nil, nil
		}
	}
}

// maxSegment bounds what one block read from the network may be: a
// sender that never ends a block cannot make the reader allocate without
// bound (a map output is written in segments far smaller).
const maxSegment = 1 << 30

// FetchResult reads an indirect result from the executor at addr.
func (c *Conns) FetchResult(ctx context.Context, addr string, job, task uint64) ([]byte, error) {
	cl, err := c.ready(ctx, addr)
	if err != nil {
		return nil, err
	}
	var g []byte
	if c.ResultGrant != nil {
		g = c.ResultGrant(job)
	}
	stream, err := cl.FetchResult(ctx, &api.FetchResultRequest{Job: job, Task: task, Grant: g})
	if err != nil {
		return nil, err
	}
	_, data, blockErr, err := readBlock(stream)
	if err != nil {
		return nil, err
	}
	return data, blockErr
}

// connectWait bounds the wait for an executor's block service.
const connectWait = 2 * time.Second
