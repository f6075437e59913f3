package store

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

// memLog is an in-memory AuditLog whose events and head tests may tamper with.
type memLog struct {
	events  []AuditEvent
	headSeq int64
	head    []byte
	// headOverride, when set, replaces the head AuditHead reports.
	headOverride func() (int64, []byte)
}

func (l *memLog) AuditEvents(_ context.Context, after int64, limit int) ([]AuditEvent, error) {
	var out []AuditEvent
	for _, ev := range l.events {
		if ev.Seq > after && len(out) < limit {
			out = append(out, ev)
		}
	}
	return out, nil
}

func (l *memLog) AuditHead(context.Context) (int64, []byte, error) {
	if l.headOverride != nil {
		s, h := l.headOverride()
		return s, h, nil
	}
	return l.headSeq, l.head, nil
}

func (l *memLog) append(t testing.TB, ev AuditEvent) {
	t.Helper()
	if err := LinkEvent(&ev, l.headSeq, l.head); err != nil {
		t.Fatalf("link event: %v", err)
	}
	l.events = append(l.events, ev)
	l.headSeq, l.head = ev.Seq, ev.Hash
}

var t0 = time.Date(2026, 3, 14, 15, 9, 26, 535897000, time.UTC)

func newMemLog(t testing.TB, n int) *memLog {
	t.Helper()
	l := &memLog{}
	for i := range n {
		l.append(t, AuditEvent{
			Time:          t0.Add(time.Duration(i) * time.Millisecond),
			Type:          EventDecisionCreated,
			Actor:         "key_1",
			CorrelationID: fmt.Sprintf("req-%d", i),
			SubjectRef:    SubjectRef(fmt.Sprintf("user-%d", i)),
			Payload:       json.RawMessage(fmt.Sprintf(`{"n": %d, "decision_id": "d%d"}`, i, i)),
		})
	}
	return l
}

func TestCanonicalEventGolden(t *testing.T) {
	ev := AuditEvent{
		Seq:           7,
		Time:          time.Date(2026, 1, 2, 4, 4, 5, 123456000, time.FixedZone("x", 3600)),
		Type:          "list.entry_put",
		Actor:         "key<1>",
		CorrelationID: "req&1",
		SubjectRef:    "sha256:ab",
		Payload:       json.RawMessage(" {\"z\": [1.0, 2e2, \"\\u00e9\"],\n \"a\": {\"y\": null, \"b\": true}} "),
		PrevHash:      []byte{1, 2},
		Hash:          []byte{3, 4},
	}
	want := `{"seq":7,"time":"2026-01-02T03:04:05.123456Z","type":"list.entry_put","actor":"key<1>",` +
		`"correlation_id":"req&1","subject_ref":"sha256:ab","payload":{"a":{"b":true,"y":null},"z":[1,200,"é"]}}`
	if got := string(CanonicalEvent(ev)); got != want {
		t.Errorf("CanonicalEvent:\n got %s\nwant %s", got, want)
	}
	sum := sha256.Sum256(append([]byte{9, 9}, want...))
	if got := ChainHash([]byte{9, 9}, ev); !bytes.Equal(got, sum[:]) {
		t.Errorf("ChainHash = %x, want %x", got, sum)
	}
}

func TestCanonicalEventPayloadEdgeCases(t *testing.T) {
	base := AuditEvent{Seq: 1, Time: t0, Type: "t"}
	empty, null := base, base
	null.Payload = json.RawMessage("null")
	if !bytes.Equal(CanonicalEvent(empty), CanonicalEvent(null)) {
		t.Errorf("empty payload should encode as null")
	}
	bad := base
	bad.Payload = json.RawMessage(`{"a":`)
	if got := string(CanonicalEvent(bad)); !strings.Contains(got, `"payload":"invalid-json:7b2261223a"`) {
		t.Errorf("invalid payload encoded as %s", got)
	}
}

func TestCanonicalJSON(t *testing.T) {
	tests := []struct {
		name, in, want string
		wantErr        bool
	}{
		{name: "whitespace and order", in: " { \"b\" : 1 , \"a\" : [ true , false ] } ", want: `{"a":[true,false],"b":1}`},
		{name: "nested objects sorted", in: `{"z":{"d":1,"c":{"f":1,"e":2}},"y":[]}`, want: `{"y":[],"z":{"c":{"e":2,"f":1},"d":1}}`},
		{name: "numbers", in: `[1.0,1e2,-0.5,1E-7,123456789012]`, want: `[1,100,-0.5,1e-7,123456789012]`},
		{name: "no html escaping", in: `"<a&b>"`, want: `"<a&b>"`},
		{name: "escapes decoded", in: `"\u00e9\/\u2028"`, want: `"é/\u2028"`},
		{name: "repeated key last wins", in: `{"a":1,"a":2}`, want: `{"a":2}`},
		{name: "scalar", in: `"x"`, want: `"x"`},
		{name: "invalid", in: `{"a":`, wantErr: true},
		{name: "trailing data", in: `{} {}`, wantErr: true},
		{name: "empty", in: ``, wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := CanonicalJSON([]byte(tt.in))
			if (err != nil) != tt.wantErr {
				t.Fatalf("CanonicalJSON(%q) error = %v, wantErr %v", tt.in, err, tt.wantErr)
			}
			if string(got) != tt.want {
				t.Errorf("CanonicalJSON(%q) = %s, want %s", tt.in, got, tt.want)
			}
		})
	}
}

func TestLinkEvent(t *testing.T) {
	ev := AuditEvent{Time: t0.In(time.FixedZone("y", -7200)).Add(789 * time.Nanosecond), Type: "t", Payload: json.RawMessage(`{"b":1, "a":2}`)}
	if err := LinkEvent(&ev, 41, []byte{7}); err != nil {
		t.Fatal(err)
	}
	if ev.Seq != 42 || !bytes.Equal(ev.PrevHash, []byte{7}) || string(ev.Payload) != `{"a":2,"b":1}` {
		t.Errorf("linked event = %+v", ev)
	}
	if !ev.Time.Equal(t0) || ev.Time.Location() != time.UTC {
		t.Errorf("time = %v, want %v (UTC, microseconds)", ev.Time, t0)
	}
	if !bytes.Equal(ev.Hash, ChainHash([]byte{7}, ev)) {
		t.Errorf("hash does not verify")
	}
	for _, p := range []string{``, `[1]`, `"x"`, `{`} {
		ev := AuditEvent{Type: "t", Payload: json.RawMessage(p)}
		if err := LinkEvent(&ev, 0, nil); !errors.Is(err, ErrInvalidRecord) {
			t.Errorf("LinkEvent(payload %q) error = %v, want ErrInvalidRecord", p, err)
		}
	}
}

func TestVerifyChain(t *testing.T) {
	tests := []struct {
		name       string
		n          int
		tamper     func(l *memLog)
		wantSeq    int64 // 0: no error
		wantReason string
	}{
		{name: "empty log", n: 0},
		{name: "intact", n: 10},
		{name: "several pages", n: 2*verifyPageSize + 17},
		{
			name: "payload changed", n: 10, wantSeq: 4, wantReason: "content",
			tamper: func(l *memLog) { l.events[3].Payload = json.RawMessage(`{"n":99,"decision_id":"d3"}`) },
		},
		{
			name: "payload reformatted only", n: 10,
			tamper: func(l *memLog) { l.events[3].Payload = json.RawMessage(`{ "decision_id" : "d3", "n" : 3.0 }`) },
		},
		{
			name: "actor changed", n: 5, wantSeq: 1, wantReason: "content",
			tamper: func(l *memLog) { l.events[0].Actor = "someone else" },
		},
		{
			name: "prev hash changed", n: 10, wantSeq: 6, wantReason: "prev_hash",
			tamper: func(l *memLog) { l.events[5].PrevHash = []byte("x") },
		},
		{
			name: "event removed", n: 10, wantSeq: 5, wantReason: "gap",
			tamper: func(l *memLog) { l.events = append(l.events[:4], l.events[5:]...) },
		},
		{
			name: "event rehashed after change", n: 10, wantSeq: 6, wantReason: "prev_hash",
			tamper: func(l *memLog) {
				ev := &l.events[4]
				ev.Actor = "mallory"
				ev.Hash = ChainHash(ev.PrevHash, *ev)
			},
		},
		{
			name: "tail removed behind the head", n: 10, wantSeq: 9, wantReason: "missing",
			tamper: func(l *memLog) { l.events = l.events[:8] },
		},
		{
			name: "head behind the events", n: 10, wantSeq: 8, wantReason: "beyond",
			tamper: func(l *memLog) { l.headSeq, l.head = 7, l.events[6].Hash },
		},
		{
			name: "head hash differs", n: 10, wantSeq: 10, wantReason: "head hash",
			tamper: func(l *memLog) { l.head = []byte("x") },
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			l := newMemLog(t, tt.n)
			if tt.tamper != nil {
				tt.tamper(l)
			}
			seq, head, err := VerifyChain(context.Background(), l)
			if tt.wantSeq == 0 {
				if err != nil {
					t.Fatalf("VerifyChain: %v", err)
				}
				if seq != int64(tt.n) || !bytes.Equal(head, l.head) {
					t.Errorf("VerifyChain = (%d, %x), want (%d, %x)", seq, head, tt.n, l.head)
				}
				return
			}
			var broken *BrokenLinkError
			if !errors.As(err, &broken) {
				t.Fatalf("VerifyChain error = %v, want *BrokenLinkError", err)
			}
			if broken.Seq != tt.wantSeq || !strings.Contains(broken.Reason, tt.wantReason) {
				t.Errorf("broken link = %+v, want seq %d reason containing %q", broken, tt.wantSeq, tt.wantReason)
			}
		})
	}
}

func TestVerifyChainSeesConcurrentAppends(t *testing.T) {
	l := newMemLog(t, 3)
	appended := false
	// The head moves after the last page was read, as when a writer commits meanwhile.
	l.headOverride = func() (int64, []byte) {
		if !appended {
			appended = true
			l.headOverride = nil
			l.append(t, AuditEvent{Time: t0, Type: "t", Payload: json.RawMessage(`{}`)})
		}
		return l.headSeq, l.head
	}
	seq, _, err := VerifyChain(context.Background(), l)
	if err != nil || seq != 4 {
		t.Fatalf("VerifyChain = %d, %v; want 4, nil", seq, err)
	}
}

type failingLog struct{ err error }

func (f failingLog) AuditEvents(context.Context, int64, int) ([]AuditEvent, error) { return nil, f.err }
func (f failingLog) AuditHead(context.Context) (int64, []byte, error)              { return 0, nil, f.err }

func TestVerifyChainReadError(t *testing.T) {
	_, _, err := VerifyChain(context.Background(), failingLog{err: ErrUnavailable})
	if !errors.Is(err, ErrUnavailable) {
		t.Errorf("error = %v, want it to wrap ErrUnavailable", err)
	}
}

func TestCheckpoint(t *testing.T) {
	pub, priv, err := ed25519.GenerateKey(nil)
	if err != nil {
		t.Fatal(err)
	}
	otherPub, _, _ := ed25519.GenerateKey(nil)
	ctx := context.Background()

	l := newMemLog(t, 20)
	seq, head, err := VerifyChain(ctx, l)
	if err != nil {
		t.Fatal(err)
	}
	cp := SignCheckpoint(priv, seq, head, t0)

	t.Run("json roundtrip", func(t *testing.T) {
		b, err := json.Marshal(cp)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Contains(b, fmt.Appendf(nil, `"head":"%x"`, head)) {
			t.Errorf("head is not hex in %s", b)
		}
		var back Checkpoint
		if err := json.Unmarshal(b, &back); err != nil {
			t.Fatal(err)
		}
		if diff := cmp.Diff(cp, back); diff != "" {
			t.Errorf("roundtrip (-want +got):\n%s", diff)
		}
		if err := VerifyCheckpoint(ctx, pub, back, l); err != nil {
			t.Errorf("VerifyCheckpoint after roundtrip: %v", err)
		}
	})

	t.Run("holds while the log grows", func(t *testing.T) {
		l := newMemLog(t, 20)
		l.append(t, AuditEvent{Time: t0, Type: "t", Payload: json.RawMessage(`{}`)})
		if err := VerifyCheckpoint(ctx, pub, cp, l); err != nil {
			t.Errorf("VerifyCheckpoint: %v", err)
		}
	})

	t.Run("wrong key or altered fields", func(t *testing.T) {
		if err := VerifyCheckpoint(ctx, otherPub, cp, l); !errors.Is(err, ErrCheckpointSignature) {
			t.Errorf("other key: %v, want ErrCheckpointSignature", err)
		}
		for _, alter := range []func(*Checkpoint){
			func(c *Checkpoint) { c.Seq-- },
			func(c *Checkpoint) { c.Head = l.events[3].Hash },
			func(c *Checkpoint) { c.Time = c.Time.Add(time.Second) },
		} {
			c := cp
			alter(&c)
			if err := VerifyCheckpoint(ctx, pub, c, l); !errors.Is(err, ErrCheckpointSignature) {
				t.Errorf("altered checkpoint: %v, want ErrCheckpointSignature", err)
			}
		}
	})

	t.Run("rolled back", func(t *testing.T) {
		l := newMemLog(t, 20)
		l.events = l.events[:15]
		l.headSeq, l.head = 15, l.events[14].Hash
		if _, _, err := VerifyChain(ctx, l); err != nil {
			t.Fatalf("a truncated chain is still self-consistent, VerifyChain: %v", err)
		}
		var broken *BrokenLinkError
		if err := VerifyCheckpoint(ctx, pub, cp, l); !errors.As(err, &broken) || broken.Seq != 20 || !strings.Contains(broken.Reason, "rolled back") {
			t.Errorf("VerifyCheckpoint = %v, want rollback at seq 20", err)
		}
	})

	t.Run("rewritten and rehashed", func(t *testing.T) {
		// Someone with write access changes event 5 and recomputes every hash after it.
		l := newMemLog(t, 20)
		rewritten := &memLog{}
		for i, ev := range l.events {
			if i == 4 {
				ev.Payload = json.RawMessage(`{"n":4,"decision_id":"forged"}`)
			}
			rewritten.append(t, ev)
		}
		if _, _, err := VerifyChain(ctx, rewritten); err != nil {
			t.Fatalf("a rehashed chain is still self-consistent, VerifyChain: %v", err)
		}
		var broken *BrokenLinkError
		if err := VerifyCheckpoint(ctx, pub, cp, rewritten); !errors.As(err, &broken) || broken.Seq != 20 {
			t.Errorf("VerifyCheckpoint = %v, want a broken link at seq 20", err)
		}
	})

	t.Run("checkpointed event altered in place", func(t *testing.T) {
		l := newMemLog(t, 20)
		l.events[19].Actor = "mallory"
		var broken *BrokenLinkError
		if err := VerifyCheckpoint(ctx, pub, cp, l); !errors.As(err, &broken) || !strings.Contains(broken.Reason, "content") {
			t.Errorf("VerifyCheckpoint = %v, want content mismatch", err)
		}
	})

	t.Run("empty log checkpoint", func(t *testing.T) {
		c := SignCheckpoint(priv, 0, nil, t0)
		if err := VerifyCheckpoint(ctx, pub, c, &memLog{}); err != nil {
			t.Errorf("VerifyCheckpoint: %v", err)
		}
	})
}

// FuzzCheckpointJSON: any file given to `verdict audit verify --checkpoint` either fails to
// decode with a one-line error or decodes to a checkpoint that encodes and decodes to itself,
// and whose signature verifies only if it is a signed checkpoint unchanged in every part.
func FuzzCheckpointJSON(f *testing.F) {
	priv := ed25519.NewKeyFromSeed(bytes.Repeat([]byte{7}, ed25519.SeedSize))
	pub := priv.Public().(ed25519.PublicKey)
	signed := SignCheckpoint(priv, 42, bytes.Repeat([]byte{0xab}, 32), time.Date(2026, 12, 7, 14, 0, 0, 123, time.UTC))
	good, err := json.Marshal(signed)
	if err != nil {
		f.Fatal(err)
	}
	f.Add(good)
	f.Add([]byte(`{"seq":-1,"head":"","time":"0001-01-01T00:00:00Z","signature":""}`))
	f.Add([]byte(`{"seq":1,"head":"zz","time":"2026-12-07T14:00:00Z","signature":"00"}`))
	f.Add([]byte(`{"seq":1e400}`))
	f.Add([]byte(`[]`))
	f.Fuzz(func(t *testing.T, b []byte) {
		var cp Checkpoint
		if err := json.Unmarshal(b, &cp); err != nil {
			if strings.ContainsAny(err.Error(), "\n\r") {
				t.Fatalf("error is not one line: %q", err)
			}
			return
		}
		again, err := json.Marshal(cp)
		if err != nil {
			t.Fatalf("encode %+v: %v", cp, err)
		}
		var cp2 Checkpoint
		if err := json.Unmarshal(again, &cp2); err != nil {
			t.Fatalf("decode %s: %v", again, err)
		}
		if cp2.Seq != cp.Seq || !bytes.Equal(cp2.Head, cp.Head) || !cp2.Time.Equal(cp.Time) || !bytes.Equal(cp2.Signature, cp.Signature) {
			t.Fatalf("round trip changed %+v into %+v", cp, cp2)
		}
		same := cp.Seq == signed.Seq && bytes.Equal(cp.Head, signed.Head) && cp.Time.Equal(signed.Time) && bytes.Equal(cp.Signature, signed.Signature)
		if ok := ed25519.Verify(pub, checkpointMessage(cp.Seq, cp.Head, cp.Time), cp.Signature); ok != same {
			t.Fatalf("signature verifies = %v for %+v (the signed checkpoint: %v)", ok, cp, same)
		}
	})
}
