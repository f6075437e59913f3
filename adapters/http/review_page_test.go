package http_test

import (
	"context"
	"net"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/verdict-engine/verdict/store"
)

// TestReviewPageEndToEnd drives the reviewer's page in headless Chromium against a real
// server: load the queue with a reviewer key (masked), claim the oldest item, decide it
// with a reason code, and see it leave the queue; then a pii key unmasks, and that view
// is audited.
func TestReviewPageEndToEnd(t *testing.T) {
	browser, err := exec.LookPath("chromium")
	if err != nil {
		t.Skip("headless Chromium not installed (apt-get install chromium); the review page's browser test needs it")
	}
	ctx := context.Background()
	e := newEnv(t, options{keys: reviewKeys, verify: true})
	const user = "maria.rossi@example.com"
	for i, score := range []float64{40, 80} {
		_, _, err := e.store.CreateVerification(ctx, store.NewVerification{Verification: store.Verification{
			ID: "ver_0000000000000000000000000000000" + string(rune('a'+i)), UserID: user, Provider: "sandbox",
			ProviderRef: "sbx_page_" + string(rune('a'+i)), Status: store.StatusPendingReview, Score: score,
			ReasonCodes: []string{"DOCUMENT_QUALITY_LOW"},
		}, Actor: "test"})
		if err != nil {
			t.Fatal(err)
		}
	}
	// A claim that lapsed a minute ago holds nothing: the page must not show it as held.
	if _, err := e.store.ClaimReview(ctx, store.ReviewVerification, "ver_0000000000000000000000000000000b", "gone",
		time.Now().Add(-time.Minute), "req-gone"); err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go func() { _ = e.srv.App().Listener(ln) }()
	t.Cleanup(func() { _ = e.srv.App().Shutdown() })
	base := "http://" + ln.Addr().String()

	opts := append(chromedp.DefaultExecAllocatorOptions[:], chromedp.ExecPath(browser), chromedp.NoSandbox, chromedp.Headless)
	actx, cancelA := chromedp.NewExecAllocator(ctx, opts...)
	defer cancelA()
	bctx, cancelB := chromedp.NewContext(actx)
	defer cancelB()
	bctx, cancelT := context.WithTimeout(bctx, 60*time.Second)
	defer cancelT()

	do := func(step string, actions ...chromedp.Action[chromedp.Void]) {
		t.Helper()
		if err := chromedp.Do(bctx, actions...); err != nil {
			t.Fatalf("%s: %v", step, err)
		}
	}
	text := func(sel chromedp.CSS) string {
		t.Helper()
		v, err := chromedp.Run(bctx, chromedp.Text(sel))
		if err != nil {
			t.Fatalf("read %s: %v", sel, err)
		}
		return v
	}
	rowCount := func() int {
		t.Helper()
		n, err := chromedp.Run(bctx, chromedp.Evaluate[int](`document.querySelectorAll("#queue tbody tr").length`))
		if err != nil {
			t.Fatal(err)
		}
		return n
	}

	do("load queue",
		chromedp.Navigate(base+"/review"),
		chromedp.WaitVisible(chromedp.ID("auth")),
		chromedp.SendKeys(chromedp.ID("key"), "rev-secret-0123456789"),
		chromedp.Click(chromedp.ID("load")),
		chromedp.WaitVisible(chromedp.ID("queue")),
	)
	if table, rows := text("#queue"), rowCount(); rows != 2 || strings.Contains(table, user) || !strings.Contains(table, "m***") {
		t.Fatalf("queue (masked) shows %d rows:\n%s", rows, table)
	}
	if lapsed := text(`#queue tbody tr:nth-child(2) td:nth-child(7)`); !strings.HasPrefix(lapsed, "—") || !strings.Contains(lapsed, "lapsed") {
		t.Fatalf("an item whose claim lapsed shows claimed by %q", lapsed)
	}
	// Oldest first: the first session created comes first. Open it, claim it, decide it.
	do("claim",
		chromedp.Click(chromedp.CSS(`#queue tbody tr:first-child button.open`)),
		chromedp.WaitVisible(chromedp.ID("detail")),
		chromedp.Click(chromedp.ID("claim")),
		chromedp.WaitVisible(`//td[text()="rev"]`),
	)
	if claimedBy := text(`#queue tbody tr:first-child td:nth-child(7)`); claimedBy != "rev" {
		t.Fatalf("claimed by %q", claimedBy)
	}
	do("decide",
		chromedp.Click(chromedp.CSS(`#queue tbody tr:first-child button.open`)),
		chromedp.SetValue(chromedp.ID("outcome"), "rejected"),
		chromedp.SendKeys(chromedp.ID("reason"), "DOCUMENT_TAMPERED"),
		chromedp.SendKeys(chromedp.ID("note"), "edges of the photo do not match"),
		chromedp.Click(chromedp.ID("submit-decision")),
		chromedp.WaitVisible(`//p[@id="status"][contains(., "Decided")]`),
	)
	if status, rows := text("#status"), rowCount(); !strings.Contains(status, "rejected (DOCUMENT_TAMPERED)") || rows != 1 {
		t.Fatalf("after deciding: status %q, %d rows left", status, rows)
	}
	decided, err := e.store.GetVerification(ctx, "ver_0000000000000000000000000000000a")
	if err != nil || decided.Status != store.StatusRejected {
		t.Fatalf("oldest session after the page decided it: %+v %v", decided.Status, err)
	}

	// The other session gets a new finding after the reviewer claimed it: deciding it is
	// refused, and the page shows why over the queue as it is now (claim released, the new
	// reason listed), not over what the reviewer saw when they claimed it.
	do("claim the second",
		chromedp.Click(chromedp.CSS(`#queue tbody tr:first-child button.open`)),
		chromedp.Click(chromedp.ID("claim")),
		chromedp.WaitVisible(`//p[@id="status"][contains(., "Claimed")]`),
	)
	if _, err := e.store.UpdateVerification(ctx, "ver_0000000000000000000000000000000b", store.VerificationChange{Actor: "sandbox"},
		func(v *store.Verification) error {
			v.Score, v.ReasonCodes = 95, []string{"WATCHLIST_HIT"}
			return nil
		}); err != nil {
		t.Fatal(err)
	}
	do("decide the changed session",
		chromedp.SetValue(chromedp.ID("outcome"), "approved"),
		chromedp.SendKeys(chromedp.ID("reason"), "DOCUMENT_VERIFIED_MANUALLY"),
		chromedp.Click(chromedp.ID("submit-decision")),
		chromedp.WaitVisible(`//p[@id="status"][contains(., "claim it and review it again")]`),
	)
	if reasons, claimedBy := text("#d-reasons"), text(`#queue tbody tr:first-child td:nth-child(7)`); !strings.Contains(reasons, "WATCHLIST_HIT") || claimedBy != "—" {
		t.Fatalf("after a refused decision on a changed session the page shows reasons %q, claimed by %q", reasons, claimedBy)
	}
	if got, _ := e.store.GetVerification(ctx, "ver_0000000000000000000000000000000b"); got.Status != store.StatusPendingReview {
		t.Fatalf("changed session decided on a released claim: %s", got.Status)
	}

	// A pii reviewer unmasks: the page shows the user id, and the view is audited.
	do("unmask",
		chromedp.SetValue(chromedp.ID("key"), "revpii-secret-0123456789"),
		chromedp.Click(chromedp.ID("unmask")),
		chromedp.Click(chromedp.ID("load")),
		chromedp.WaitVisible(`//p[@id="status"][contains(., "audited")]`),
	)
	if table := text("#queue"); !strings.Contains(table, user) {
		t.Fatalf("unmasked queue lacks the user id:\n%s", table)
	}
	evs, err := e.store.AuditEvents(ctx, 0, 1000)
	if err != nil {
		t.Fatal(err)
	}
	var unmasked, decidedEvents int
	for _, ev := range evs {
		if ev.Type == store.EventPIIUnmasked && ev.Actor == "revpii" {
			unmasked++
		}
		if ev.Type == store.EventReviewDecided && ev.Actor == "rev" && strings.Contains(string(ev.Payload), `"reason":"DOCUMENT_TAMPERED"`) &&
			strings.Contains(string(ev.Payload), `"outcome":"rejected"`) {
			decidedEvents++
		}
	}
	if unmasked != 1 || decidedEvents != 1 {
		t.Fatalf("audit: %d unmasked views (want 1), %d review.decided by rev with the reason (want 1)", unmasked, decidedEvents)
	}
}
