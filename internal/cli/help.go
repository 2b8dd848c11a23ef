package cli

import (
	"fmt"
	"io"
	"sort"
	"strings"

	"github.com/spf13/cobra"
	pflag "github.com/spf13/pflag"
)

// Help goes to standard output when asked for (help, -h, --help) and to
// standard error after a usage error. Each command's help shows its
// usage, its own flags and examples; the global flags, which every
// command takes, are listed once, in 'batonctl help'.

const rootExamples = `export BATON_ADDR=127.0.0.1:7101,127.0.0.1:7102,127.0.0.1:7103
batonctl status
batonctl submit -f examples/plans/wordcount.json --wait
batonctl jobs -o json
batonctl job status 3 --watch
source <(batonctl completion bash)`

// globalFlagsLine names the global flags in a command's help.
const globalFlagsLine = "global flags: --addr, -o/--output, --timeout, --stale, --token, --ca-file, --cert-file, --key-file (batonctl help)"

// writeHelp writes cmd's help: usage, summary, commands (for the root
// and groups), flags and examples.
func writeHelp(w io.Writer, cmd *cobra.Command) {
	root := !cmd.HasParent()
	about := cmd.Long
	if about == "" {
		about = cmd.Short
	}
	if root {
		fmt.Fprintln(w, strings.TrimSpace(about))
		fmt.Fprintln(w, "\nusage: batonctl [global flags] COMMAND [flags] [args]")
	} else {
		name := commandName(cmd)
		var uses []string
		if !isGroup(cmd) {
			u := "batonctl " + name
			if own(cmd).HasAvailableFlags() {
				u += " [flags]"
			}
			uses = append(uses, u+strings.TrimPrefix(cmd.Use, cmd.Name()))
		}
		if cmd.HasAvailableSubCommands() {
			uses = append(uses, "batonctl "+name+" COMMAND [flags] [args]")
		}
		fmt.Fprintf(w, "usage: %s\n\n%s\n", strings.Join(uses, "\n       "), strings.TrimSpace(about))
	}
	if cmd.HasAvailableSubCommands() {
		fmt.Fprintln(w, "\ncommands:")
		var lines [][2]string
		width := 0
		for _, s := range descendants(cmd) {
			line := strings.TrimSpace(commandName(s) + " " + strings.TrimSpace(strings.TrimPrefix(s.Use, s.Name())))
			lines = append(lines, [2]string{line, s.Short})
			width = max(width, len(line))
		}
		for _, l := range lines {
			fmt.Fprintf(w, "  %-*s  %s\n", min(width, 40), l[0], l[1])
		}
	}
	if root {
		fmt.Fprintln(w, "\nglobal flags (before or after the command):")
		fmt.Fprint(w, cmd.PersistentFlags().FlagUsages())
	} else if fl := own(cmd); fl.HasAvailableFlags() {
		fmt.Fprintln(w, "\nflags:")
		fmt.Fprint(w, fl.FlagUsages())
	}
	if ex := examples(cmd); ex != "" {
		fmt.Fprintln(w, "\nexamples:")
		for _, l := range strings.Split(ex, "\n") {
			fmt.Fprintf(w, "  %s\n", strings.TrimSpace(l))
		}
	}
	if root {
		fmt.Fprint(w, `
Flags take two dashes or one: --addr and -addr are the same flag.
exit codes: 0 ok, 1 failure, 2 usage error, 130 interrupted (Ctrl-C).
Run 'batonctl help COMMAND' or 'batonctl COMMAND -h' for a command's flags.
`)
		return
	}
	fmt.Fprintf(w, "\n%s\n", globalFlagsLine)
}

// own are cmd's own flags, but help.
func own(cmd *cobra.Command) *pflag.FlagSet {
	fs := pflag.NewFlagSet(cmd.Name(), pflag.ContinueOnError)
	cmd.LocalFlags().VisitAll(func(f *pflag.Flag) {
		if f.Name != "help" {
			fs.AddFlag(f)
		}
	})
	return fs
}

// isGroup reports whether cmd only holds commands.
func isGroup(cmd *cobra.Command) bool {
	_, ok := groups[commandName(cmd)]
	return ok || cmd.Name() == "completion"
}

// examples are cmd's, or for a group the first of each of its commands'.
func examples(cmd *cobra.Command) string {
	if ex := strings.TrimSpace(cmd.Example); ex != "" {
		return ex
	}
	var out []string
	for _, s := range descendants(cmd) {
		if ex := strings.TrimSpace(s.Example); ex != "" {
			out = append(out, strings.SplitN(ex, "\n", 2)[0])
		}
	}
	return strings.Join(out, "\n")
}

// descendants are the commands under cmd that run (not groups), in
// order, as help lists them: completion's as one.
func descendants(cmd *cobra.Command) []*cobra.Command { return under(cmd, true) }

func under(cmd *cobra.Command, collapse bool) []*cobra.Command {
	var out []*cobra.Command
	for _, s := range cmd.Commands() {
		if !s.IsAvailableCommand() {
			continue
		}
		if collapse && s.Name() == "completion" {
			out = append(out, s) // one line: completion bash|zsh|fish|powershell
			continue
		}
		if !isGroup(s) || s.Name() == "completion" {
			out = append(out, s)
		}
		out = append(out, under(s, collapse)...)
	}
	return out
}

// suggest returns the commands closest to a mistyped one: a word or two
// off by a few letters, or its first word a known command's prefix.
func suggest(root *cobra.Command, args []string) []string {
	typed := strings.Join(args, " ")
	type cand struct {
		name string
		d    int
	}
	var cands []cand
	for _, c := range under(root, false) {
		name := commandName(c)
		words := strings.Fields(name)
		n := min(len(words), len(args))
		got := strings.Join(args[:n], " ")
		// A word typed past the command's counts as a letter off.
		d := distance(got, name) + 2*(len(args)-n)
		if d <= max(2, len(name)/4) || (len(args[0]) >= 3 && strings.HasPrefix(name, args[0])) {
			cands = append(cands, cand{name, d})
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
		if c.name != typed && len(out) < 4 && c.d <= cands[0].d+1 {
			out = append(out, c.name)
		}
	}
	return out
}

// distance is the edit distance of a and b, a swap of two neighbouring
// letters one edit (optimal string alignment: "stauts" is 1 from
// "status").
func distance(a, b string) int {
	d := make([][]int, len(a)+1)
	for i := range d {
		d[i] = make([]int, len(b)+1)
		d[i][0] = i
	}
	for j := range d[0] {
		d[0][j] = j
	}
	for i := 1; i <= len(a); i++ {
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			d[i][j] = min(d[i-1][j]+1, d[i][j-1]+1, d[i-1][j-1]+cost)
			if i > 1 && j > 1 && a[i-1] == b[j-2] && a[i-2] == b[j-1] {
				d[i][j] = min(d[i][j], d[i-2][j-2]+1)
			}
		}
	}
	return d[len(a)][len(b)]
}
