package store_test

import (
	"errors"
	"slices"
	"strings"
	"testing"

	"github.com/verdict-engine/verdict/store"
)

// The expected state machine, written out by hand: row = from, column = to, in the order
// of cols. 'x' is a legal move, '.' an illegal one. Staying in a canonical status is
// always allowed (the diagonal), an unknown status never moves nor is reached, and
// approved, rejected and expired are final.
var (
	cols = []string{
		store.StatusInitiated, store.StatusCapturing, store.StatusSubmitted, store.StatusPendingReview,
		store.StatusApproved, store.StatusRejected, store.StatusNeedsResubmission, store.StatusExpired,
		"unknown", "",
	}
	//                 ini cap sub pen app rej nee exp unk ""
	expectedMatrix = map[string]string{
		store.StatusInitiated:         "x   x   x   x   x   x   x   x   .   .",
		store.StatusCapturing:         ".   x   x   x   x   x   x   x   .   .",
		store.StatusSubmitted:         ".   .   x   x   x   x   x   x   .   .",
		store.StatusPendingReview:     ".   .   .   x   x   x   x   x   .   .",
		store.StatusApproved:          ".   .   .   .   x   .   .   .   .   .",
		store.StatusRejected:          ".   .   .   .   .   x   .   .   .   .",
		store.StatusNeedsResubmission: ".   x   x   x   x   x   x   x   .   .",
		store.StatusExpired:           ".   .   .   .   .   .   .   x   .   .",
		"unknown":                     ".   .   .   .   .   .   .   .   .   .",
		"":                            ".   .   .   .   .   .   .   .   .   .",
	}
)

func TestStatusesAreTheCanonicalOnes(t *testing.T) {
	want := []string{"initiated", "capturing", "submitted", "pending_review", "approved", "rejected", "needs_resubmission", "expired"}
	if !slices.Equal(store.Statuses, want) {
		t.Errorf("Statuses = %q, want %q", store.Statuses, want)
	}
	for _, s := range cols {
		if got, want := store.ValidStatus(s), slices.Contains(want, s); got != want {
			t.Errorf("ValidStatus(%q) = %v, want %v", s, got, want)
		}
	}
}

func TestTerminalStatuses(t *testing.T) {
	terminal := map[string]bool{store.StatusApproved: true, store.StatusRejected: true, store.StatusExpired: true}
	for _, s := range cols {
		if got := store.Terminal(s); got != terminal[s] {
			t.Errorf("Terminal(%q) = %v, want %v", s, got, terminal[s])
		}
	}
}

func TestTransitionMatrix(t *testing.T) {
	if len(expectedMatrix) != len(cols) {
		t.Fatalf("the expected matrix has %d rows for %d statuses", len(expectedMatrix), len(cols))
	}
	for _, from := range cols {
		row, ok := expectedMatrix[from]
		if !ok {
			t.Fatalf("no expected row for %q", from)
		}
		cells := strings.Fields(row)
		if len(cells) != len(cols) {
			t.Fatalf("row %q has %d cells, want %d", from, len(cells), len(cols))
		}
		for i, to := range cols {
			want := cells[i] == "x"
			if got := store.CanTransition(from, to); got != want {
				t.Errorf("CanTransition(%q, %q) = %v, want %v", from, to, got, want)
			}
			err := store.CheckTransition(from, to)
			if want {
				if err != nil {
					t.Errorf("CheckTransition(%q, %q) = %v, want nil", from, to, err)
				}
				continue
			}
			var ite *store.IllegalTransitionError
			if !errors.As(err, &ite) || ite.From != from || ite.To != to {
				t.Errorf("CheckTransition(%q, %q) = %#v, want *IllegalTransitionError{%q, %q}", from, to, err, from, to)
				continue
			}
			if !errors.Is(err, store.ErrIllegalTransition) {
				t.Errorf("CheckTransition(%q, %q): errors.Is(ErrIllegalTransition) = false", from, to)
			}
			if msg := err.Error(); !strings.Contains(msg, "from "+from+" to "+to) {
				t.Errorf("CheckTransition(%q, %q).Error() = %q, want it to name both statuses", from, to, msg)
			}
		}
	}
}

// Every path through the machine ends in a final status: from any status, one move
// reaches expired, and nothing leaves a final status.
func TestEveryOpenStatusCanExpire(t *testing.T) {
	for _, s := range store.Statuses {
		if store.Terminal(s) {
			for _, to := range store.Statuses {
				if to != s && store.CanTransition(s, to) {
					t.Errorf("final status %s can move to %s", s, to)
				}
			}
			continue
		}
		if !store.CanTransition(s, store.StatusExpired) {
			t.Errorf("%s cannot expire", s)
		}
	}
}

func TestIllegalTransitionErrorIsNotOtherErrors(t *testing.T) {
	err := store.CheckTransition(store.StatusApproved, store.StatusCapturing)
	for _, other := range []error{store.ErrNotFound, store.ErrInvalidRecord, store.ErrAlreadyApplied, store.ErrClaimed} {
		if errors.Is(err, other) {
			t.Errorf("errors.Is(%v, %v) = true", err, other)
		}
	}
}

func TestApplyResolutionReasons(t *testing.T) {
	for _, tc := range []struct {
		outcome, reason string
		want            []string
	}{
		{store.StatusApproved, "", []string{}},
		{store.StatusApproved, "DOCUMENT_OK", []string{}},
		{store.StatusRejected, "FRAUD_CONFIRMED", []string{"FRAUD_CONFIRMED"}},
		{store.StatusRejected, "", []string{"ID_EXPIRED"}},
		{store.StatusNeedsResubmission, "DOCUMENT_IMAGE_QUALITY", []string{"DOCUMENT_IMAGE_QUALITY"}},
	} {
		v := store.Verification{Status: store.StatusPendingReview, ReasonCodes: []string{"ID_EXPIRED"}}
		store.ApplyResolution(&v, store.ReviewResolution{Outcome: tc.outcome, Reason: tc.reason})
		if v.Status != tc.outcome || !slices.Equal(v.ReasonCodes, tc.want) {
			t.Errorf("%s with reason %q: %s %q, want %q", tc.outcome, tc.reason, v.Status, v.ReasonCodes, tc.want)
		}
	}
}
