package raftnet

import (
	"crypto/tls"
	"fmt"
	"log/slog"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/baton-sched/baton/tlsconf"
	"github.com/hashicorp/raft"
)

// With TLS, Raft runs over mutual TLS between server certificates of the
// cluster's CA, and a connection is served only if its certificate names a
// current member (its name is the member's server id): a process holding
// no member's certificate can neither append entries nor ask for votes.
// A node that holds no configuration yet (it is joining) accepts any
// server of the CA: the leader adding it is the first to call.

// members is the current configuration's server ids, cached: the check
// runs on the transport's goroutines, which must not wait on Raft's loop.
type members struct {
	ids atomic.Pointer[map[string]bool]
}

func (m *members) set(cfg raft.Configuration) {
	ids := map[string]bool{}
	for _, s := range cfg.Servers {
		ids[string(s.ID)] = true
	}
	m.ids.Store(&ids)
}

// allowed reports whether a server of this name may make Raft calls.
func (m *members) allowed(name string) bool {
	ids := m.ids.Load()
	if ids == nil || len(*ids) == 0 {
		return true
	}
	return (*ids)[name]
}

// tlsStream is a streamLayer over TLS.
type tlsStream struct {
	streamLayer
	tls     *tlsconf.Config
	members *members
	log     *slog.Logger
}

func (s *tlsStream) Accept() (net.Conn, error) {
	c, err := s.Listener.Accept()
	if err != nil {
		return nil, err
	}
	tc := tls.Server(c, s.tls.Server(true))
	return &checkedConn{Conn: tc, check: func() error {
		tc.SetDeadline(time.Now().Add(10 * time.Second))
		if err := tc.Handshake(); err != nil {
			return fmt.Errorf("raftnet: TLS handshake with %s: %w", c.RemoteAddr(), err)
		}
		tc.SetDeadline(time.Time{})
		p, err := tlsconf.PeerOf(tc.ConnectionState())
		if err != nil {
			return fmt.Errorf("raftnet: Raft call from %s: %w", c.RemoteAddr(), err)
		}
		if p.Role != tlsconf.RoleServer {
			return fmt.Errorf("raftnet: Raft call from %s refused: its certificate is a %s's (%s), not a server's", c.RemoteAddr(), p.Role, p.Name)
		}
		if !s.members.allowed(p.Name) {
			return fmt.Errorf("raftnet: Raft call from %s refused: its certificate names %q, which is not a member of the quorum", c.RemoteAddr(), p.Name)
		}
		return nil
	}, log: s.log}, nil
}

func (s *tlsStream) Dial(addr raft.ServerAddress, timeout time.Duration) (net.Conn, error) {
	d := &net.Dialer{Timeout: timeout}
	return tls.DialWithDialer(d, "tcp", string(addr), s.tls.Client(tlsconf.RoleServer))
}

// checkedConn checks its peer before the first byte is read from it (on
// the goroutine serving the connection, not the accept loop).
type checkedConn struct {
	net.Conn
	check func() error
	log   *slog.Logger
	once  sync.Once
	err   error
}

// verified checks the peer once, before the first byte either way.
func (c *checkedConn) verified() error {
	c.once.Do(func() {
		if c.err = c.check(); c.err != nil {
			c.log.Warn("refused a Raft connection", "err", c.err)
			c.Conn.Close()
		}
	})
	return c.err
}

func (c *checkedConn) Read(b []byte) (int, error) {
	if err := c.verified(); err != nil {
		return 0, err
	}
	return c.Conn.Read(b)
}

func (c *checkedConn) Write(b []byte) (int, error) {
	if err := c.verified(); err != nil {
		return 0, err
	}
	return c.Conn.Write(b)
}
