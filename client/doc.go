// Package client is Baton's Go client. It dials the quorum through any of
// its members' API addresses; any member accepts any call (writes are
// forwarded to the leader), and the client moves on to another member when
// one is unavailable or a leader election is under way, so its calls ride
// through the loss of a member, the leader included.
//
//	c, err := client.Dial([]string{"127.0.0.1:7101", "127.0.0.1:7102", "127.0.0.1:7103"}, client.Options{})
//	...
//	id, err := c.Submit(ctx, p, client.SubmitOptions{})
//	job, err := c.Wait(ctx, id, nil)
//
// Jobs are written as plans (package plan) or, Spark style, with the
// dataset API: c.TextFile(glob, 8).FlatMap("words")...Collect(ctx) (see
// Dataset).
package client
