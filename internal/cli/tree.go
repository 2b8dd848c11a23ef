package cli

import (
	"errors"
	"fmt"
	"strconv"
	"strings"

	"github.com/spf13/cobra"
	pflag "github.com/spf13/pflag"
)

// batonctl's commands are a cobra tree built from the registered
// commands at each Run: "job status" is the command status under the
// group job. Groups (job, operator raft, acl token, ...) only hold
// commands; stage and cache are commands that hold others too (stage ID,
// stage cancel ID). The global flags are persistent flags of the root,
// declared once. Flags are GNU style (--addr, -o), and the Go style the
// CLI began with (-addr, -wait) is rewritten to it before cobra parses
// (normalize), so both work.

// groups summarise the commands that only hold others.
var groups = map[string]string{
	"acl":               "access control: bootstrap, then tokens",
	"acl token":         "ACL tokens: create, list, delete",
	"job":               "one job: its status, results, cancellation and release",
	"operator":          "run the quorum: Raft peers, leader takeovers, snapshots",
	"operator raft":     "the Raft peers: list, add, remove, hand leadership over",
	"operator snapshot": "back up and restore the replicated state",
	"tls":               "the cluster's certificates: a CA, then one per server, executor and client",
	"tls ca":            "the cluster's certificate authority",
	"tls cert":          "certificates the cluster's CA signs",
}

// completionExamples are the examples of cobra's completion commands.
var completionExamples = map[string]string{
	"completion": `source <(batonctl completion bash)                        # bash, this shell
batonctl completion zsh > "${fpath[1]}/_batonctl"          # zsh, new shells
batonctl completion fish > ~/.config/fish/completions/batonctl.fish`,
	"completion bash":       "source <(batonctl completion bash)                           # this shell\nbatonctl completion bash > /etc/bash_completion.d/batonctl    # every new shell",
	"completion zsh":        "source <(batonctl completion zsh)                  # this shell\nbatonctl completion zsh > \"${fpath[1]}/_batonctl\"  # every new shell",
	"completion fish":       "batonctl completion fish | source\nbatonctl completion fish > ~/.config/fish/completions/batonctl.fish",
	"completion powershell": "batonctl completion powershell | Out-String | Invoke-Expression",
}

// Usage errors that Run reports itself (exit 2).
type (
	// needsCommand: a group was run without one of its commands.
	needsCommand struct{ cmd *cobra.Command }
	// unknownCommand: a word that names no command.
	unknownCommand struct {
		cmd  *cobra.Command // the last command the words named
		args []string       // the words after it, the first unknown
		help bool           // in 'batonctl help ...'
	}
	// flagError: pflag refused the command line.
	flagError struct {
		cmd *cobra.Command
		err error
	}
)

func (e needsCommand) Error() string   { return commandName(e.cmd) + " needs a command" }
func (e unknownCommand) Error() string { return "unknown command " + strconv.Quote(e.typed()) }
func (e flagError) Error() string      { return e.err.Error() }
func (e flagError) Unwrap() error      { return e.err }

// typed is the words up to the unknown one: "job stauts".
func (e unknownCommand) typed() string {
	return strings.TrimSpace(commandName(e.cmd) + " " + e.args[0])
}

// commandName is a command's path without "batonctl": "job status".
func commandName(cmd *cobra.Command) string {
	return strings.TrimSpace(strings.TrimPrefix(cmd.CommandPath(), cmd.Root().Name()))
}

// tree builds batonctl's command tree for one run with c.
func (c *common) tree() *cobra.Command {
	root := &cobra.Command{
		Use:     "batonctl",
		Short:   "batonctl is the command line of Baton, a DAG scheduler on a Raft quorum.",
		Example: rootExamples,
		Args:    cobra.ArbitraryArgs,
		RunE:    c.group,
		// Run prints errors itself, in batonctl's words.
		SilenceErrors:     true,
		SilenceUsage:      true,
		PersistentPreRunE: c.checkOutput,
	}
	root.SetOut(c.env.Stdout)
	root.SetErr(c.env.Stderr)
	root.SetHelpFunc(func(cmd *cobra.Command, _ []string) { writeHelp(c.env.Stdout, cmd) })
	root.SetHelpCommand(c.helpCommand())
	root.SetFlagErrorFunc(func(cmd *cobra.Command, err error) error { return flagError{cmd, err} })
	c.register(root.PersistentFlags())
	root.RegisterFlagCompletionFunc("output", cobra.FixedCompletions([]string{"table", "json", "name"}, cobra.ShellCompDirectiveNoFileComp))
	nodes := map[string]*cobra.Command{"": root}
	var node func(path string) *cobra.Command
	node = func(path string) *cobra.Command {
		if n := nodes[path]; n != nil {
			return n
		}
		i := strings.LastIndex(path, " ")
		parent := node(path[:max(i, 0)])
		n := &cobra.Command{Use: path[i+1:], Short: groups[path], Args: cobra.ArbitraryArgs, RunE: c.group}
		parent.AddCommand(n)
		nodes[path] = n
		return n
	}
	for _, cmd := range commands {
		n := node(cmd.name)
		n.Use = strings.TrimSpace(n.Name() + " " + cmd.args)
		n.Short, n.Example, n.RunE = cmd.summary, cmd.examples, c.runner(cmd)
		if cmd.flags != nil {
			cmd.flags(n.Flags())
		}
	}
	root.InitDefaultCompletionCmd()
	for _, n := range root.Commands() {
		if n.Name() == "completion" {
			n.Use = "completion bash|zsh|fish|powershell"
			n.Short = "a shell completion script for batonctl's commands and flags"
			n.Args, n.RunE = cobra.ArbitraryArgs, c.group
			n.Example = completionExamples["completion"]
			for _, s := range n.Commands() {
				s.Example = completionExamples["completion "+s.Name()]
			}
		}
	}
	return root
}

// runner runs a registered command with the parsed flags.
func (c *common) runner(cmd *command) func(*cobra.Command, []string) error {
	return func(cc *cobra.Command, args []string) error {
		// "stage cancl 3" is a typo, not stage "cancl".
		if len(args) > 0 && cc.HasAvailableSubCommands() && closeToChild(cc, args[0]) {
			return unknownCommand{cmd: cc, args: args}
		}
		c.cmd = cmd
		ctx, cancel := c.context()
		defer cancel()
		c.code = c.exit(ctx, cmd.run(ctx, c, args))
		return nil
	}
}

// group runs a group: it needs one of its commands.
func (c *common) group(cmd *cobra.Command, args []string) error {
	if len(args) == 0 {
		return needsCommand{cmd}
	}
	return unknownCommand{cmd: cmd, args: args}
}

func (c *common) checkOutput(*cobra.Command, []string) error {
	if c.output != "table" && c.output != "json" && c.output != "name" {
		return usagef("-o must be table, json or name, got %q", c.output)
	}
	return nil
}

// closeToChild reports whether word, not a number, is a letter or two
// from the name of one of cmd's commands.
func closeToChild(cmd *cobra.Command, word string) bool {
	if _, err := strconv.ParseUint(word, 10, 64); err == nil {
		return false
	}
	for _, s := range cmd.Commands() {
		if s.IsAvailableCommand() && distance(word, s.Name()) <= 2 {
			return true
		}
	}
	return false
}

// helpCommand is 'batonctl help [COMMAND]'.
func (c *common) helpCommand() *cobra.Command {
	return &cobra.Command{
		Use:     "help [COMMAND]",
		Short:   "help for batonctl or one of its commands",
		Example: "batonctl help\nbatonctl help job status\nbatonctl job status -h     # the same",
		Args:    cobra.ArbitraryArgs,
		ValidArgsFunction: func(cmd *cobra.Command, args []string, _ string) ([]string, cobra.ShellCompDirective) {
			target, _, _ := cmd.Root().Find(args)
			var out []string
			for _, s := range target.Commands() {
				if s.IsAvailableCommand() {
					out = append(out, s.Name()+"\t"+s.Short)
				}
			}
			return out, cobra.ShellCompDirectiveNoFileComp
		},
		RunE: func(cmd *cobra.Command, args []string) error {
			target, rest, err := cmd.Root().Find(args)
			if err != nil || len(rest) > 0 {
				if target == nil {
					target = cmd.Root()
				}
				if len(rest) == 0 {
					rest = args
				}
				return unknownCommand{cmd: target, args: rest, help: true}
			}
			writeHelp(c.env.Stdout, target)
			return nil
		},
	}
}

// usage reports a command line that makes no sense, from cobra's run of
// cmd, and returns exit code 2.
func (c *common) usage(cmd *cobra.Command, err error) int {
	w := c.env.Stderr
	var nc needsCommand
	var uc unknownCommand
	var fe flagError
	var ue usageError
	switch {
	case errors.As(err, &nc):
		writeHelp(w, nc.cmd)
	case errors.As(err, &uc):
		where := "batonctl"
		if uc.help {
			where = "batonctl help"
		}
		fmt.Fprintf(w, "%s: unknown command %q\n", where, uc.typed())
		words := append(strings.Fields(commandName(uc.cmd)), uc.args[0])
		if s := suggest(cmd.Root(), words); len(s) > 0 {
			fmt.Fprintf(w, "\nDid you mean\n\tbatonctl %s\n", strings.Join(s, "\n\tbatonctl "))
		}
		if uc.cmd.HasParent() {
			fmt.Fprintf(w, "\nRun 'batonctl %s -h' for its commands.\n", commandName(uc.cmd))
		} else {
			fmt.Fprintln(w, "\nRun 'batonctl help' for the commands.")
		}
	case errors.As(err, &fe) && !fe.cmd.HasParent() && c.strayWord(cmd.Root()) != "":
		// "batonctl sbumit -f x": the command is what is wrong.
		return c.usage(cmd, unknownCommand{cmd: cmd.Root(), args: []string{c.strayWord(cmd.Root())}})
	case errors.As(err, &fe) && fe.cmd.HasParent():
		name := commandName(fe.cmd)
		fmt.Fprintf(w, "batonctl %s: %v\nRun 'batonctl %s -h' for usage.\n", name, fe.err, name)
	case errors.As(err, &ue):
		fmt.Fprintf(w, "batonctl: %s\n", ue.msg)
	default:
		fmt.Fprintf(w, "batonctl: %v\nRun 'batonctl help' for usage.\n", err)
	}
	return exitUsage
}

// strayWord is the word of the command line that names no command
// (after the root's flags), or "".
func (c *common) strayWord(root *cobra.Command) string {
	cmd, word := target(root, c.args)
	if cmd != root {
		return ""
	}
	return word
}

// normalize rewrites the Go-style long flags batonctl began with (-addr,
// -wait, -max-task-failures=3) as GNU ones (--addr) for pflag, which
// would read -addr as the shorthands -a -d -d -r. A single letter (-o,
// -f, -h) stays a shorthand; a flag's value and whatever follows "--"
// stay as they are. Shell completion's requests are rewritten too, but
// for the word being completed.
func normalize(root *cobra.Command, args []string) []string {
	if len(args) > 1 && (args[0] == cobra.ShellCompRequestCmd || args[0] == cobra.ShellCompNoDescRequestCmd) {
		out := append([]string{args[0]}, normalize(root, args[1:len(args)-1])...)
		return append(out, args[len(args)-1])
	}
	cmd, _ := target(root, args)
	out := make([]string, 0, len(args))
	for i := 0; i < len(args); i++ {
		a := args[i]
		if a == "--" {
			return append(out, args[i:]...)
		}
		name, takesValue := flagArg(cmd, a)
		if name == "" {
			out = append(out, a)
			continue
		}
		if len(name) > 1 && !strings.HasPrefix(a, "--") {
			a = "-" + a
		}
		out = append(out, a)
		if takesValue && i+1 < len(args) {
			i++
			out = append(out, args[i])
		}
	}
	return out
}

// flagArg returns the flag name in arg ("" if it is no flag) and whether
// the next argument is its value: it takes one and arg has no "=value".
func flagArg(cmd *cobra.Command, arg string) (string, bool) {
	if len(arg) < 2 || arg[0] != '-' {
		return "", false
	}
	name, _, inline := strings.Cut(strings.TrimPrefix(arg[1:], "-"), "=")
	if name == "" {
		return "", false
	}
	f := lookup(cmd, name)
	return name, f != nil && f.NoOptDefVal == "" && !inline
}

// target is the command args name, as far as the words before the first
// argument that is not a command go, and that argument ("" if none).
func target(root *cobra.Command, args []string) (*cobra.Command, string) {
	cmd := root
	for i := 0; i < len(args); i++ {
		a := args[i]
		if a == "--" {
			break
		}
		if name, takesValue := flagArg(cmd, a); name != "" {
			if takesValue {
				i++
			}
			continue
		}
		var next *cobra.Command
		for _, s := range cmd.Commands() {
			if s.Name() == a || s.HasAlias(a) {
				next = s
			}
		}
		if next == nil {
			return cmd, a
		}
		cmd = next
	}
	return cmd, ""
}

// lookup finds a flag cmd takes, its own or inherited, by name (or
// shorthand, for a single letter).
func lookup(cmd *cobra.Command, name string) *pflag.Flag {
	sets := []*pflag.FlagSet{cmd.Flags()}
	for n := cmd; n != nil; n = n.Parent() {
		sets = append(sets, n.PersistentFlags())
	}
	for _, fs := range sets {
		if len(name) == 1 {
			if f := fs.ShorthandLookup(name); f != nil {
				return f
			}
		} else if f := fs.Lookup(name); f != nil {
			return f
		}
	}
	return nil
}
