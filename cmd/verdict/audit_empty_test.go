package main

import "testing"

func TestAuditVerifyEmptyChain(t *testing.T) {
	out, _, err := runArgs(t, nil, "audit", "verify", "--data-dir", storeDir(t))
	if err != nil || out != "audit chain ok: 0 events (the audit log is empty)\n" {
		t.Fatalf("audit verify on an empty chain: %q, %v", out, err)
	}
}
