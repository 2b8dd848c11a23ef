package client

import (
	"context"

	"github.com/baton-sched/baton/api"
	"google.golang.org/grpc"
)

// ACLBootstrap turns the cluster's ACLs on and returns the first
// management token (its Secret is shown this once). It fails
// (FailedPrecondition) when the ACLs are already on.
func (c *Client) ACLBootstrap(ctx context.Context) (*api.ACLToken, error) {
	var resp *api.ACLBootstrapResponse
	err := c.write(ctx, func(ctx context.Context, cc *grpc.ClientConn) (err error) {
		resp, err = api.NewACLClient(cc).Bootstrap(ctx, &api.ACLBootstrapRequest{})
		return err
	})
	if err != nil {
		return nil, err
	}
	return resp.Token, nil
}

// CreateToken makes a token of a policy (read, submit, operator,
// management or executor); its Secret is shown this once.
func (c *Client) CreateToken(ctx context.Context, name, policy string) (*api.ACLToken, error) {
	var resp *api.CreateTokenResponse
	err := c.write(ctx, func(ctx context.Context, cc *grpc.ClientConn) (err error) {
		resp, err = api.NewACLClient(cc).CreateToken(ctx, &api.CreateTokenRequest{Name: name, Policy: policy})
		return err
	})
	if err != nil {
		return nil, err
	}
	return resp.Token, nil
}

// Tokens lists the tokens (without secrets).
func (c *Client) Tokens(ctx context.Context) ([]*api.ACLToken, error) {
	var resp *api.ListTokensResponse
	err := c.call(ctx, func(ctx context.Context, cc *grpc.ClientConn) (err error) {
		resp, err = api.NewACLClient(cc).ListTokens(ctx, &api.ListTokensRequest{})
		return err
	})
	if err != nil {
		return nil, err
	}
	return resp.Tokens, nil
}

// DeleteToken deletes a token by its accessor.
func (c *Client) DeleteToken(ctx context.Context, accessor string) error {
	return c.write(ctx, func(ctx context.Context, cc *grpc.ClientConn) error {
		_, err := api.NewACLClient(cc).DeleteToken(ctx, &api.DeleteTokenRequest{Accessor: accessor})
		return err
	})
}
