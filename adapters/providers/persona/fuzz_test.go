package persona

import (
	"errors"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/verdict-engine/verdict/adapters/providers"
	"github.com/verdict-engine/verdict/store"
)

var codeRE = regexp.MustCompile(`^[A-Z0-9]+(_[A-Z0-9]+)*$`)

func FuzzParseSignatureHeader(f *testing.F) {
	f.Add("t=1710527705,v1=" + strings.Repeat("ab", 32))
	f.Add("t=1,v1=aa t=2,v1=bb")
	f.Add("t=1,v1=aa,v1=bb,v0=cc,")
	f.Add("t=1,t=2,v1=aa")
	f.Add("v1=aa")
	f.Add("t=,v1=")
	f.Add("t=1,v1=a=b")
	f.Add(" \t\n")
	f.Fuzz(func(t *testing.T, h string) {
		sets, err := parseSignatureHeader(h)
		if err != nil {
			if sets != nil {
				t.Fatalf("sets with an error: %v", sets)
			}
			return
		}
		if len(sets) == 0 || len(sets) > maxSets || len(h) > maxHeaderLen {
			t.Fatalf("%d sets from %d bytes", len(sets), len(h))
		}
		var rebuilt []string
		for _, s := range sets {
			if s.t == "" || len(s.v1) == 0 || len(s.v1) > maxV1PerSet {
				t.Fatalf("incomplete set %+v", s)
			}
			if strconv.FormatInt(s.ts, 10) != strings.TrimLeft(s.t, "0") && !(s.ts == 0 && strings.Trim(s.t, "0") == "") {
				t.Fatalf("t %q parsed as %d", s.t, s.ts)
			}
			parts := []string{"t=" + s.t}
			for _, v := range s.v1 {
				if v == "" || strings.ContainsAny(v, ", \t\r\n") {
					t.Fatalf("bad v1 %q", v)
				}
				parts = append(parts, "v1="+v)
			}
			rebuilt = append(rebuilt, strings.Join(parts, ","))
		}
		// What was parsed is the header's meaning: formatting it again parses the same.
		again, err := parseSignatureHeader(strings.Join(rebuilt, " "))
		if err != nil || len(again) != len(sets) {
			t.Fatalf("rebuilt header does not parse: %v", err)
		}
		for i := range sets {
			if again[i].t != sets[i].t || strings.Join(again[i].v1, ",") != strings.Join(sets[i].v1, ",") {
				t.Fatalf("set %d: %+v became %+v", i, sets[i], again[i])
			}
		}
	})
}

// FuzzVerifyWebhook checks that VerifyWebhook never panics and accepts a delivery only when
// a set of the header carries a v1 that is the HMAC of "<t>.<body>" under the secret, with t
// in the tolerance. With sign set, the header is made valid for the fuzzed body and offset,
// so the payload parser and the time window are explored through the verifier too.
func FuzzVerifyWebhook(f *testing.F) {
	now := webhookAt
	// Compact seeds: the fuzzer minimizes every new input for up to a minute, which on
	// the multi-kilobyte fixtures of the unit tests would eat the whole fuzzing budget.
	body := []byte(`{"data":{"type":"event","id":"evt_1","attributes":{"name":"inquiry.declined","created-at":"2024-03-15T18:35:01Z","payload":{"data":{"type":"inquiry","id":"inq_1","attributes":{"reference-id":"usr_1","name-first":"A"}},"included":[{"type":"verification/government-id","attributes":{"status":"failed","checks":[{"name":"id_expired","status":"failed"}]}}]}}}}`)
	f.Add(sign(secretNew, now.Unix(), body), body, int64(0), false)
	f.Add(sign(secretNew, now.Unix(), body), body, int64(0), true)
	f.Add("t=1,v1=00 "+sign(secretNew, now.Unix(), body), body, int64(-400), true)
	f.Add("", []byte(`{}`), int64(0), false)
	f.Add("t=1710527705,v1=zz", []byte(`{"data": null}`), int64(299), true)
	f.Add("", []byte(`{"data":{"id":"evt_2","attributes":{"name":"inquiry.approved","created-at":"2024-03-15T18:35:01Z","payload":{"data":{"id":"inq_1"}}}}}`), int64(301), true)
	f.Add("", []byte(`{"data":{"id":"evt_1","attributes":{"name":"inquiry.x","createdAt":"2024-03-15T18:35:01Z","payload":{"data":{"id":"inq_1"}}}}}`), int64(-1), true)
	p := webhookProvider()
	f.Fuzz(func(t *testing.T, h string, body []byte, offset int64, signIt bool) {
		offset %= 3600
		if signIt {
			h = sign(secretNew, now.Unix()+offset, body)
		}
		ev, err := p.VerifyWebhook(header(h), body, now)
		valid := validlySigned(h, body, now)
		switch {
		case err == nil && !valid:
			t.Fatalf("accepted a delivery without a valid signature: header %q", h)
		case err == nil:
			checkEvent(t, ev)
		case valid && !errors.Is(err, providers.ErrMalformedPayload):
			t.Fatalf("refused a validly signed delivery: %v", err)
		}
		if err != nil && !cmpZero(ev) {
			t.Fatalf("event with an error: %+v", ev)
		}
		if signIt {
			wantStale := offset > 300 || offset < -300
			if wantStale != errors.Is(err, providers.ErrStaleTimestamp) {
				t.Fatalf("offset %ds: err = %v", offset, err)
			}
		}
	})
}

// validlySigned is an independent oracle of the signature scheme, without the parser's
// rejection of odd headers: true when any whitespace-separated set has a decimal t within
// 5 minutes of now and a v1 equal to the expected HMAC.
func validlySigned(h string, body []byte, now time.Time) bool {
	if _, err := parseSignatureHeader(h); err != nil {
		return false
	}
	for _, set := range strings.Fields(h) {
		var t string
		var v1 []string
		for _, kv := range strings.Split(set, ",") {
			if v, ok := strings.CutPrefix(kv, "t="); ok {
				t = v
			} else if v, ok := strings.CutPrefix(kv, "v1="); ok {
				v1 = append(v1, v)
			}
		}
		ts, err := strconv.ParseInt(t, 10, 64)
		if err != nil || now.Sub(time.Unix(ts, 0)).Abs() > DefaultTolerance {
			continue
		}
		want := providers.HexHMAC(providers.SHA256, secretNew, []byte(t+"."+string(body)))
		for _, v := range v1 {
			if strings.EqualFold(strings.TrimSpace(v), want) {
				return true
			}
		}
	}
	return false
}

func FuzzParsePayload(f *testing.F) {
	f.Add(eventBody("evt_1", "inquiry.approved", "2024-03-15T18:35:01.100Z", ""))
	f.Add(eventBody("evt_2", "inquiry.declined", "2024-03-15T18:35:01Z", failedGovID))
	f.Add(eventBody("evt_3", "inquiry.marked-for-review", "2024-03-15T18:35:01+02:00", `[{"type":"verification/x","attributes":{"status":"failed","checks":[{"name":"a-b","status":"failed"}]}}]`))
	f.Add([]byte(`{"data":{"type":"event","id":"evt_v","attributes":{"name":"verification.passed","created-at":"2024-03-15T18:33:00Z","payload":{"data":{"type":"verification/selfie","id":"ver_1","relationships":{"inquiry":{"data":{"id":"inq_1"}}}}}}}}`))
	f.Add([]byte(`{"Data":{"ID":"evt_1","Attributes":{"Name":"inquiry.created","CREATED_AT":"2024-03-15T18:35:01Z","payload":{"data":{"id":"inq_1","attributes":{"reference_id":null}}}}}}`))
	f.Add([]byte(`{"data":{"id":"evt_1","id":"evt_2","attributes":{}}}`))
	f.Add([]byte(`null`))
	f.Fuzz(func(t *testing.T, body []byte) {
		for _, approve := range []bool{false, true} {
			ev, err := ParseEvent(body, approve)
			if err != nil {
				if !errors.Is(err, providers.ErrMalformedPayload) {
					t.Fatalf("error does not wrap ErrMalformedPayload: %v", err)
				}
				if !cmpZero(ev) {
					t.Fatalf("event with an error: %+v", ev)
				}
				continue
			}
			checkEvent(t, ev)
		}
	})
}

// checkEvent holds for every Event the adapter returns.
func checkEvent(t *testing.T, ev providers.Event) {
	t.Helper()
	if !validID(ev.ID) || !validName(ev.Type) || ev.OccurredAt.IsZero() {
		t.Fatalf("incomplete event %+v", ev)
	}
	if ev.Status != "" && !store.ValidStatus(ev.Status) {
		t.Fatalf("non-canonical status %q", ev.Status)
	}
	if strings.HasPrefix(ev.Type, "inquiry.") && !validID(ev.ProviderRef) {
		t.Fatalf("inquiry event without inquiry: %+v", ev)
	}
	if ev.ProviderRef != "" && !validID(ev.ProviderRef) {
		t.Fatalf("invalid ProviderRef %q", ev.ProviderRef)
	}
	if ev.Status == "" && len(ev.ReasonCodes) > 0 {
		t.Fatalf("reason codes without a status: %+v", ev)
	}
	if len(ev.ReasonCodes) > maxReasonCodes {
		t.Fatalf("%d reason codes", len(ev.ReasonCodes))
	}
	seen := map[string]bool{}
	for _, c := range ev.ReasonCodes {
		if !codeRE.MatchString(c) || len(c) > maxCodeLen || seen[c] {
			t.Fatalf("bad reason code %q in %v", c, ev.ReasonCodes)
		}
		seen[c] = true
	}
}

func cmpZero(ev providers.Event) bool {
	return ev.ID == "" && ev.Type == "" && ev.ProviderRef == "" && ev.UserID == "" && ev.Status == "" &&
		ev.Score == nil && ev.ReasonCodes == nil && ev.OccurredAt.IsZero() && !ev.Fetch
}
