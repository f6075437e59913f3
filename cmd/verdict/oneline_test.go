package main

import "testing"

func TestOneLine(t *testing.T) {
	for in, want := range map[string]string{
		"plain": "plain",
		"open postgres store: failed to connect:\n\t127.0.0.1:1: refused\n\t127.0.0.1:1: refused\n": "open postgres store: failed to connect: 127.0.0.1:1: refused; 127.0.0.1:1: refused",
		"a.rego:1: x\n\nb.rego:2: y": "a.rego:1: x; b.rego:2: y",
	} {
		if got := oneLine(in); got != want {
			t.Errorf("oneLine(%q) = %q, want %q", in, got, want)
		}
	}
}
