package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/verdict-engine/verdict/adapters/vault"
	"github.com/verdict-engine/verdict/adapters/verification"
	"github.com/verdict-engine/verdict/engine/pii"
	"github.com/verdict-engine/verdict/store"
	"github.com/verdict-engine/verdict/store/postgres"
)

func testDatabaseURL() string {
	if v := os.Getenv("VERDICT_TEST_DATABASE_URL"); v != "" {
		return v
	}
	return "postgres://postgres@127.0.0.1:5432/test?sslmode=disable"
}

// TestEraseSubjectEndToEnd runs a real server on Postgres, gives one subject 1,000
// decisions and 10 verification sessions (evidence uploaded, provider webhooks received),
// and erases it with DELETE /v1/subjects/{id}: the erasure must take under a second, leave
// nothing of the subject decryptable (decisions' personal data, raw payloads, evidence
// objects), keep the PII-free snapshots replayable, leave another subject untouched, and
// leave an audit chain that `verdict audit verify` accepts, with the erasure in it.
func TestEraseSubjectEndToEnd(t *testing.T) {
	ctx := context.Background()
	schema := fmt.Sprintf("t_erase_%d", time.Now().UnixNano())
	pg, err := postgres.Open(ctx, testDatabaseURL(), postgres.WithSchema(schema))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = pg.DropSchema(context.Background()); pg.Close() })
	if err := pg.Migrate(ctx); err != nil {
		t.Fatal(err)
	}
	dbURL := testDatabaseURL() + "&search_path=" + schema

	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	dir := t.TempDir()
	mk := make([]byte, 32)
	_, _ = rand.Read(mk)
	masterKey := "m1:" + base64.StdEncoding.EncodeToString(mk)
	env := map[string]string{
		"VERDICT_DATABASE_URL": dbURL, "VERDICT_MASTER_KEY": masterKey,
		"VERDICT_SANDBOX": "1", "VERDICT_SANDBOX_DELAY": "10ms",
		"VERDICT_API_KEYS": "app:app-secret-0123456789:decide+verify,adm:adm-secret-0123456789:admin",
		// This test is about erasure, not latency: on a loaded host the default 150 ms would
		// turn some of the 1,000 decisions into unstored fail-mode answers.
		"VERDICT_DECIDE_TIMEOUT": "5s",
	}
	getenv := func(k string) string { return env[k] }
	sctx, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() {
		done <- run(sctx, []string{"serve", "--addr", addr, "--data-dir", dir}, getenv, io.Discard, io.Discard)
	}()
	base := "http://" + addr
	waitReady(t, base)
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("serve: %v", err)
		}
	}()

	call := func(method, path, key string, body []byte) (int, []byte) {
		t.Helper()
		req, _ := http.NewRequest(method, base+path, bytes.NewReader(body))
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("Authorization", "Bearer "+key)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, b
	}
	const app, adm = "app-secret-0123456789", "adm-secret-0123456789"
	decideBody := func(user string, i int) []byte {
		return fmt.Appendf(nil, `{"action":"onboarding","subject":{"id":%q,"email":"erase.me+%d@example.com","name":"Erasable Person","email_verified":true,"account_age_days":%d},`+
			`"device":{"id":"dev-%d"},"context":{"ip":"198.51.100.%d","country":"DE"}}`, user, i, i%40, i%7, i%250)
	}

	// 1,000 decisions for the subject, 3 for another, eight at a time.
	ids := make(chan string, 1003)
	var wg sync.WaitGroup
	work := make(chan int)
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range work {
				user := "erase-me"
				if i >= 1000 {
					user = "keep-me"
				}
				code, b := call("POST", "/v1/decide", app, decideBody(user, i))
				var d struct {
					ID string `json:"decision_id"`
				}
				if code != 200 || json.Unmarshal(b, &d) != nil {
					t.Errorf("decide %d: %d %s", i, code, b)
					continue
				}
				if user == "erase-me" {
					ids <- d.ID
				}
			}
		}()
	}
	for i := range 1003 {
		work <- i
	}
	close(work)
	wg.Wait()
	close(ids)
	var decisionIDs []string
	for id := range ids {
		decisionIDs = append(decisionIDs, id)
	}
	if len(decisionIDs) != 1000 {
		t.Fatalf("%d decisions stored, want 1000", len(decisionIDs))
	}
	// One replica writes alone: once it has seen the audit head (any write does), every
	// batch takes one round trip.
	_, metrics := call("GET", "/metrics", adm, nil)
	for _, want := range []string{
		`(?m)^verdict_postgres_decision_batches_total\{path="locking"\} [01]$`,
		`(?m)^verdict_postgres_decision_batches_total\{path="one_round_trip"\} [1-9][0-9]*$`,
		`(?m)^verdict_postgres_decision_batch_misses_total 0$`,
	} {
		if !regexp.MustCompile(want).Match(metrics) {
			t.Errorf("/metrics does not match %s", want)
		}
	}
	// The subject has no verification session yet: once the store listens for new sessions,
	// its decisions' lookups are answered from memory.
	metric := func(name string) float64 {
		m := regexp.MustCompile(`(?m)^` + name + ` (\S+)$`).FindSubmatch(metrics)
		if m == nil {
			t.Fatalf("/metrics has no %s", name)
		}
		v, err := strconv.ParseFloat(string(m[1]), 64)
		if err != nil {
			t.Fatal(err)
		}
		return v
	}
	lookups, hits := metric("verdict_postgres_verification_lookups_total"), metric("verdict_postgres_verification_cache_hits_total")
	// (Concurrent lookups of one user share a query, so there are fewer lookups than
	// decisions; the misses are those before the listener started.)
	if live := metric("verdict_postgres_verification_cache_live"); live != 1 || lookups < 100 || lookups-hits > 50 {
		t.Errorf("verification cache: live %v, %v lookups, %v hits; want live, at least 100 lookups, at most 50 missed", live, lookups, hits)
	}

	// 10 verification sessions with an uploaded document each; the sandbox approves them
	// by webhook, whose raw body is kept sealed.
	file := []byte("ERASABLE-DOCUMENT-BYTES passport scan")
	sum := sha256.Sum256(file)
	var sessions []string
	for i := range 10 {
		code, b := call("POST", "/v1/verifications", app, []byte(`{"user_id":"erase-me","provider":"sandbox","consent":{"policy_hash":"sha256:c1","locale":"en","scope":["identity_verification"]}}`))
		var created struct {
			ID string `json:"verification_id"`
		}
		if code != 201 || json.Unmarshal(b, &created) != nil {
			t.Fatalf("create session %d: %d %s", i, code, b)
		}
		code, b = call("POST", "/v1/verifications/"+created.ID+"/evidence", app, fmt.Appendf(nil,
			`{"items":[{"kind":"passport","content_type":"image/jpeg","sha256":%q,"size":%d}]}`, hex.EncodeToString(sum[:]), len(file)))
		var ev struct {
			Uploads []struct{ URL string } `json:"uploads"`
		}
		if code != 201 || json.Unmarshal(b, &ev) != nil || len(ev.Uploads) != 1 {
			t.Fatalf("evidence %d: %d %s", i, code, b)
		}
		up, _ := http.NewRequest("PUT", ev.Uploads[0].URL, bytes.NewReader(file))
		up.Header.Set("Content-Type", "image/jpeg")
		resp, err := http.DefaultClient.Do(up)
		if err != nil || resp.StatusCode != 204 {
			t.Fatalf("upload %d: %v %v", i, resp, err)
		}
		resp.Body.Close()
		if code, b := call("POST", "/v1/verifications/"+created.ID+"/submit", app, nil); code != 200 {
			t.Fatalf("submit %d: %d %s", i, code, b)
		}
		sessions = append(sessions, created.ID)
	}
	deadline := time.Now().Add(15 * time.Second)
	for _, id := range sessions {
		for {
			v, err := pg.GetVerification(ctx, id)
			if err == nil && store.Terminal(v.Status) {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("session %s not final: %+v %v", id, v, err)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}

	// Before: everything personal is sealed at rest, and opens under the subject's key.
	ring, err := vault.ParseRing(masterKey)
	if err != nil {
		t.Fatal(err)
	}
	vlt := vault.New(ring, pg)
	rec, err := pg.GetDecision(ctx, decisionIDs[0])
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Contains(rec.Input, []byte("example.com")) || bytes.Contains(rec.Input, []byte("Erasable")) || bytes.Contains(rec.Input, []byte("198.51.100.")) {
		t.Fatalf("stored snapshot holds personal data: %s", rec.Input)
	}
	sealedPII := rec.PII
	if plain, err := vlt.Open(ctx, "erase-me", vault.DecisionAD(rec.ID), sealedPII); err != nil || !bytes.Contains(plain, []byte("Erasable Person")) {
		t.Fatalf("decision's sealed personal data before erasure: %q %v", plain, err)
	}
	objects := evidenceObjects(t, dir)
	if len(objects) != 10 {
		t.Fatalf("%d evidence objects, want 10", len(objects))
	}
	for _, o := range objects {
		if bytes.Contains(o, []byte("ERASABLE")) {
			t.Fatal("an evidence object is stored in the clear")
		}
	}
	payloads := rawPayloads(t, pg, sessions)
	if len(payloads) == 0 {
		t.Fatal("no raw webhook payload stored")
	}
	for id, p := range payloads {
		if _, err := vlt.Open(ctx, "erase-me", verification.PayloadAD(id), p); err != nil {
			t.Fatalf("raw payload %s before erasure: %v", id, err)
		}
	}

	// Only admin may erase.
	if code, b := call("DELETE", "/v1/subjects/erase-me", app, nil); code != 403 || !bytes.Contains(b, []byte(`"status":403`)) {
		t.Fatalf("erase with the decide key: %d %s", code, b)
	}
	start := time.Now()
	code, b := call("DELETE", "/v1/subjects/erase-me", adm, nil)
	took := time.Since(start)
	if code != 200 {
		t.Fatalf("erase: %d %s", code, b)
	}
	var got struct {
		KeyDestroyed    bool `json:"key_destroyed"`
		Decisions       int  `json:"decisions"`
		Verifications   int  `json:"verifications"`
		RawPayloads     int  `json:"raw_payloads"`
		EvidenceDeleted int  `json:"evidence_deleted"`
		EvidenceFailed  int  `json:"evidence_failed"`
	}
	if err := json.Unmarshal(b, &got); err != nil {
		t.Fatal(err)
	}
	t.Logf("erased 1,000 decisions and 10 verifications in %v: %s", took, b)
	if !got.KeyDestroyed || got.Decisions != 1000 || got.Verifications != 10 || got.RawPayloads != len(payloads) || got.EvidenceDeleted != 10 || got.EvidenceFailed != 0 {
		t.Fatalf("erasure = %s", b)
	}
	if took >= time.Second {
		t.Errorf("erasure took %v, want under a second", took)
	}

	// After: nothing of the subject decrypts, not even a copy of a sealed value taken
	// before (as a backup would hold it); the snapshots are kept and replay.
	if _, err := vlt.Open(ctx, "erase-me", vault.DecisionAD(rec.ID), sealedPII); !errors.Is(err, vault.ErrShredded) {
		t.Fatalf("decrypting with the shredded key: %v, want ErrShredded", err)
	}
	after, err := pg.GetDecision(ctx, decisionIDs[0])
	if err != nil || after.PII != nil || !bytes.Equal(after.Input, rec.Input) || after.Outcome != rec.Outcome {
		t.Fatalf("decision after erasure: pii=%v err=%v", after.PII != nil, err)
	}
	if n := len(rawPayloads(t, pg, sessions)); n != 0 {
		t.Fatalf("%d raw payloads left", n)
	}
	if n := len(evidenceObjects(t, dir)); n != 0 {
		t.Fatalf("%d evidence objects left", n)
	}
	in := filepath.Join(t.TempDir(), "input.json")
	if err := os.WriteFile(in, after.Input, 0o600); err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	if err := run(ctx, []string{"eval", "--input", in}, getenv, &out, io.Discard); err != nil {
		t.Fatalf("eval of the PII-free snapshot: %v", err)
	}
	if !strings.Contains(out.String(), `"outcome": "`+after.Outcome+`"`) && !strings.Contains(out.String(), `"outcome":"`+after.Outcome+`"`) {
		t.Fatalf("replaying the snapshot gave\n%s\nwant outcome %s", out.String(), after.Outcome)
	}

	// The other subject is untouched.
	code, b = call("POST", "/v1/decide", app, decideBody("keep-me", 5000))
	var kept struct {
		ID string `json:"decision_id"`
	}
	if code != 200 || json.Unmarshal(b, &kept) != nil {
		t.Fatalf("decide after erasure: %d %s", code, b)
	}
	k, err := pg.GetDecision(ctx, kept.ID)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := vlt.Open(ctx, "keep-me", vault.DecisionAD(k.ID), k.PII); err != nil {
		t.Fatalf("another subject's data after the erasure: %v", err)
	}

	// The chain verifies and holds the erasure, with no raw id.
	out.Reset()
	if err := run(ctx, []string{"audit", "verify"}, getenv, &out, io.Discard); err != nil {
		t.Fatalf("audit verify after erasure: %v\n%s", err, out.String())
	}
	evs, err := pg.AuditEvents(ctx, 0, 5000)
	if err != nil {
		t.Fatal(err)
	}
	var erased []store.AuditEvent
	for _, e := range evs {
		if e.Type == store.EventSubjectErased {
			erased = append(erased, e)
		}
	}
	if len(erased) != 1 || erased[0].Actor != "adm" || erased[0].SubjectRef != store.SubjectRef("erase-me") || bytes.Contains(erased[0].Payload, []byte("erase-me")) {
		t.Fatalf("erasure audit events: %+v", erased)
	}
}

// evidenceObjects returns the contents of the files of the local evidence bucket.
func evidenceObjects(t *testing.T, dir string) map[string][]byte {
	t.Helper()
	out := map[string][]byte{}
	root := filepath.Join(dir, "evidence")
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() || strings.HasSuffix(p, ".attrs") {
			return err
		}
		b, err := os.ReadFile(p)
		out[p] = b
		return err
	})
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		t.Fatal(err)
	}
	return out
}

// rawPayloads returns the stored raw webhook payloads of the sessions, by id.
func rawPayloads(t *testing.T, st *postgres.Store, sessions []string) map[string][]byte {
	t.Helper()
	out := map[string][]byte{}
	for _, id := range sessions {
		ids, err := st.RawPayloadIDs(context.Background(), id)
		if err != nil {
			t.Fatal(err)
		}
		for _, pid := range ids {
			p, err := st.RawPayload(context.Background(), pid)
			if err != nil {
				t.Fatal(err)
			}
			out[pid] = p.Ciphertext
		}
	}
	return out
}

func TestEraseAndKeysCLI(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	k1 := base64.StdEncoding.EncodeToString(bytes.Repeat([]byte{1}, 32))
	k2 := base64.StdEncoding.EncodeToString(bytes.Repeat([]byte{2}, 32))
	env := map[string]string{"VERDICT_MASTER_KEY": "k1:" + k1}
	getenv := func(k string) string { return env[k] }

	var usage usageError
	for _, args := range [][]string{{"erase"}, {"erase", "--data-dir", dir}, {"erase", strings.Repeat("x", 300)}, {"keys"}, {"keys", "spin"}} {
		if err := run(ctx, args, getenv, io.Discard, io.Discard); !errors.As(err, &usage) {
			t.Errorf("%v: %v, want a usage error", args, err)
		}
	}

	// A subject with data in the embedded store: a key made under k1.
	st, err := openStore(ctx, backendConfig{dataDir: dir})
	if err != nil {
		t.Fatal(err)
	}
	v, _, err := openVault(ctx, dir, getenv, st, false, nil)
	if err != nil {
		t.Fatal(err)
	}
	sealed, err := v.Seal(ctx, "cli-user", vault.DecisionAD("d1"), []byte("secret"))
	if err != nil {
		t.Fatal(err)
	}
	st.Close()

	// A process given another master key refuses to start, before it seals anything.
	k3 := base64.StdEncoding.EncodeToString(bytes.Repeat([]byte{3}, 32))
	for _, tc := range []struct{ ring, want string }{
		{"k1:" + k3, `master key "k1" does not unwrap the subject keys stored under that id`},
		{"k2:" + k2, `wrapped under master key "k1", which is not configured`},
	} {
		env["VERDICT_MASTER_KEY"] = tc.ring
		for _, args := range [][]string{{"serve", "--dev", "--addr", "127.0.0.1:0", "--data-dir", dir}, {"keys", "rotate", "--data-dir", dir}} {
			err := run(ctx, args, getenv, io.Discard, io.Discard)
			if err == nil || !strings.Contains(err.Error(), tc.want) || !strings.Contains(err.Error(), "VERDICT_MASTER_KEY") {
				t.Errorf("%v with %s: %v, want a refusal saying %q", args, tc.ring[:2], err, tc.want)
			}
		}
	}
	delete(env, "VERDICT_MASTER_KEY") // the data directory's master.key: made now, not k1
	if err := run(ctx, []string{"serve", "--dev", "--addr", "127.0.0.1:0", "--data-dir", dir}, getenv, io.Discard, io.Discard); err == nil || !strings.Contains(err.Error(), "master.key") {
		t.Errorf("serve with a fresh key file: %v, want a refusal naming the file", err)
	}

	// Rotate to k2, then k1 can go.
	env["VERDICT_MASTER_KEY"] = "k2:" + k2 + ",k1:" + k1
	var out bytes.Buffer
	if err := run(ctx, []string{"keys", "rotate", "--data-dir", dir}, getenv, &out, io.Discard); err != nil || out.String() != "1 subject keys rewrapped\n" {
		t.Fatalf("keys rotate: %q %v", out.String(), err)
	}
	env["VERDICT_MASTER_KEY"] = "k2:" + k2
	st, err = openStore(ctx, backendConfig{dataDir: dir})
	if err != nil {
		t.Fatal(err)
	}
	v, _, _ = openVault(ctx, dir, getenv, st, false, nil)
	if got, err := v.Open(ctx, "cli-user", vault.DecisionAD("d1"), sealed); err != nil || string(got) != "secret" {
		t.Fatalf("open after rotation: %q %v", got, err)
	}
	st.Close()

	out.Reset()
	if err := run(ctx, []string{"erase", "cli-user", "--data-dir", dir, "--actor", "dpo"}, getenv, &out, io.Discard); err != nil {
		t.Fatal(err)
	}
	var e struct {
		UserID       string `json:"user_id"`
		KeyDestroyed bool   `json:"key_destroyed"`
	}
	if err := json.Unmarshal(out.Bytes(), &e); err != nil || e.UserID != "cli-user" || !e.KeyDestroyed {
		t.Fatalf("erase output %s: %v", out.String(), err)
	}
	// Flags may come first, and an id starting with "-" (which /v1/decide accepts) follows "--".
	out.Reset()
	if err := run(ctx, []string{"erase", "--data-dir", dir, "--actor", "dpo", "--", "-42"}, getenv, &out, io.Discard); err != nil ||
		!strings.Contains(out.String(), `"user_id": "-42"`) {
		t.Fatalf("erase -- -42: %q %v", out.String(), err)
	}
	st, err = openStore(ctx, backendConfig{dataDir: dir})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	v, _, _ = openVault(ctx, dir, getenv, st, false, nil)
	if _, err := v.Open(ctx, "cli-user", vault.DecisionAD("d1"), sealed); !errors.Is(err, vault.ErrShredded) {
		t.Fatalf("open after erase: %v", err)
	}
	evs, _ := st.AuditEvents(ctx, 0, 100)
	if len(evs) == 0 || evs[len(evs)-1].Type != store.EventSubjectErased || evs[len(evs)-1].Actor != "dpo" {
		t.Fatalf("audit: %+v", evs)
	}
}

// TestServeRefusesAnotherPseudonymKey: the first server records its pseudonym key's check
// value; a server with another key (given, or a key file made afresh) refuses to start, and
// a CLI command that writes no pseudonyms records nothing.
func TestServeRefusesAnotherPseudonymKey(t *testing.T) {
	ctx := t.Context()
	dir := storeDir(t)
	p1 := base64.StdEncoding.EncodeToString(bytes.Repeat([]byte{1}, 32))
	p2 := base64.StdEncoding.EncodeToString(bytes.Repeat([]byte{2}, 32))
	env := map[string]string{"VERDICT_MASTER_KEY": "k1:" + base64.StdEncoding.EncodeToString(bytes.Repeat([]byte{7}, 32))}
	getenv := func(k string) string { return env[k] }

	// keys rotate writes no pseudonyms: it neither claims the check nor creates a key file.
	if err := run(ctx, []string{"keys", "rotate", "--data-dir", dir}, getenv, io.Discard, io.Discard); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(dir, "pseudonym.key")); !os.IsNotExist(err) {
		t.Fatalf("keys rotate created a pseudonym key file: %v", err)
	}
	env["VERDICT_PSEUDONYM_KEY"] = p2
	if err := run(ctx, []string{"keys", "rotate", "--data-dir", dir}, getenv, io.Discard, io.Discard); err != nil {
		t.Fatal(err)
	}
	st, err := openStore(ctx, backendConfig{dataDir: dir})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	ps := func(b64 string) *pii.Pseudonymizer {
		k, _ := base64.StdEncoding.DecodeString(b64)
		p, err := pii.NewPseudonymizer(k)
		if err != nil {
			t.Fatal(err)
		}
		return p
	}
	if err := checkPseudonymKey(ctx, ps(p1), st, dir, getenv); err != nil {
		t.Fatalf("first server's key (keys rotate recorded nothing): %v", err)
	}
	if err := checkPseudonymKey(ctx, ps(p1), st, dir, getenv); err != nil {
		t.Fatalf("the same key again: %v", err)
	}
	st.Close()

	for _, tc := range []struct {
		key, want string
	}{
		{p2, "VERDICT_PSEUDONYM_KEY: this is not the pseudonym key the store's first server recorded"},
		// Without the variable, the key serve makes is not the store's: it refuses, names no
		// key file as the operator's and leaves none behind (it wrote pseudonym.key, then
		// refused naming it, and the next start read that file).
		{"", "VERDICT_PSEUDONYM_KEY is not set, and there is no key file " + filepath.Join(dir, "pseudonym.key") + ": this is not"},
		{"", "VERDICT_PSEUDONYM_KEY is not set, and there is no key file " + filepath.Join(dir, "pseudonym.key") + ": this is not"},
	} {
		env["VERDICT_PSEUDONYM_KEY"] = tc.key
		err := run(ctx, []string{"serve", "--dev", "--addr", "127.0.0.1:0", "--data-dir", dir}, getenv, io.Discard, io.Discard)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("serve with key %q: %v, want %q", tc.key, err, tc.want)
		}
		if _, err := os.Stat(filepath.Join(dir, "pseudonym.key")); !os.IsNotExist(err) {
			t.Errorf("serve with key %q refused and left a pseudonym key file: %v", tc.key, err)
		}
	}
}

// TestServeRefusesAnOldSchema: without --migrate, a server on a Postgres schema older than
// its migrations exits with one line saying what to run, and one on the current schema
// gets past the check.
func TestServeRefusesAnOldSchema(t *testing.T) {
	ctx := t.Context()
	schema := fmt.Sprintf("t_oldschema_%d", time.Now().UnixNano())
	pg, err := postgres.Open(ctx, testDatabaseURL(), postgres.WithSchema(schema))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = pg.DropSchema(context.Background()); pg.Close() })
	// The schema does not exist yet: version 0.
	env := map[string]string{"VERDICT_DATABASE_URL": testDatabaseURL() + "&search_path=" + schema}
	getenv := func(k string) string { return env[k] }
	args := []string{"serve", "--dev", "--addr", "127.0.0.1:0", "--data-dir", t.TempDir()}
	_, latest, err := pg.SchemaVersions(ctx)
	if err != nil {
		t.Fatal(err)
	}
	err = run(ctx, args, getenv, io.Discard, io.Discard)
	want := fmt.Sprintf("the database schema is at version 0 (no verdict tables: is the search_path of VERDICT_DATABASE_URL this schema?) and this verdict needs %d: run `verdict migrate` first (or serve with --migrate)", latest)
	if err == nil || !strings.Contains(err.Error(), want) {
		t.Fatalf("serve on an empty schema: %v, want %q", err, want)
	}
	// So do the commands that read or maintain a store, instead of failing on a missing
	// table (or, for audit verify, reading an empty chain).
	// Seed, which may create an embedded store, writes into Postgres only on a migrated
	// schema, and leaves no key file behind when it refuses.
	keyDir := t.TempDir()
	for _, cmd := range [][]string{{"audit", "verify"}, {"policy", "list"}, {"erase", "user-1"}, {"retention", "run"}, {"seed", "--decisions", "10", "--data-dir", keyDir}} {
		want := strings.TrimSuffix(want, " (or serve with --migrate)")
		if err := run(ctx, cmd, getenv, io.Discard, io.Discard); err == nil || !strings.HasSuffix(err.Error(), want) {
			t.Fatalf("%v on an empty schema: %v, want %q", cmd, err, want)
		}
	}
	if _, err := os.Stat(filepath.Join(keyDir, "master.key")); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("seed refused by the schema created a master key file: %v", err)
	}
	if err := pg.Migrate(ctx); err != nil {
		t.Fatal(err)
	}
	// Migrated: the server starts; an address already taken stops it right after the check.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	args[3] = ln.Addr().String()
	if err := run(ctx, args, getenv, io.Discard, io.Discard); err == nil || !strings.Contains(err.Error(), "address already in use") {
		t.Fatalf("serve on the migrated schema, its address taken: %v, want a listen error", err)
	}
}

// TestEraseSaysWhyEvidenceIsLeft: `verdict erase` pointed at a data directory without the
// server's evidence bucket says why objects were not deleted, not only how many, and
// leaves their pointers listed, so that erasing again with the bucket deletes them.
func TestEraseSaysWhyEvidenceIsLeft(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	st, err := openStore(ctx, backendConfig{dataDir: dir})
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now().UTC()
	if _, _, err := st.CreateVerification(ctx, store.NewVerification{Verification: store.Verification{
		ID: "ver-cli", UserID: "cli-ev-user", Provider: "sandbox", Status: store.StatusInitiated}, Actor: "t"}); err != nil {
		t.Fatal(err)
	}
	if _, err := st.UpdateVerification(ctx, "ver-cli", store.VerificationChange{Actor: "t"}, func(v *store.Verification) error {
		v.Evidence = []store.Evidence{{ID: "evd-1", Kind: "selfie", BlobKey: "evidence/ver-cli/evd-1", SHA256: "ab",
			ContentType: "image/png", Size: 1, State: store.EvidenceUploaded, CreatedAt: now, UploadedAt: now}}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	st.Close()
	if err := os.RemoveAll(filepath.Join(dir, "evidence")); err != nil {
		t.Fatal(err)
	}
	state := func() string {
		st, err := openStore(ctx, backendConfig{dataDir: dir})
		if err != nil {
			t.Fatal(err)
		}
		defer st.Close()
		v, err := st.GetVerification(ctx, "ver-cli")
		if err != nil {
			t.Fatal(err)
		}
		return v.Evidence[0].State
	}

	getenv := func(string) string { return "" }
	var out, errOut bytes.Buffer
	if err := run(ctx, []string{"erase", "--data-dir", dir, "cli-ev-user"}, getenv, &out, &errOut); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out.String(), `"evidence_failed": 1`) || !strings.Contains(errOut.String(), "no evidence bucket at") {
		t.Fatalf("erase without the bucket: stdout %s stderr %q; want the failure and its reason", out.String(), errOut.String())
	}
	if got := state(); got != store.EvidenceUploaded {
		t.Fatalf("pointer after a failed deletion: %s, want it kept", got)
	}

	if err := os.MkdirAll(filepath.Join(dir, "evidence"), 0o700); err != nil {
		t.Fatal(err)
	}
	out.Reset()
	errOut.Reset()
	if err := run(ctx, []string{"erase", "--data-dir", dir, "cli-ev-user"}, getenv, &out, &errOut); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out.String(), `"evidence_deleted": 1`) || strings.Contains(errOut.String(), "warning") {
		t.Fatalf("erase again with the bucket: stdout %s stderr %q", out.String(), errOut.String())
	}
	if got := state(); got != store.EvidenceDeleted {
		t.Fatalf("pointer after erasing again: %s, want deleted", got)
	}
}
