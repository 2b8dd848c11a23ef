package cli

import (
	"context"
	"fmt"
	"time"

	"github.com/baton-sched/baton/api"
	pflag "github.com/spf13/pflag"
)

// The acl commands manage API tokens, as `nomad acl` does: bootstrap once
// (it prints the management token), then make a token per user, program
// and executor fleet with the least policy it needs.

func init() {
	register(&command{name: "acl bootstrap", summary: "turn ACLs on (once) and print the management token", examples: "batonctl acl bootstrap      # once: prints the management token",
		run: runACLBootstrap})
	register(&command{name: "acl token create", args: "-policy read|submit|operator|management|executor [-name NAME]", summary: "make a token; its secret is printed once", examples: "batonctl acl token create --policy submit --name etl\nbatonctl acl token create --policy executor --name fleet   # for execd --token",
		run: runTokenCreate, flags: tokenFlags})
	register(&command{name: "acl token list", summary: "the tokens (accessors, names and policies; never secrets)", examples: "batonctl acl token list\nbatonctl acl token list -o json",
		run: runTokenList})
	register(&command{name: "acl token delete", args: "ACCESSOR", summary: "delete a token: calls with it fail from then on", examples: "batonctl acl token delete ACCESSOR",
		run: runTokenDelete})
}

var tokenOpts struct{ name, policy string }

func tokenFlags(fs *pflag.FlagSet) {
	fs.StringVar(&tokenOpts.policy, "policy", "", "read, submit, operator, management or executor (required)")
	fs.StringVar(&tokenOpts.name, "name", "", "who or what holds the token")
}

func printToken(c *common, t *api.ACLToken) error {
	if c.json() || c.name() {
		return c.emit(tokenJSON(t), []string{t.Accessor}, nil)
	}
	fmt.Fprintf(c.env.Stdout, "Accessor ID  = %s\nSecret ID    = %s\nName         = %s\nPolicy       = %s\nCreated      = %s\n", t.Accessor, t.Secret, t.Name, t.Policy,
		time.Unix(0, t.CreateUnixNano).UTC().Format(time.RFC3339))
	return nil
}

func runACLBootstrap(ctx context.Context, c *common, args []string) error {
	if len(args) > 0 {
		return usagef("acl bootstrap takes no arguments")
	}
	cl, err := c.dial()
	if err != nil {
		return err
	}
	defer cl.Close()
	t, err := cl.ACLBootstrap(ctx)
	if err != nil {
		return err
	}
	return printToken(c, t)
}

func runTokenCreate(ctx context.Context, c *common, args []string) error {
	if len(args) > 0 {
		return usagef("acl token create takes flags only")
	}
	if tokenOpts.policy == "" {
		return usagef("acl token create needs -policy")
	}
	cl, err := c.dial()
	if err != nil {
		return err
	}
	defer cl.Close()
	t, err := cl.CreateToken(ctx, tokenOpts.name, tokenOpts.policy)
	if err != nil {
		return err
	}
	return printToken(c, t)
}

func runTokenList(ctx context.Context, c *common, args []string) error {
	if len(args) > 0 {
		return usagef("acl token list takes no arguments")
	}
	cl, err := c.dial()
	if err != nil {
		return err
	}
	defer cl.Close()
	ts, err := cl.Tokens(ctx)
	if err != nil {
		return err
	}
	if c.json() || c.name() {
		out := []tokenOut{}
		names := []string{}
		for _, t := range ts {
			out = append(out, tokenJSON(t))
			names = append(names, t.Accessor)
		}
		return c.emit(map[string]any{"tokens": out}, names, nil)
	}
	tw := table(c.env.Stdout)
	fmt.Fprintln(tw, "ACCESSOR\tNAME\tPOLICY\tCREATED")
	for _, t := range ts {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", t.Accessor, t.Name, t.Policy, time.Unix(0, t.CreateUnixNano).UTC().Format(time.RFC3339))
	}
	return tw.Flush()
}

func runTokenDelete(ctx context.Context, c *common, args []string) error {
	if len(args) != 1 {
		return usagef("acl token delete takes one accessor")
	}
	cl, err := c.dial()
	if err != nil {
		return err
	}
	defer cl.Close()
	if err := cl.DeleteToken(ctx, args[0]); err != nil {
		return err
	}
	fmt.Fprintf(c.env.Stdout, "token %s deleted\n", args[0])
	return nil
}
