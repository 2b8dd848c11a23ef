package blockstore

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/binary"
)

// Block grants: once the cluster's ACLs are on, the block service serves
// a shuffle's blocks only to a fetch carrying that shuffle's grant (the
// leader puts it in the launches of the tasks that read the shuffle) and
// a job's results only to a fetch carrying the job's grant (members
// compute it). Grants are HMACs under the block key, which members derive
// from their shared secret and the leader hands executors when it
// welcomes them; the shared secret itself never leaves the members.

// Key derives the block key from the members' secret (nil: none).
func Key(secret []byte) []byte {
	if len(secret) == 0 {
		return nil
	}
	m := hmac.New(sha256.New, secret)
	m.Write([]byte("baton block grants v1"))
	return m.Sum(nil)
}

func grant(key []byte, kind byte, id uint64) []byte {
	if len(key) == 0 {
		return nil
	}
	m := hmac.New(sha256.New, key)
	var b [9]byte
	b[0] = kind
	binary.BigEndian.PutUint64(b[1:], id)
	m.Write(b[:])
	return m.Sum(nil)[:16]
}

// ShuffleGrant is the grant to read a shuffle's blocks.
func ShuffleGrant(key []byte, shuffle uint64) []byte { return grant(key, 's', shuffle) }

// ResultGrant is the grant to read a job's results.
func ResultGrant(key []byte, job uint64) []byte { return grant(key, 'r', job) }

func validGrant(key, got []byte, kind byte, id uint64) bool {
	return hmac.Equal(got, grant(key, kind, id))
}
