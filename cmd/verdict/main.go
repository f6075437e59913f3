// Command verdict is Verdict's single binary: the decision server and its tools.
package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"strings"
	"syscall"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, os.Args[1:], os.Getenv, os.Stdout, os.Stderr)
	stop()
	if err != nil {
		var ue usageError
		if errors.As(err, &ue) && ue.help {
			os.Exit(0) // the flag package printed the usage
		}
		if !errors.As(err, &ue) || ue.msg != "" {
			fmt.Fprintf(os.Stderr, "verdict: %s\n", oneLine(err.Error()))
		}
		if errors.As(err, &ue) {
			os.Exit(2)
		}
		os.Exit(1)
	}
}

// oneLine joins the lines of a multi-line error (pgx lists every address it tried, a policy
// bundle every problem) so that a failed command prints one line: "; " between lines, a
// space after a line that ends in a colon.
func oneLine(msg string) string {
	var b strings.Builder
	for _, l := range strings.Split(msg, "\n") {
		if l = strings.TrimSpace(l); l == "" {
			continue
		}
		if b.Len() > 0 {
			if strings.HasSuffix(b.String(), ":") {
				b.WriteString(" ")
			} else {
				b.WriteString("; ")
			}
		}
		b.WriteString(l)
	}
	return b.String()
}
