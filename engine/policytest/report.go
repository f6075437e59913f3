package policytest

import (
	"bufio"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"
)

// WriteText writes the report for a terminal: one line per test
//
//	PASS  payout/payout_test.rego:196  test_rejected_verification_blocks (0.4ms)
//
// with the detail of each failure indented below it, the coverage tables when measured,
// and last a summary line "N passed, M failed". Verbose adds the print() output of every
// Rego test, the trace of failing Rego tests (when recorded) and what coverage missed.
func (r *Report) WriteText(w io.Writer, verbose bool) error {
	bw := bufio.NewWriter(w)
	for _, res := range r.Results {
		label := ""
		if res.Kind == KindGolden && res.Policy != "" {
			label = " [" + res.Policy + "]"
		}
		dur := ""
		if res.Status != Skip {
			dur = " (" + formatDuration(res.Duration) + ")"
		}
		fmt.Fprintf(bw, "%s  %s  %s%s%s\n", res.Status, res.Location(), res.Name, label, dur)
		if res.Status == Fail && res.Detail != "" {
			writeIndented(bw, res.Detail)
		}
		if res.Output != "" && (verbose || res.Status == Fail) {
			fmt.Fprintln(bw, "      output:")
			writeIndented(bw, strings.TrimRight(res.Output, "\n"))
		}
		if res.Trace != "" && verbose {
			fmt.Fprintln(bw, "      trace:")
			writeIndented(bw, strings.TrimRight(res.Trace, "\n"))
		}
	}
	if len(r.Files) > 0 {
		fmt.Fprintln(bw)
		fmt.Fprintln(bw, "Coverage (Rego: lines evaluated by the Rego tests; CEL: rules fired by a case)")
		tw := tabwriter.NewWriter(bw, 0, 0, 2, ' ', 0)
		fmt.Fprintln(tw, "FILE\tPOLICY\tLANG\tCOVERED\tPERCENT")
		for _, f := range r.Files {
			fmt.Fprintf(tw, "%s\t%s\t%s\t%d/%d %s\t%.1f%%\n", f.File, f.Policy, f.Language, f.Covered, f.Total, f.Unit, f.Percent())
		}
		tw.Flush()
		fmt.Fprintln(bw)
		tw = tabwriter.NewWriter(bw, 0, 0, 2, ' ', 0)
		fmt.Fprintln(tw, "POLICY\tLANG\tCOVERED\tPERCENT")
		for _, p := range r.Policies {
			fmt.Fprintf(tw, "%s\t%s\t%d/%d %s\t%.1f%%\n", p.Policy, p.Language, p.Covered, p.Total, p.Unit, p.Percent())
		}
		tw.Flush()
		if verbose {
			for _, f := range r.Files {
				if len(f.Missed) > 0 {
					fmt.Fprintf(bw, "\nnot covered in %s:\n", f.File)
					writeIndented(bw, strings.Join(f.Missed, "\n"))
				}
			}
		}
		fmt.Fprintln(bw)
	}
	if n := r.Skipped(); n > 0 {
		fmt.Fprintf(bw, "%d skipped\n", n)
	}
	fmt.Fprintf(bw, "%d passed, %d failed\n", r.Passed(), r.Failed())
	return bw.Flush()
}

func writeIndented(w io.Writer, s string) {
	for line := range strings.SplitSeq(s, "\n") {
		fmt.Fprintf(w, "      %s\n", line)
	}
}

func formatDuration(d time.Duration) string {
	return fmt.Sprintf("%.1fms", float64(d.Microseconds())/1000)
}
