package main

import (
	"bytes"
	"fmt"
	"io"
)

// splitLines splits b into lines, each keeping its "\n" (the last may lack one).
func splitLines(b []byte) []string {
	var out []string
	for len(b) > 0 {
		i := bytes.IndexByte(b, '\n')
		if i < 0 {
			out = append(out, string(b))
			break
		}
		out = append(out, string(b[:i+1]))
		b = b[i+1:]
	}
	return out
}

// editOp is one line of an edit script: ' ' kept, '-' only in a, '+' only in b.
type editOp struct {
	kind byte
	line string
}

// maxDiffCells bounds the LCS table (lines of a × lines of b). Policy files are small;
// beyond it the files are shown as wholly replaced rather than spending the memory.
const maxDiffCells = 16 << 20

// editScript returns a shortest edit script from a to b, by longest common subsequence.
func editScript(a, b []string) []editOp {
	n, m := len(a), len(b)
	// Common prefix and suffix need no table.
	pre := 0
	for pre < n && pre < m && a[pre] == b[pre] {
		pre++
	}
	suf := 0
	for suf < n-pre && suf < m-pre && a[n-1-suf] == b[m-1-suf] {
		suf++
	}
	var ops []editOp
	for _, l := range a[:pre] {
		ops = append(ops, editOp{' ', l})
	}
	ma, mb := a[pre:n-suf], b[pre:m-suf]
	if len(ma)*len(mb) > maxDiffCells {
		for _, l := range ma {
			ops = append(ops, editOp{'-', l})
		}
		for _, l := range mb {
			ops = append(ops, editOp{'+', l})
		}
	} else {
		// lcs[i][j] is the LCS length of ma[i:] and mb[j:].
		w := len(mb) + 1
		lcs := make([]int32, (len(ma)+1)*w)
		for i := len(ma) - 1; i >= 0; i-- {
			for j := len(mb) - 1; j >= 0; j-- {
				if ma[i] == mb[j] {
					lcs[i*w+j] = lcs[(i+1)*w+j+1] + 1
				} else {
					lcs[i*w+j] = max(lcs[(i+1)*w+j], lcs[i*w+j+1])
				}
			}
		}
		i, j := 0, 0
		for i < len(ma) && j < len(mb) {
			switch {
			case ma[i] == mb[j]:
				ops = append(ops, editOp{' ', ma[i]})
				i, j = i+1, j+1
			case lcs[(i+1)*w+j] >= lcs[i*w+j+1]:
				ops = append(ops, editOp{'-', ma[i]})
				i++
			default:
				ops = append(ops, editOp{'+', mb[j]})
				j++
			}
		}
		for ; i < len(ma); i++ {
			ops = append(ops, editOp{'-', ma[i]})
		}
		for ; j < len(mb); j++ {
			ops = append(ops, editOp{'+', mb[j]})
		}
	}
	for _, l := range a[n-suf:] {
		ops = append(ops, editOp{' ', l})
	}
	return ops
}

// writeUnified writes the hunks of the unified diff from a to b with context lines of
// context around each change ("@@ -l,n +l,n @@" headers, as diff -u).
func writeUnified(w io.Writer, a, b []string, context int) {
	ops := editScript(a, b)
	// aLine[k], bLine[k]: lines of a and b consumed before ops[k].
	aLine, bLine := make([]int, len(ops)+1), make([]int, len(ops)+1)
	for k, op := range ops {
		aLine[k+1], bLine[k+1] = aLine[k], bLine[k]
		if op.kind != '+' {
			aLine[k+1]++
		}
		if op.kind != '-' {
			bLine[k+1]++
		}
	}
	for k := 0; k < len(ops); {
		if ops[k].kind == ' ' {
			k++
			continue
		}
		// A hunk: from context lines before this change to context lines after the last
		// change that is no more than 2*context kept lines away.
		start := max(0, k-context)
		end := k
		for end < len(ops) {
			if ops[end].kind != ' ' {
				end++
				continue
			}
			run := end
			for run < len(ops) && ops[run].kind == ' ' {
				run++
			}
			if run == len(ops) || run-end > 2*context {
				end = min(end+context, len(ops))
				break
			}
			end = run
		}
		fmt.Fprintf(w, "@@ -%s +%s @@\n", hunkRange(aLine[start], aLine[end]-aLine[start]), hunkRange(bLine[start], bLine[end]-bLine[start]))
		for _, op := range ops[start:end] {
			line := op.line
			fmt.Fprintf(w, "%c%s", op.kind, line)
			if len(line) == 0 || line[len(line)-1] != '\n' {
				fmt.Fprint(w, "\n\\ No newline at end of file\n")
			}
		}
		k = end
	}
}

// hunkRange formats a hunk's line range: "l,n" (1-based; for n = 0, l is the line before).
func hunkRange(before, n int) string {
	if n == 0 {
		return fmt.Sprintf("%d,0", before)
	}
	if n == 1 {
		return fmt.Sprintf("%d", before+1)
	}
	return fmt.Sprintf("%d,%d", before+1, n)
}
