package raftnet

import (
	"crypto/tls"
	"fmt"
	"log/slog"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/raft"
)

// TLS runs Raft over mutual TLS. raftnet makes no certificates and knows
// no roles: the caller's configurations and Identify decide which
// certificates belong to servers of the cluster, and raftnet serves a
// connection only if the server id its certificate names is a current
// member. A process holding no member's certificate can neither append
// entries nor ask for votes. A node that holds no configuration yet (it
// is joining) accepts any server Identify accepts: the leader adding it
// is the first to call.
type TLS struct {
	// Server configures the listener. It must require and verify a
	// client certificate (ClientAuth tls.RequireAndVerifyClientCert).
	Server *tls.Config
	// Client configures dials to other members; it must verify their
	// certificates (and present this node's).
	Client *tls.Config
	// Identify returns the server id a caller's verified certificate
	// names, or an error when the certificate is not a server's of the
	// cluster at all. It runs after the handshake, on the connection's
	// goroutine, and must not block.
	Identify func(tls.ConnectionState) (id string, err error)
}

func (t *TLS) validate() error {
	var errs []string
	if t.Server == nil {
		errs = append(errs, "no server configuration")
	} else if t.Server.ClientAuth != tls.RequireAndVerifyClientCert {
		errs = append(errs, "the server configuration must require and verify client certificates")
	}
	if t.Client == nil {
		errs = append(errs, "no client configuration")
	}
	if t.Identify == nil {
		errs = append(errs, "no Identify")
	}
	if len(errs) > 0 {
		return fmt.Errorf("TLS: %s", strings.Join(errs, ", "))
	}
	return nil
}

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
	tls     *TLS
	members *members
	log     *slog.Logger
}

func (s *tlsStream) Accept() (net.Conn, error) {
	c, err := s.Listener.Accept()
	if err != nil {
		return nil, err
	}
	tc := tls.Server(c, s.tls.Server)
	return &checkedConn{Conn: tc, check: func() error {
		tc.SetDeadline(time.Now().Add(10 * time.Second))
		if err := tc.Handshake(); err != nil {
			return fmt.Errorf("raftnet: TLS handshake with %s: %w", c.RemoteAddr(), err)
		}
		tc.SetDeadline(time.Time{})
		st := tc.ConnectionState()
		if len(st.VerifiedChains) == 0 {
			return fmt.Errorf("raftnet: Raft call from %s refused: no verified certificate", c.RemoteAddr())
		}
		id, err := s.tls.Identify(st)
		if err != nil {
			return fmt.Errorf("raftnet: Raft call from %s refused: %w", c.RemoteAddr(), err)
		}
		if !s.members.allowed(id) {
			return fmt.Errorf("raftnet: Raft call from %s refused: its certificate names %q, which is not a member of the quorum", c.RemoteAddr(), id)
		}
		return nil
	}, log: s.log}, nil
}

func (s *tlsStream) Dial(addr raft.ServerAddress, timeout time.Duration) (net.Conn, error) {
	d := &net.Dialer{Timeout: timeout}
	return tls.DialWithDialer(d, "tcp", string(addr), s.tls.Client)
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
