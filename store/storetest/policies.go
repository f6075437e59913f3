package storetest

import (
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"github.com/verdict-engine/verdict/store"
)

// policyVersion returns a version whose hash and files depend on name. The files hold
// bytes that are not UTF-8, a NUL, CRLF line ends and an empty file, to check that they
// round-trip byte for byte.
func policyVersion(name string, at time.Time) store.PolicyVersion {
	return store.PolicyVersion{
		Hash:      "sha256:" + sha256Hex([]byte(name)),
		Label:     "label-" + name,
		Author:    "alice",
		Changelog: "changelog of " + name,
		Files: map[string][]byte{
			"login/login.rego":      []byte("package verdict.login\r\n# " + name + "\n"),
			"lib/verdict.rego":      {0xff, 0xfe, 0x00, 'x', '\n'},
			"data/thresholds.json":  []byte(`{"login":{"max_ip_1m":20}}`),
			"login/login_test.rego": {},
		},
		CreatedAt: at,
	}
}

func mustPublish(t *testing.T, s store.Store, v store.PolicyVersion) {
	t.Helper()
	created, err := s.PublishPolicy(t.Context(), v, "req-publish")
	if err != nil || !created {
		t.Fatalf("PublishPolicy(%s) = %v, %v; want created", v.Label, created, err)
	}
}

func livePolicies(t *testing.T, s store.Store) store.LivePolicies {
	t.Helper()
	lp, err := s.LivePolicies(t.Context())
	if err != nil {
		t.Fatalf("LivePolicies: %v", err)
	}
	return lp
}

func eventPayloads(t *testing.T, s store.Store, typ string) []map[string]any {
	t.Helper()
	var out []map[string]any
	for _, ev := range allEvents(t, s) {
		if ev.Type != typ {
			continue
		}
		var p map[string]any
		if err := json.Unmarshal(ev.Payload, &p); err != nil {
			t.Fatalf("%s payload: %v", typ, err)
		}
		out = append(out, p)
	}
	return out
}

func testPolicyPublish(t *testing.T, s store.Store) {
	ctx := t.Context()
	t0 := baseTime()
	v1 := policyVersion("v1", t0)
	mustPublish(t, s, v1)

	// Idempotent and immutable: the same hash again changes nothing, whatever else differs.
	again := v1
	again.Label, again.Author = "relabelled", "mallory"
	again.Files = map[string][]byte{"other.rego": []byte("package other")}
	if created, err := s.PublishPolicy(ctx, again, "req-again"); err != nil || created {
		t.Fatalf("PublishPolicy of a stored hash = %v, %v; want false, nil", created, err)
	}
	got, err := s.PolicyVersion(ctx, v1.Hash)
	if err != nil {
		t.Fatalf("PolicyVersion: %v", err)
	}
	want := v1
	want.CreatedAt = utcMicros(v1.CreatedAt)
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("PolicyVersion round trip (-want +got):\n%s", diff)
	}
	if got.Files["login/login_test.rego"] == nil {
		t.Error("an empty file reads back as nil, want an empty slice")
	}

	if _, err := s.PolicyVersion(ctx, "sha256:nope"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("PolicyVersion(unknown) = %v, want ErrNotFound", err)
	}
	for name, bad := range map[string]store.PolicyVersion{
		"no hash":  {Files: map[string][]byte{"a.rego": nil}},
		"no files": {Hash: "sha256:empty"},
		"escape":   {Hash: "sha256:escape", Files: map[string][]byte{"../a.rego": nil}},
		"absolute": {Hash: "sha256:abs", Files: map[string][]byte{"/a.rego": nil}},
		"unclean":  {Hash: "sha256:unclean", Files: map[string][]byte{"a//b.rego": nil}},
		"nul":      {Hash: "sha256:nul", Label: "a\x00b", Files: map[string][]byte{"a.rego": nil}},
	} {
		if _, err := s.PublishPolicy(ctx, bad, ""); !errors.Is(err, store.ErrInvalidRecord) {
			t.Errorf("PublishPolicy(%s) = %v, want ErrInvalidRecord", name, err)
		}
	}

	// Newest first; among equal times, the later published first.
	v2, v3, v4 := policyVersion("v2", t0.Add(time.Minute)), policyVersion("v3", t0.Add(2*time.Minute)), policyVersion("v4", t0.Add(2*time.Minute))
	v4.Author = ""
	for _, v := range []store.PolicyVersion{v2, v3, v4} {
		mustPublish(t, s, v)
	}
	list, err := s.ListPolicyVersions(ctx)
	if err != nil {
		t.Fatalf("ListPolicyVersions: %v", err)
	}
	var labels []string
	for _, v := range list {
		labels = append(labels, v.Label)
		if len(v.Files) != 0 {
			t.Errorf("ListPolicyVersions: %s has %d files, want none in a listing", v.Label, len(v.Files))
		}
	}
	if want := []string{"label-v4", "label-v3", "label-v2", "label-v1"}; !slices.Equal(labels, want) {
		t.Errorf("ListPolicyVersions order = %v, want %v", labels, want)
	}
	if list[3].Hash != v1.Hash || list[3].Author != "alice" || list[3].Changelog != v1.Changelog || !list[3].CreatedAt.Equal(v1.CreatedAt.Truncate(time.Microsecond)) {
		t.Errorf("listed v1 = %+v", list[3])
	}

	pubs := eventPayloads(t, s, store.EventPolicyPublished)
	if len(pubs) != 4 {
		t.Fatalf("%d policy.published events, want 4 (a republish appends none)", len(pubs))
	}
	if p := pubs[0]; p["hash"] != v1.Hash || p["label"] != v1.Label || p["changelog_sha256"] != sha256Hex([]byte(v1.Changelog)) {
		t.Errorf("policy.published payload = %v", p)
	}
	verifyChain(t, s)
}

func testPolicyActivation(t *testing.T, s store.Store) {
	ctx := t.Context()
	v1, v2 := policyVersion("act-v1", baseTime()), policyVersion("act-v2", baseTime().Add(time.Second))
	mustPublish(t, s, v1)
	mustPublish(t, s, v2)
	g0 := livePolicies(t, s).Generation

	if _, err := s.ActivatePolicy(ctx, store.PolicyActivation{Action: "login", Hash: "sha256:unknown", Actor: "alice"}, false, ""); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("ActivatePolicy(unknown version) = %v, want ErrNotFound", err)
	}
	if _, err := s.ActivatePolicy(ctx, store.PolicyActivation{Action: "login", Hash: v1.Hash}, false, ""); !errors.Is(err, store.ErrInvalidRecord) {
		t.Errorf("ActivatePolicy(no actor) = %v, want ErrInvalidRecord", err)
	}
	if lp := livePolicies(t, s); lp.Generation != g0 || len(lp.Active) != 0 {
		t.Fatalf("after refused activations LivePolicies = %+v, want generation %d and nothing active", lp, g0)
	}

	a1, err := s.ActivatePolicy(ctx, store.PolicyActivation{Action: "login", Hash: v1.Hash, Actor: "alice"}, false, "req-a1")
	if err != nil {
		t.Fatalf("ActivatePolicy: %v", err)
	}
	if a1.ID == "" || a1.Status != store.ActivationActive || a1.Previous != "" || a1.At.IsZero() {
		t.Errorf("activation = %+v, want an id, status active, no previous", a1)
	}
	lp1 := livePolicies(t, s)
	if lp1.Active["login"] != v1.Hash || lp1.Generation <= g0 {
		t.Fatalf("after activation LivePolicies = %+v, want login %s and generation > %d", lp1, v1.Hash, g0)
	}

	// Approval: pending is not live; the requester cannot approve; someone else can.
	p, err := s.ActivatePolicy(ctx, store.PolicyActivation{Action: "login", Hash: v2.Hash, Actor: "alice"}, true, "req-p")
	if err != nil {
		t.Fatalf("ActivatePolicy(require approval): %v", err)
	}
	if p.Status != store.ActivationPending || p.Previous != v1.Hash {
		t.Errorf("pending activation = %+v", p)
	}
	if lp := livePolicies(t, s); lp.Active["login"] != v1.Hash || lp.Generation != lp1.Generation {
		t.Errorf("a pending activation changed LivePolicies: %+v", lp)
	}
	if _, err := s.ApproveActivation(ctx, p.ID, "alice", ""); !errors.Is(err, store.ErrConflict) {
		t.Errorf("ApproveActivation by the requester = %v, want ErrConflict", err)
	}
	if _, err := s.ApproveActivation(ctx, p.ID, "ALICE", ""); !errors.Is(err, store.ErrConflict) {
		t.Errorf("ApproveActivation by the requester in upper case = %v, want ErrConflict", err)
	}
	if _, err := s.ApproveActivation(ctx, "no-such-activation", "bob", ""); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("ApproveActivation(unknown) = %v, want ErrNotFound", err)
	}
	if _, err := s.ApproveActivation(ctx, a1.ID, "bob", ""); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("ApproveActivation(already active) = %v, want ErrNotFound", err)
	}
	approved, err := s.ApproveActivation(ctx, p.ID, "bob", "req-approve")
	if err != nil {
		t.Fatalf("ApproveActivation: %v", err)
	}
	if approved.ID != p.ID || approved.Status != store.ActivationActive || approved.Approver != "bob" || approved.Previous != v1.Hash || approved.Actor != "alice" {
		t.Errorf("approved activation = %+v", approved)
	}
	lp2 := livePolicies(t, s)
	if lp2.Active["login"] != v2.Hash || lp2.Generation <= lp1.Generation {
		t.Fatalf("after approval LivePolicies = %+v, want login %s, generation > %d", lp2, v2.Hash, lp1.Generation)
	}
	if _, err := s.ApproveActivation(ctx, p.ID, "carol", ""); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("second ApproveActivation = %v, want ErrNotFound", err)
	}

	// Rollback walks back: v2 → v1 → the default bundle → nothing left.
	rb1, err := s.RollbackPolicy(ctx, "login", "carol", "req-rb1")
	if err != nil {
		t.Fatalf("RollbackPolicy: %v", err)
	}
	if rb1.Hash != v1.Hash || rb1.Previous != "" || rb1.Status != store.ActivationActive || rb1.Actor != "carol" {
		t.Errorf("rollback = %+v, want %s live again with previous \"\"", rb1, v1.Hash)
	}
	lp3 := livePolicies(t, s)
	if lp3.Active["login"] != v1.Hash || lp3.Generation <= lp2.Generation {
		t.Fatalf("after rollback LivePolicies = %+v", lp3)
	}
	rb2, err := s.RollbackPolicy(ctx, "login", "carol", "req-rb2")
	if err != nil {
		t.Fatalf("second RollbackPolicy: %v", err)
	}
	if rb2.Hash != "" {
		t.Errorf("second rollback = %+v, want the default bundle (hash \"\")", rb2)
	}
	lp4 := livePolicies(t, s)
	if _, ok := lp4.Active["login"]; ok || lp4.Generation <= lp3.Generation {
		t.Fatalf("after rollback to default LivePolicies = %+v", lp4)
	}
	if _, err := s.RollbackPolicy(ctx, "login", "carol", ""); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("RollbackPolicy on the default bundle = %v, want ErrNotFound", err)
	}
	if _, err := s.RollbackPolicy(ctx, "payout", "carol", ""); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("RollbackPolicy(never activated) = %v, want ErrNotFound", err)
	}

	hist, err := s.PolicyActivations(ctx, "login")
	if err != nil {
		t.Fatalf("PolicyActivations: %v", err)
	}
	type row struct{ Hash, Previous, Actor, Approver, Status string }
	var gotRows []row
	for _, a := range hist {
		gotRows = append(gotRows, row{a.Hash, a.Previous, a.Actor, a.Approver, a.Status})
	}
	wantRows := []row{
		{"", "", "carol", "", store.ActivationActive},
		{v1.Hash, "", "carol", "", store.ActivationRolledBack},
		{v2.Hash, v1.Hash, "alice", "bob", store.ActivationRolledBack},
		{v1.Hash, "", "alice", "", store.ActivationSuperseded},
	}
	if diff := cmp.Diff(wantRows, gotRows); diff != "" {
		t.Errorf("PolicyActivations, newest first (-want +got):\n%s", diff)
	}
	if hist[2].ID != p.ID || hist[3].ID != a1.ID {
		t.Errorf("history ids = %s, %s; want %s, %s", hist[2].ID, hist[3].ID, p.ID, a1.ID)
	}
	if other, err := s.PolicyActivations(ctx, "payout"); err != nil || len(other) != 0 {
		t.Errorf("PolicyActivations(payout) = %v, %v; want none", other, err)
	}

	// Activating the same action again after a rollback to default starts from "".
	a3, err := s.ActivatePolicy(ctx, store.PolicyActivation{Action: "login", Hash: v2.Hash, Actor: "dave"}, false, "")
	if err != nil || a3.Previous != "" {
		t.Fatalf("ActivatePolicy after rollback = %+v, %v; want previous \"\"", a3, err)
	}

	activated := eventPayloads(t, s, store.EventPolicyActivated)
	if len(activated) != 3 {
		t.Fatalf("%d policy.activated events, want 3", len(activated))
	}
	if ev := activated[1]; ev["action"] != "login" || ev["hash"] != v2.Hash || ev["previous"] != v1.Hash || ev["approver"] != "bob" {
		t.Errorf("policy.activated payload of the approval = %v", ev)
	}
	if n := len(eventPayloads(t, s, store.EventPolicyActivationRequested)); n != 1 {
		t.Errorf("%d policy.activation_requested events, want 1", n)
	}
	rolled := eventPayloads(t, s, store.EventPolicyRolledBack)
	if len(rolled) != 2 || rolled[0]["rolled_back"] != v2.Hash || rolled[0]["hash"] != v1.Hash || rolled[1]["hash"] != "" {
		t.Errorf("policy.rolled_back payloads = %v", rolled)
	}
	verifyChain(t, s)
}

// testPolicyRollbackAfterLateApproval: an activation requested while one version was live
// cannot be approved once another has gone live (the approver would replace a version
// neither they nor the requester saw); it must be requested again. Rollbacks walk back the
// chain by when versions went live.
func testPolicyRollbackAfterLateApproval(t *testing.T, s store.Store) {
	ctx := t.Context()
	var h [4]string
	for i := 1; i <= 3; i++ {
		v := policyVersion(fmt.Sprintf("late-v%d", i), baseTime().Add(time.Duration(i)*time.Minute))
		mustPublish(t, s, v)
		h[i] = v.Hash
	}
	const action = "onboarding"
	activate := func(hash, actor string, approval bool) store.PolicyActivation {
		t.Helper()
		a, err := s.ActivatePolicy(ctx, store.PolicyActivation{Action: action, Hash: hash, Actor: actor}, approval, "")
		if err != nil {
			t.Fatalf("ActivatePolicy(%s): %v", hash, err)
		}
		return a
	}
	activate(h[1], "alice", false)
	activate(h[2], "alice", false)
	pending := activate(h[1], "dana", true) // requested while v2 is live
	activate(h[3], "carl", false)
	seq, _ := head(t, s)
	if _, err := s.ApproveActivation(ctx, pending.ID, "sam", ""); !errors.Is(err, store.ErrConflict) || !strings.Contains(err.Error(), "changed since it was requested") {
		t.Fatalf("approval after another version went live = %v, want ErrConflict", err)
	}
	if after, _ := head(t, s); after != seq {
		t.Fatalf("a refused approval moved the audit head from %d to %d", seq, after)
	}
	if live := livePolicies(t, s).Active[action]; live != h[3] {
		t.Fatalf("live %s after a refused approval, want v3", live)
	}
	again := activate(h[1], "dana", true) // requested again while v3 is live
	if _, err := s.ApproveActivation(ctx, again.ID, "sam", ""); err != nil {
		t.Fatalf("approval of the request made again: %v", err)
	}
	for _, want := range []string{h[3], h[2], h[1], ""} {
		rb, err := s.RollbackPolicy(ctx, action, "carol", "")
		if err != nil || rb.Hash != want {
			t.Fatalf("rollback = %+v, %v; want %q live (chain v1, v3, v2, v1, default)", rb, err, want)
		}
	}
	verifyChain(t, s)
}

// testPolicyRollbackThroughARepeatedVersion: rollbacks walk back the whole history when a
// version went live twice (v1, v2, v1, v2), instead of going back and forth between the two
// versions for ever, never reaching the default bundle again.
func testPolicyRollbackThroughARepeatedVersion(t *testing.T, s store.Store) {
	ctx := t.Context()
	v1, v2 := policyVersion("rep-v1", baseTime()), policyVersion("rep-v2", baseTime().Add(time.Minute))
	mustPublish(t, s, v1)
	mustPublish(t, s, v2)
	const action = "payout"
	for _, h := range []string{v1.Hash, v2.Hash, v1.Hash, v2.Hash} {
		if _, err := s.ActivatePolicy(ctx, store.PolicyActivation{Action: action, Hash: h, Actor: "alice"}, false, ""); err != nil {
			t.Fatalf("ActivatePolicy(%s): %v", h, err)
		}
	}
	for i, want := range []string{v1.Hash, v2.Hash, v1.Hash, ""} {
		rb, err := s.RollbackPolicy(ctx, action, "carol", "")
		if err != nil || rb.Hash != want {
			t.Fatalf("rollback %d = %+v, %v; want %q live (history v1, v2, v1, v2)", i+1, rb, err, want)
		}
	}
	if _, err := s.RollbackPolicy(ctx, action, "carol", ""); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("rollback of the default bundle = %v, want ErrNotFound", err)
	}
	verifyChain(t, s)
}

func testPolicyShadow(t *testing.T, s store.Store) {
	ctx := t.Context()
	v1, v2, v3 := policyVersion("sh-v1", baseTime()), policyVersion("sh-v2", baseTime()), policyVersion("sh-v3", baseTime())
	for _, v := range []store.PolicyVersion{v1, v2, v3} {
		mustPublish(t, s, v)
	}
	g0 := livePolicies(t, s).Generation
	if err := s.SetShadow(ctx, "login", []string{v3.Hash, v2.Hash, v3.Hash}, "alice", "req-shadow"); err != nil {
		t.Fatalf("SetShadow: %v", err)
	}
	lp := livePolicies(t, s)
	if !slices.Equal(lp.Shadow["login"], []string{v3.Hash, v2.Hash}) || lp.Generation <= g0 {
		t.Fatalf("after SetShadow LivePolicies = %+v, want login shadows [v3 v2] in order, generation > %d", lp, g0)
	}
	if err := s.SetShadow(ctx, "login", []string{v2.Hash, "sha256:unknown"}, "alice", ""); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("SetShadow(unknown version) = %v, want ErrNotFound", err)
	}
	if got := livePolicies(t, s); !slices.Equal(got.Shadow["login"], lp.Shadow["login"]) || got.Generation != lp.Generation {
		t.Errorf("a refused SetShadow changed LivePolicies: %+v", got)
	}
	if err := s.SetShadow(ctx, "payout", []string{v1.Hash}, "alice", ""); err != nil {
		t.Fatalf("SetShadow(payout): %v", err)
	}
	if err := s.SetShadow(ctx, "login", []string{v1.Hash}, "bob", ""); err != nil {
		t.Fatalf("SetShadow (replace): %v", err)
	}
	lp2 := livePolicies(t, s)
	if want := map[string][]string{"login": {v1.Hash}, "payout": {v1.Hash}}; !cmp.Equal(lp2.Shadow, want) {
		t.Errorf("after replacing, shadows = %v, want %v", lp2.Shadow, want)
	}
	if err := s.SetShadow(ctx, "payout", nil, "bob", ""); err != nil {
		t.Fatalf("SetShadow (clear): %v", err)
	}
	lp3 := livePolicies(t, s)
	if _, ok := lp3.Shadow["payout"]; ok || lp3.Generation <= lp2.Generation {
		t.Errorf("after clearing, LivePolicies = %+v", lp3)
	}
	sets := eventPayloads(t, s, store.EventPolicyShadowSet)
	if len(sets) != 4 {
		t.Fatalf("%d policy.shadow_set events, want 4", len(sets))
	}
	if !cmp.Equal(sets[0]["hashes"], []any{v3.Hash, v2.Hash}) || !cmp.Equal(sets[3]["hashes"], []any{}) {
		t.Errorf("policy.shadow_set payloads = %v", sets)
	}
	verifyChain(t, s)
}

func testShadowAgreement(t *testing.T, s store.Store) {
	ctx := t.Context()
	since := baseTime()
	dec := func(n int, action, outcome string, at time.Time) store.DecisionRecord {
		d := decision("sa", n)
		d.Action, d.Outcome, d.CreatedAt = action, outcome, at
		return d
	}
	d := []store.DecisionRecord{
		dec(0, "login", "approve", since.Add(-time.Hour)), // before since
		dec(1, "login", "approve", since.Add(time.Second)),
		dec(2, "login", "review", since.Add(2*time.Second)),
		dec(3, "login", "block", since.Add(3*time.Second)),
		dec(4, "login", "approve", since.Add(4*time.Second)),
		dec(5, "payout", "approve", since.Add(5*time.Second)), // another action
	}
	mustWrite(t, s, d...)

	hA, hB := "sha256:aaaa", "sha256:bbbb"
	res := func(n int, hash, outcome string) store.ShadowResult {
		return store.ShadowResult{DecisionID: d[n].ID, Action: d[n].Action, Hash: hash, Outcome: outcome,
			ReasonCodes: []string{"CODE_" + outcome}, CreatedAt: d[n].CreatedAt.Add(time.Millisecond)}
	}
	batch := []store.ShadowResult{
		res(0, hA, "block"),
		res(1, hA, "approve"), res(2, hA, "block"), res(3, hA, "block"), res(4, hA, "step_up"),
		res(1, hB, "approve"),
		// Version B failed on decision 2: its fail mode answered review.
		{DecisionID: d[2].ID, Action: "login", Hash: hB, Outcome: "review", ReasonCodes: []string{"POLICY_ERROR"}, CreatedAt: d[2].CreatedAt.Add(time.Millisecond)},
		res(5, hA, "block"),
		{DecisionID: "sa-missing", Action: "login", Hash: hA, Outcome: "block", CreatedAt: since.Add(time.Second)},
	}
	if err := s.WriteShadowResults(ctx, batch); err != nil {
		t.Fatalf("WriteShadowResults: %v", err)
	}
	// Duplicates are ignored, in another batch and within one.
	dup := res(1, hA, "block")
	if err := s.WriteShadowResults(ctx, []store.ShadowResult{dup, dup}); err != nil {
		t.Fatalf("WriteShadowResults (duplicates): %v", err)
	}
	if err := s.WriteShadowResults(ctx, []store.ShadowResult{{DecisionID: "x", Action: "login", Hash: hA}}); !errors.Is(err, store.ErrInvalidRecord) {
		t.Errorf("WriteShadowResults(no outcome) = %v, want ErrInvalidRecord", err)
	}
	if err := s.WriteShadowResults(ctx, nil); err != nil {
		t.Errorf("WriteShadowResults(nil) = %v", err)
	}

	got, err := s.ShadowAgreement(ctx, "login", since)
	if err != nil {
		t.Fatalf("ShadowAgreement: %v", err)
	}
	want := []store.ShadowAgreement{
		{Hash: hA, Total: 4, Agree: 2, Confusion: map[string]map[string]int64{
			"approve": {"approve": 1, "step_up": 1},
			"review":  {"block": 1},
			"block":   {"block": 1},
		}},
		{Hash: hB, Total: 2, Agree: 2, Errors: 1, Confusion: map[string]map[string]int64{
			"approve": {"approve": 1},
			"review":  {"review": 1},
		}},
	}
	sort.Slice(got, func(i, j int) bool { return got[i].Hash < got[j].Hash })
	if diff := cmp.Diff(want, got, cmpopts.EquateEmpty()); diff != "" {
		t.Errorf("ShadowAgreement (-want +got):\n%s", diff)
	}
	if got, err := s.ShadowAgreement(ctx, "login", since.Add(3*time.Second)); err != nil || len(got) != 1 || got[0].Total != 2 || got[0].Agree != 1 {
		t.Errorf("ShadowAgreement since decision 3 = %+v, %v; want hash A, 2 results, 1 agreeing", got, err)
	}
	if got, err := s.ShadowAgreement(ctx, "onboarding", since); err != nil || len(got) != 0 {
		t.Errorf("ShadowAgreement(no results) = %+v, %v; want none", got, err)
	}
	verifyChain(t, s)
}
