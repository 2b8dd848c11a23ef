package driver

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/binary"

	"github.com/baton-sched/baton/api"
)

// Launch tickets: a leader signs each attempt it launches (the attempt's
// identity and the executor it went to) with the members' secret from the
// replicated state, so that a later leader adopts, after a failover, only
// attempts some leader really launched to that executor. With no secret
// (ACLs not bootstrapped) attempts carry no ticket and adoption trusts
// the executor, as before.

const ticketLen = 16

func ticket(key []byte, id *api.TaskID, exec string) []byte {
	if len(key) == 0 {
		return nil
	}
	m := hmac.New(sha256.New, key)
	var b [8 * 7]byte
	binary.BigEndian.PutUint64(b[0:], id.Task)
	binary.BigEndian.PutUint64(b[8:], id.Job)
	binary.BigEndian.PutUint64(b[16:], id.Stage)
	binary.BigEndian.PutUint64(b[24:], uint64(id.StageAttempt))
	binary.BigEndian.PutUint64(b[32:], uint64(id.Partition))
	binary.BigEndian.PutUint64(b[40:], uint64(id.Attempt))
	binary.BigEndian.PutUint64(b[48:], id.Epoch)
	m.Write(b[:])
	m.Write([]byte(exec))
	return m.Sum(nil)[:ticketLen]
}

// validTicket reports whether an attempt an executor reports was launched
// to it (always true without a key).
func validTicket(key []byte, id *api.TaskID, exec string) bool {
	if len(key) == 0 {
		return true
	}
	return hmac.Equal(id.Ticket, ticket(key, id, exec))
}
