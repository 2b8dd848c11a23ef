package cli

import (
	"flag"
	"fmt"
	"io"
	"sort"
	"strings"
)

// Help goes to standard output when asked for (help, -h) and to standard
// error after a usage error. Each command's help shows its own flags;
// the global flags, which every command takes, are listed once in
// 'batonctl help'.

// usage writes the command list and the global flags.
func usage(w io.Writer) {
	fmt.Fprintln(w, "batonctl is the command line of Baton, a DAG scheduler on a Raft quorum.")
	fmt.Fprintln(w, "\nusage: batonctl [global flags] COMMAND [flags] [args]")
	fmt.Fprintln(w, "\ncommands:")
	sorted := append([]*command(nil), commands...)
	sort.Slice(sorted, func(a, b int) bool { return sorted[a].name < sorted[b].name })
	for _, c := range sorted {
		fmt.Fprintf(w, "  %-40s %s\n", strings.TrimSpace(c.name+" "+c.args), c.summary)
	}
	fmt.Fprintln(w, "\nglobal flags (before or after the command):")
	fs := flag.NewFlagSet("batonctl", flag.ContinueOnError)
	(&common{output: "table"}).register(fs)
	fs.SetOutput(w)
	fs.PrintDefaults()
	fmt.Fprint(w, `
examples:
  export BATON_ADDR=127.0.0.1:7101,127.0.0.1:7102,127.0.0.1:7103
  batonctl status
  batonctl submit -f examples/plans/wordcount.json -wait
  batonctl jobs -o json
  batonctl job status 3 -watch

exit codes: 0 ok, 1 failure, 2 usage error, 130 interrupted (Ctrl-C).
Run 'batonctl help COMMAND' or 'batonctl COMMAND -h' for a command's flags.
`)
}

// help runs 'batonctl help [COMMAND]'.
func help(env Env, args []string) int {
	if len(args) == 0 {
		usage(env.Stdout)
		return exitOK
	}
	cmd, rest := find(args)
	if cmd == nil || len(rest) > 0 {
		fmt.Fprintf(env.Stderr, "batonctl help: unknown command %q\n", strings.Join(args, " "))
		if s := suggest(args); len(s) > 0 {
			fmt.Fprintf(env.Stderr, "\nDid you mean\n\tbatonctl %s\n", strings.Join(s, "\n\tbatonctl "))
		}
		return exitUsage
	}
	fs := flag.NewFlagSet("batonctl "+cmd.name, flag.ContinueOnError)
	(&common{output: "table"}).register(fs)
	if cmd.flags != nil {
		cmd.flags(fs)
	}
	commandHelp(env.Stdout, cmd, fs)
	return exitOK
}

// commandHelp writes a command's usage, its own flags and its examples.
func commandHelp(w io.Writer, cmd *command, fs *flag.FlagSet) {
	fmt.Fprintf(w, "usage: batonctl %s\n\n%s\n", strings.TrimSpace(cmd.name+" [flags] "+cmd.args), cmd.summary)
	own := flag.NewFlagSet(cmd.name, flag.ContinueOnError)
	fs.VisitAll(func(f *flag.Flag) {
		if !globalFlags[f.Name] {
			own.Var(f.Value, f.Name, f.Usage)
		}
	})
	n := 0
	own.VisitAll(func(*flag.Flag) { n++ })
	if n > 0 {
		fmt.Fprintln(w, "\nflags:")
		own.SetOutput(w)
		own.PrintDefaults()
	}
	if cmd.examples != "" {
		fmt.Fprintln(w, "\nexamples:")
		for _, l := range strings.Split(strings.TrimSpace(cmd.examples), "\n") {
			fmt.Fprintf(w, "  %s\n", strings.TrimSpace(l))
		}
	}
	fmt.Fprintln(w, "\nglobal flags: -addr, -o, -timeout, -stale, -token, -ca-file, -cert-file, -key-file (batonctl help)")
}

// suggest returns the commands closest to a mistyped one: a word or two
// off by a few letters, or its first word a known command's prefix.
func suggest(args []string) []string {
	typed := strings.Join(args, " ")
	type cand struct {
		name string
		d    int
	}
	var cands []cand
	for _, c := range commands {
		words := strings.Fields(c.name)
		n := min(len(words), len(args))
		got := strings.Join(args[:n], " ")
		d := distance(got, c.name)
		if d <= max(2, len(c.name)/4) || (len(args[0]) >= 3 && strings.HasPrefix(c.name, args[0])) {
			cands = append(cands, cand{c.name, d})
		}
	}
	sort.Slice(cands, func(a, b int) bool {
		if cands[a].d != cands[b].d {
			return cands[a].d < cands[b].d
		}
		return cands[a].name < cands[b].name
	})
	var out []string
	for _, c := range cands {
		if c.name != typed && len(out) < 4 {
			out = append(out, c.name)
		}
	}
	return out
}

// distance is the Levenshtein distance of a and b.
func distance(a, b string) int {
	prev := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur := make([]int, len(b)+1)
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev = cur
	}
	return prev[len(b)]
}
