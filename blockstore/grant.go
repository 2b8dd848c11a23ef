package blockstore

import (
	"crypto/ed25519"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/binary"
	"sync"
)

// Block grants: once the cluster's ACLs are on, the block service serves
// a shuffle's blocks only to the executor a grant names, and a job's
// results only to members. The leader puts a grant for each shuffle a
// task reads in the task's launch, made for the executor it launches to;
// members make result grants for themselves.
//
// Grants are Ed25519 signatures. The members derive the signing key from
// their shared secret, so every leader makes the same grants, and hand
// executors only the public key, in the welcome: an executor can check a
// grant but not make one, and a grant made for one executor is refused
// from another (whose certificate names it, when TLS is on).

// Signer makes block grants. A nil *Signer (ACLs off) makes empty ones.
type Signer struct {
	priv ed25519.PrivateKey
}

// NewSigner derives the signing key from the members' secret (empty:
// none, nil).
func NewSigner(secret []byte) *Signer {
	if len(secret) == 0 {
		return nil
	}
	m := hmac.New(sha256.New, secret)
	m.Write([]byte("baton block grants v2"))
	return &Signer{priv: ed25519.NewKeyFromSeed(m.Sum(nil))}
}

// Public returns the key executors check grants with (nil for nil).
func (s *Signer) Public() []byte {
	if s == nil {
		return nil
	}
	return s.priv.Public().(ed25519.PublicKey)
}

// ShuffleGrant is the grant for the executor holder to read a shuffle's
// blocks.
func (s *Signer) ShuffleGrant(shuffle uint64, holder string) []byte {
	return s.sign('s', shuffle, holder)
}

// ResultGrant is a member's grant to read a job's results.
func (s *Signer) ResultGrant(job uint64) []byte { return s.sign('r', job, "") }

func (s *Signer) sign(kind byte, id uint64, holder string) []byte {
	if s == nil {
		return nil
	}
	return ed25519.Sign(s.priv, grantMessage(kind, id, holder))
}

func grantMessage(kind byte, id uint64, holder string) []byte {
	b := make([]byte, 0, 24+len(holder))
	b = append(b, "baton grant"...)
	b = append(b, kind)
	b = binary.BigEndian.AppendUint64(b, id)
	return append(b, holder...)
}

// verifier checks grants, remembering those it has checked: a reducer's
// grant is the same for every task of a stage on an executor, and a
// signature check costs tens of microseconds.
type verifier struct {
	mu   sync.Mutex
	pub  string
	good map[string]bool
}

// maxVerified bounds the grants a verifier remembers.
const maxVerified = 8192

func (v *verifier) valid(pub, got []byte, kind byte, id uint64, holder string) bool {
	if len(pub) != ed25519.PublicKeySize || len(got) != ed25519.SignatureSize {
		return false
	}
	msg := grantMessage(kind, id, holder)
	k := string(msg) + string(got)
	v.mu.Lock()
	if v.pub != string(pub) || len(v.good) >= maxVerified {
		v.pub, v.good = string(pub), map[string]bool{}
	}
	ok := v.good[k]
	v.mu.Unlock()
	if ok {
		return true
	}
	if !ed25519.Verify(pub, msg, got) {
		return false
	}
	v.mu.Lock()
	if v.pub == string(pub) {
		v.good[k] = true
	}
	v.mu.Unlock()
	return true
}
