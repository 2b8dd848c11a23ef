package fsm

import (
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"errors"
	"fmt"
	"sort"

	"github.com/baton-sched/baton/fsm/fsmpb"
	"google.golang.org/protobuf/proto"
)

// The ACL system, replicated beside the scheduler state: off until
// bootstrapped, then every API call needs a token whose policy allows it.
// The state keeps a token's SHA-256, never its secret.

// Policies a token may have. read sees everything; submit also submits,
// cancels and releases jobs; operator also changes the quorum (peers,
// leadership); management also manages tokens and saves and restores
// backups (which hold the ACL system). executor joins executors to the
// quorum and nothing else.
const (
	PolicyRead       = "read"
	PolicySubmit     = "submit"
	PolicyOperator   = "operator"
	PolicyManagement = "management"
	PolicyExecutor   = "executor"
)

// Policies lists the policies, weakest first.
var Policies = []string{PolicyRead, PolicySubmit, PolicyOperator, PolicyManagement, PolicyExecutor}

// ValidPolicy reports whether p names a policy.
func ValidPolicy(p string) bool {
	for _, q := range Policies {
		if p == q {
			return true
		}
	}
	return false
}

// Token is an API token as the state keeps it.
type Token struct {
	Accessor   string `json:"accessor"`
	SecretHash []byte `json:"-"`
	Name       string `json:"name"`
	Policy     string `json:"policy"`
	Created    int64  `json:"createUnixNano"`
}

// HashSecret is what the state keeps of a token's secret.
func HashSecret(secret string) []byte {
	h := sha256.Sum256([]byte(secret))
	return h[:]
}

// ACLCommand is one change to the ACL system: exactly one field is set.
type ACLCommand struct {
	// Bootstrap turns ACLs on with the first management token and the
	// secret members present to one another.
	Bootstrap *ACLBootstrap
	// Set creates a token.
	Set *Token
	// Delete deletes the token with this accessor.
	Delete string
	// Bind binds an executor id to a principal.
	Bind *ExecutorBind
}

// ExecutorBind binds an executor id to the identity that registered it:
// "token:<accessor>" (bound until the token is deleted) or "cert:<name>".
type ExecutorBind struct {
	Executor, Principal string
}

// ACLBootstrap turns ACLs on.
type ACLBootstrap struct {
	Management   Token
	ServerSecret []byte
}

// Business errors of ACL commands (results, never crashes).
var (
	ErrACLBootstrapped    = errors.New("fsm: ACLs are already bootstrapped")
	ErrACLNotBootstrapped = errors.New("fsm: ACLs are not bootstrapped")
	ErrNoToken            = errors.New("fsm: no such token")
	ErrBadToken           = errors.New("fsm: bad token")
	ErrLastManagement     = errors.New("fsm: the last management token cannot be deleted")
	ErrExecutorBound      = errors.New("fsm: the executor id is bound to another identity")
)

// EncodeACL returns the log entry of an ACL change.
func EncodeACL(now int64, c ACLCommand) ([]byte, error) {
	var (
		typ fsmpb.Type
		msg proto.Message
	)
	switch {
	case c.Bootstrap != nil:
		typ, msg = fsmpb.Type_TYPE_ACL_BOOTSTRAP, &fsmpb.ACLBootstrap{Management: tokenToProto(c.Bootstrap.Management), ServerSecret: c.Bootstrap.ServerSecret}
	case c.Set != nil:
		typ, msg = fsmpb.Type_TYPE_ACL_TOKEN_SET, tokenToProto(*c.Set)
	case c.Delete != "":
		typ, msg = fsmpb.Type_TYPE_ACL_TOKEN_DELETE, &fsmpb.ACLTokenDelete{Accessor: c.Delete}
	case c.Bind != nil:
		typ, msg = fsmpb.Type_TYPE_ACL_EXECUTOR_BIND, &fsmpb.ACLExecutorBind{Executor: c.Bind.Executor, Principal: c.Bind.Principal}
	default:
		return nil, errors.New("fsm: encode acl: empty command")
	}
	// Never skipped (see clusterCommands): a member that did not know
	// ACLs would let anyone in.
	return encodeCluster(now, typ, msg)
}

func tokenToProto(t Token) *fsmpb.ACLToken {
	return &fsmpb.ACLToken{Accessor: t.Accessor, SecretHash: t.SecretHash, Name: t.Name, Policy: t.Policy, CreateUnixNano: t.Created}
}

func tokenFromProto(m *fsmpb.ACLToken) Token {
	if m == nil {
		return Token{}
	}
	return Token{Accessor: m.Accessor, SecretHash: m.SecretHash, Name: m.Name, Policy: m.Policy, Created: m.CreateUnixNano}
}

// acl is the ACL system's state.
type acl struct {
	bootstrapped bool
	serverSecret []byte
	tokens       map[string]Token    // by accessor
	byHash       map[[32]byte]string // secret hash -> accessor
	executors    map[string]string   // executor id -> principal
}

func newACL() acl {
	return acl{tokens: map[string]Token{}, byHash: map[[32]byte]string{}, executors: map[string]string{}}
}

// tokenPrincipal is the principal of a session that joined with a token.
func tokenPrincipal(accessor string) string { return "token:" + accessor }

func checkToken(t Token) error {
	if t.Accessor == "" || len(t.SecretHash) != sha256.Size || !ValidPolicy(t.Policy) {
		return fmt.Errorf("%w: accessor %q, policy %q, %d-byte hash", ErrBadToken, t.Accessor, t.Policy, len(t.SecretHash))
	}
	return nil
}

func (a *acl) add(t Token) {
	a.tokens[t.Accessor] = t
	a.byHash[[32]byte(t.SecretHash)] = t.Accessor
}

// apply applies one command; a refused one is a result, never a crash.
func (a *acl) apply(c *ACLCommand) error {
	switch {
	case c.Bootstrap != nil:
		if a.bootstrapped {
			return ErrACLBootstrapped
		}
		if err := checkToken(c.Bootstrap.Management); err != nil {
			return err
		}
		if c.Bootstrap.Management.Policy != PolicyManagement || len(c.Bootstrap.ServerSecret) < 16 {
			return fmt.Errorf("%w: a bootstrap needs a management token and a server secret", ErrBadToken)
		}
		a.bootstrapped = true
		a.serverSecret = append([]byte(nil), c.Bootstrap.ServerSecret...)
		a.add(c.Bootstrap.Management)
	case c.Set != nil:
		if !a.bootstrapped {
			return ErrACLNotBootstrapped
		}
		if err := checkToken(*c.Set); err != nil {
			return err
		}
		if _, dup := a.tokens[c.Set.Accessor]; dup {
			return fmt.Errorf("%w: accessor %s exists", ErrBadToken, c.Set.Accessor)
		}
		if _, dup := a.byHash[[32]byte(c.Set.SecretHash)]; dup {
			return fmt.Errorf("%w: secret in use", ErrBadToken)
		}
		a.add(*c.Set)
	case c.Delete != "":
		t, ok := a.tokens[c.Delete]
		if !ok {
			return fmt.Errorf("%w: %s", ErrNoToken, c.Delete)
		}
		if t.Policy == PolicyManagement {
			n := 0
			for _, o := range a.tokens {
				if o.Policy == PolicyManagement {
					n++
				}
			}
			if n == 1 {
				return ErrLastManagement
			}
		}
		delete(a.tokens, c.Delete)
		delete(a.byHash, [32]byte(t.SecretHash))
		for id, p := range a.executors {
			if p == tokenPrincipal(c.Delete) {
				delete(a.executors, id) // released with its token
			}
		}
	case c.Bind != nil:
		if !a.bootstrapped {
			return ErrACLNotBootstrapped
		}
		if c.Bind.Executor == "" || c.Bind.Principal == "" || len(c.Bind.Executor)+len(c.Bind.Principal) > 1024 {
			return fmt.Errorf("%w: executor binding %q to %q", ErrBadToken, c.Bind.Executor, c.Bind.Principal)
		}
		switch p, ok := a.executors[c.Bind.Executor]; {
		case ok && p != c.Bind.Principal:
			return fmt.Errorf("%w: %s", ErrExecutorBound, c.Bind.Executor)
		case !ok && len(a.executors) >= MaxExecutorBindings:
			return fmt.Errorf("%w: %d executor ids are bound already", ErrBadToken, len(a.executors))
		}
		a.executors[c.Bind.Executor] = c.Bind.Principal
	}
	return nil
}

// MaxExecutorBindings bounds the executor ids the ACL system binds.
const MaxExecutorBindings = 100000

// ExecutorOwner returns the principal an executor id is bound to.
func (f *FSM) ExecutorOwner(id string) (string, bool) {
	f.mu.RLock()
	defer f.mu.RUnlock()
	p, ok := f.acl.executors[id]
	return p, ok
}

func (a *acl) toProto(m *fsmpb.Members) {
	m.AclBootstrapped, m.AclServerSecret = a.bootstrapped, a.serverSecret
	ids := make([]string, 0, len(a.tokens))
	for id := range a.tokens {
		ids = append(ids, id)
	}
	sort.Strings(ids)
	for _, id := range ids {
		m.AclTokens = append(m.AclTokens, tokenToProto(a.tokens[id]))
	}
	ids = ids[:0]
	for id := range a.executors {
		ids = append(ids, id)
	}
	sort.Strings(ids)
	for _, id := range ids {
		m.AclExecutors = append(m.AclExecutors, &fsmpb.ACLExecutorBind{Executor: id, Principal: a.executors[id]})
	}
}

func aclFromProto(m *fsmpb.Members) (acl, error) {
	a := newACL()
	a.bootstrapped, a.serverSecret = m.AclBootstrapped, m.AclServerSecret
	for _, pt := range m.AclTokens {
		t := tokenFromProto(pt)
		if err := checkToken(t); err != nil {
			return acl{}, err
		}
		a.add(t)
	}
	for _, b := range m.AclExecutors {
		if b.Executor == "" || b.Principal == "" {
			return acl{}, fmt.Errorf("%w: an empty executor binding", ErrBadToken)
		}
		a.executors[b.Executor] = b.Principal
	}
	return a, nil
}

// ACLBootstrapped reports whether the ACL system is on.
func (f *FSM) ACLBootstrapped() bool {
	f.mu.RLock()
	defer f.mu.RUnlock()
	return f.acl.bootstrapped
}

// Credential is what a presented secret is to the ACL system.
type Credential struct {
	// On: ACLs are bootstrapped (otherwise nothing else is set).
	On bool
	// Member: the secret is the members' own (hex-encoded).
	Member bool
	// Token is the token it is, when Found and not Member.
	Token Token
	Found bool
}

// Identify resolves a presented secret in one read of the ACL state: the
// members' secret (compared in constant time) or a token's.
func (f *FSM) Identify(secret string) Credential {
	h := sha256.Sum256([]byte(secret))
	raw, hexErr := hex.DecodeString(secret)
	f.mu.RLock()
	defer f.mu.RUnlock()
	a := &f.acl
	if !a.bootstrapped {
		return Credential{}
	}
	if hexErr == nil && len(a.serverSecret) > 0 && subtle.ConstantTimeCompare(raw, a.serverSecret) == 1 {
		return Credential{On: true, Member: true, Found: true}
	}
	id, ok := a.byHash[h]
	if !ok {
		return Credential{On: true}
	}
	return Credential{On: true, Token: a.tokens[id], Found: true}
}

// ResolveToken returns the token whose secret this is.
func (f *FSM) ResolveToken(secret string) (Token, bool) {
	h := sha256.Sum256([]byte(secret))
	f.mu.RLock()
	defer f.mu.RUnlock()
	id, ok := f.acl.byHash[h]
	if !ok {
		return Token{}, false
	}
	return f.acl.tokens[id], true
}

// Tokens returns the tokens, sorted by accessor.
func (f *FSM) Tokens() []Token {
	f.mu.RLock()
	defer f.mu.RUnlock()
	out := make([]Token, 0, len(f.acl.tokens))
	for _, t := range f.acl.tokens {
		out = append(out, t)
	}
	sort.Slice(out, func(a, b int) bool { return out[a].Accessor < out[b].Accessor })
	return out
}

// ServerSecret returns the secret members present to one another (nil
// before bootstrap).
func (f *FSM) ServerSecret() []byte {
	f.mu.RLock()
	defer f.mu.RUnlock()
	return append([]byte(nil), f.acl.serverSecret...)
}

// BackupHasACL reports whether a backup was taken with ACLs on.
func BackupHasACL(data []byte) (bool, error) {
	c, err := decodeSnapshotBytes(data)
	if err != nil {
		return false, err
	}
	return c.acl.bootstrapped, nil
}
