package main

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"regexp"
	"slices"
	"sort"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/google/uuid"

	"github.com/verdict-engine/verdict/engine"
	"github.com/verdict-engine/verdict/store"
)

const policyUsage = `Usage:
  verdict policy lint DIR                                   compile DIR as a bundle; check reason codes and data files
  verdict policy publish DIR --label L --changelog TEXT [--author A]
                                                            lint, then store DIR as an immutable version; print its hash
  verdict policy list                                       published versions, newest first, with what is live
  verdict policy show HASH                                  one version and its files
  verdict policy diff A B                                   unified diff of two versions, file by file
  verdict policy activate ACTION HASH [--require-approval] [--actor NAME]
                                                            make HASH live for ACTION (or ask for a second approver)
  verdict policy approve ACTIVATION_ID [--actor NAME]       approve a pending activation (not its requester)
  verdict policy rollback ACTION [--actor NAME]             make the previous version live again
  verdict policy history ACTION                             the action's activations, newest first
  verdict policy shadow ACTION [HASH...] [--actor NAME]     set the versions run in shadow (none: clear)

HASH may be a unique prefix of at least 12 hex digits, with or without "sha256:". Commands
that use the store take --data-dir (embedded store) or VERDICT_DATABASE_URL (Postgres).
The actor defaults to $USER, else "cli".
`

// runPolicy is "verdict policy": publishing, activating and shadowing policy versions.
func runPolicy(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		fmt.Fprint(stderr, policyUsage)
		return usageError{msg: "policy: missing subcommand (lint, publish, list, show, diff, activate, approve, rollback, history, shadow)"}
	}
	cmd, rest := args[0], args[1:]
	if cmd == "lint" {
		return runPolicyLint(rest, stdout, stderr)
	}
	spec, ok := policyCommands[cmd]
	if !ok {
		if cmd == "help" || cmd == "-h" || cmd == "--help" {
			fmt.Fprint(stdout, policyUsage)
			return nil
		}
		fmt.Fprint(stderr, policyUsage)
		return usageError{msg: fmt.Sprintf("policy: unknown subcommand %q", cmd)}
	}
	pc := &policyCmd{name: "policy " + cmd, getenv: getenv, stdout: stdout, stderr: stderr}
	fset := newFlagSet(pc.name, stderr)
	backendFlags(fset, &pc.cfg, getenv)
	if spec.actor {
		fset.StringVar(&pc.actor, "actor", defaultActor(getenv), "who does it, recorded in the audit log [$USER]")
	}
	if spec.flags != nil {
		spec.flags(fset, pc)
	}
	pos, err := parseInterspersed(fset, rest)
	if err != nil {
		return err
	}
	if len(pos) < spec.min || (spec.max >= 0 && len(pos) > spec.max) {
		return usageError{msg: fmt.Sprintf("%s: want %s", pc.name, spec.args)}
	}
	pc.args = pos
	if spec.check != nil {
		if err := spec.check(pc); err != nil {
			return err
		}
	}
	if spec.local {
		return spec.run(ctx, pc)
	}
	st, err := openExistingStore(ctx, pc.cfg)
	if err != nil {
		return fmt.Errorf("%s: %w", pc.name, err)
	}
	defer st.Close()
	pc.st = st
	if err := spec.run(ctx, pc); err != nil {
		return fmt.Errorf("%s: %w", pc.name, err)
	}
	return nil
}

// policyCmd is one parsed policy subcommand.
type policyCmd struct {
	name           string
	args           []string
	cfg            backendConfig
	actor          string
	label          string
	changelog      string
	author         string
	requireApprove bool
	getenv         func(string) string
	stdout, stderr io.Writer
	st             store.Store
}

type policyCommandSpec struct {
	args     string // positional arguments, for usage errors
	min, max int    // how many positional arguments (max -1: any)
	actor    bool   // takes --actor
	local    bool   // needs no store
	flags    func(fs *flag.FlagSet, pc *policyCmd)
	check    func(pc *policyCmd) error
	run      func(ctx context.Context, pc *policyCmd) error
}

var policyCommands = map[string]policyCommandSpec{
	"publish": {args: "DIR --label L --changelog TEXT", min: 1, max: 1, run: policyPublish,
		flags: func(fs *flag.FlagSet, pc *policyCmd) {
			fs.StringVar(&pc.label, "label", "", "human label of the version, e.g. payout-2026.12.2 (required)")
			fs.StringVar(&pc.changelog, "changelog", "", "why this version exists (required)")
			fs.StringVar(&pc.author, "author", defaultActor(pc.getenv), "who wrote it [$USER]")
		},
		check: func(pc *policyCmd) error {
			if strings.TrimSpace(pc.label) == "" || strings.TrimSpace(pc.changelog) == "" {
				return usageError{msg: "policy publish: --label and --changelog are required"}
			}
			return nil
		}},
	"list": {args: "no arguments", min: 0, max: 0, run: policyList},
	"show": {args: "HASH", min: 1, max: 1, run: policyShow},
	"diff": {args: "HASH_A HASH_B", min: 2, max: 2, run: policyDiff},
	"activate": {args: "ACTION HASH", min: 2, max: 2, actor: true, run: policyActivate, check: checkAction,
		flags: func(fs *flag.FlagSet, pc *policyCmd) {
			fs.BoolVar(&pc.requireApprove, "require-approval", false, "record the activation as pending until another actor approves it")
		}},
	"approve":  {args: "ACTIVATION_ID", min: 1, max: 1, actor: true, run: policyApprove},
	"rollback": {args: "ACTION", min: 1, max: 1, actor: true, run: policyRollback, check: checkAction},
	"history":  {args: "ACTION", min: 1, max: 1, run: policyHistory, check: checkAction},
	"shadow":   {args: "ACTION [HASH...]", min: 1, max: -1, actor: true, run: policyShadow, check: checkAction},
}

func checkAction(pc *policyCmd) error {
	if !engine.ValidAction(pc.args[0]) {
		return usageError{msg: fmt.Sprintf("%s: invalid action %q: want lowercase letters, digits and _", pc.name, pc.args[0])}
	}
	return nil
}

func defaultActor(getenv func(string) string) string {
	return envOr(getenv, "USER", "cli")
}

// parseInterspersed parses flags that may come before, between or after the positional
// arguments ("publish DIR --label x"), which flag.FlagSet alone stops at, and returns the
// positional arguments. Everything after "--" is positional.
func parseInterspersed(fs *flag.FlagSet, args []string) ([]string, error) {
	var pos []string
	for {
		if err := fs.Parse(args); err != nil {
			if errors.Is(err, flag.ErrHelp) {
				return nil, usageError{help: true}
			}
			return nil, usageError{msg: strings.TrimSpace(err.Error())}
		}
		rest := fs.Args()
		consumed := len(args) - len(rest)
		if consumed > 0 && args[consumed-1] == "--" {
			return append(pos, rest...), nil
		}
		if len(rest) == 0 {
			return pos, nil
		}
		pos, args = append(pos, rest[0]), rest[1:]
	}
}

func correlationID() string {
	id, err := uuid.NewV7()
	if err != nil {
		return "cli"
	}
	return "cli-" + id.String()
}

// --- lint and publish

// bundleFileSuffixes are the files a published version keeps: policies, their tests
// (they document the version) and data files.
var bundleFileSuffixes = []string{".rego", ".cel.yaml", ".cel.yml", ".json", ".yaml", ".yml"}

// readBundle returns the files of the bundle in dir that a version keeps, by slash path
// relative to dir: those engine.WalkBundle lists, as engine.Load reads them (hidden files
// and directories skipped, symbolic links followed, anything else refused).
func readBundle(dir string) (map[string][]byte, error) {
	st, err := os.Stat(dir)
	if err != nil {
		return nil, err
	}
	if !st.IsDir() {
		return nil, fmt.Errorf("%s is not a directory", dir)
	}
	fsys := os.DirFS(dir)
	files := map[string][]byte{}
	var readErr error
	err = engine.WalkBundle(fsys, func(p string) {
		if readErr != nil || !slices.ContainsFunc(bundleFileSuffixes, func(s string) bool { return strings.HasSuffix(p, s) }) {
			return
		}
		b, err := fs.ReadFile(fsys, p)
		if err != nil {
			readErr = err
			return
		}
		files[p] = b
	})
	if err == nil {
		err = readErr
	}
	if err != nil {
		return nil, err
	}
	return files, nil
}

// lintProblem is one finding of lint, printed file:line: message.
type lintProblem struct {
	File    string
	Line    int
	Message string
}

func (p lintProblem) String() string {
	return engine.Problem{File: p.File, Line: p.Line, Message: p.Message}.String()
}

// lintBundle compiles files as the engine does (syntax, sandbox capabilities, fail modes,
// duplicate actions, data files) and checks what compiling does not (engine.LintFiles:
// reason codes, other JSON and YAML files). It returns the compiled set when there is no
// problem.
func lintBundle(files map[string][]byte) (*engine.PolicySet, []lintProblem) {
	var problems []lintProblem
	set, err := engine.LoadVersion("", files)
	var le *engine.LoadError
	switch {
	case errors.As(err, &le):
		for _, p := range le.Problems {
			problems = append(problems, lintProblem(p))
		}
	case err != nil:
		problems = append(problems, lintProblem{Message: err.Error()})
	}
	for _, p := range engine.LintFiles(files) {
		problems = append(problems, lintProblem(p))
	}
	if len(problems) > 0 {
		return nil, problems
	}
	return set, nil
}

func sortedKeys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// describeSet lists a set's actions as action@version (language, fail_mode).
func describeSet(set *engine.PolicySet) string {
	var parts []string
	for _, a := range set.Actions() {
		p, _ := set.Policy(a)
		parts = append(parts, fmt.Sprintf("%s@%s (%s, fail_mode %s)", a, p.Version, p.Language, p.FailMode))
	}
	return strings.Join(parts, ", ")
}

// lintDir lints the bundle in dir, printing problems to w as dir-relative file:line: message.
func lintDir(dir string, w io.Writer) (map[string][]byte, *engine.PolicySet, error) {
	files, err := readBundle(dir)
	if err != nil {
		return nil, nil, fmt.Errorf("read bundle: %w", err)
	}
	if len(files) == 0 {
		return nil, nil, fmt.Errorf("%s holds no policy or data file", dir)
	}
	set, problems := lintBundle(files)
	if len(problems) > 0 {
		for _, p := range problems {
			if p.File != "" {
				p.File = path.Join(strings.TrimSuffix(dir, "/"), p.File)
			}
			fmt.Fprintln(w, p)
		}
		return nil, nil, fmt.Errorf("%s: %d problem(s)", dir, len(problems))
	}
	return files, set, nil
}

func runPolicyLint(args []string, stdout, stderr io.Writer) error {
	fset := newFlagSet("policy lint", stderr)
	pos, err := parseInterspersed(fset, args)
	if err != nil {
		return err
	}
	if len(pos) != 1 {
		return usageError{msg: "policy lint: want DIR"}
	}
	_, set, err := lintDir(pos[0], stdout)
	if err != nil {
		return fmt.Errorf("policy lint: %w", err)
	}
	fmt.Fprintf(stdout, "ok: %s\n", describeSet(set))
	return nil
}

func policyPublish(ctx context.Context, pc *policyCmd) error {
	files, _, err := lintDir(pc.args[0], pc.stderr)
	if err != nil {
		return err
	}
	v := store.PolicyVersion{
		Hash:      engine.BundleHash(files),
		Label:     pc.label,
		Author:    pc.author,
		Changelog: pc.changelog,
		Files:     files,
	}
	created, err := pc.st.PublishPolicy(ctx, v, correlationID())
	if err != nil {
		return err
	}
	if !created {
		fmt.Fprintf(pc.stderr, "already published (unchanged): %s\n", v.Hash)
	}
	fmt.Fprintln(pc.stdout, v.Hash)
	return nil
}

// --- reading versions

var hexDigits = regexp.MustCompile(`^[0-9a-fA-F]+$`)

// resolveHash returns the full hash of the version arg names: a full "sha256:<hex>" hash
// or a unique prefix of at least 12 hex digits.
func resolveHash(ctx context.Context, st store.PolicyStore, arg string) (string, error) {
	hexPart := strings.TrimPrefix(arg, "sha256:")
	if !hexDigits.MatchString(hexPart) {
		return "", usageError{msg: fmt.Sprintf("%q is not a version hash (sha256:<hex> or a prefix of 12+ hex digits)", arg)}
	}
	if len(hexPart) == 64 {
		return "sha256:" + strings.ToLower(hexPart), nil
	}
	if len(hexPart) < 12 {
		return "", usageError{msg: fmt.Sprintf("hash prefix %q is too short: give at least 12 hex digits", arg)}
	}
	versions, err := st.ListPolicyVersions(ctx)
	if err != nil {
		return "", err
	}
	prefix := "sha256:" + strings.ToLower(hexPart)
	var matches []string
	for _, v := range versions {
		if strings.HasPrefix(v.Hash, prefix) {
			matches = append(matches, v.Hash)
		}
	}
	switch len(matches) {
	case 0:
		return "", fmt.Errorf("no published version matches %s: %w", arg, store.ErrNotFound)
	case 1:
		return matches[0], nil
	}
	return "", fmt.Errorf("hash prefix %s is ambiguous: %d versions match", arg, len(matches))
}

func (pc *policyCmd) version(ctx context.Context, arg string) (store.PolicyVersion, error) {
	h, err := resolveHash(ctx, pc.st, arg)
	if err != nil {
		return store.PolicyVersion{}, err
	}
	return pc.st.PolicyVersion(ctx, h)
}

// shortHash is a hash as listed: "sha256:" and its first 16 hex digits.
func shortHash(h string) string {
	if h == "" {
		return "(default bundle)"
	}
	if len(h) > len("sha256:")+16 {
		return h[:len("sha256:")+16]
	}
	return h
}

// liveUses returns, for each hash, where it is live or shadowed ("live:login", "shadow:payout").
func liveUses(lp store.LivePolicies) map[string][]string {
	uses := map[string][]string{}
	for _, a := range sortedKeys(lp.Active) {
		uses[lp.Active[a]] = append(uses[lp.Active[a]], "live:"+a)
	}
	for _, a := range sortedKeys(lp.Shadow) {
		for _, h := range lp.Shadow[a] {
			uses[h] = append(uses[h], "shadow:"+a)
		}
	}
	return uses
}

func policyList(ctx context.Context, pc *policyCmd) error {
	versions, err := pc.st.ListPolicyVersions(ctx)
	if err != nil {
		return err
	}
	lp, err := pc.st.LivePolicies(ctx)
	if err != nil {
		return err
	}
	uses := liveUses(lp)
	tw := tabwriter.NewWriter(pc.stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "HASH\tLABEL\tAUTHOR\tPUBLISHED\tIN USE")
	for _, v := range versions {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", shortHash(v.Hash), v.Label, v.Author,
			v.CreatedAt.Format(time.RFC3339), strings.Join(uses[v.Hash], " "))
	}
	return tw.Flush()
}

func policyShow(ctx context.Context, pc *policyCmd) error {
	v, err := pc.version(ctx, pc.args[0])
	if err != nil {
		return err
	}
	lp, err := pc.st.LivePolicies(ctx)
	if err != nil {
		return err
	}
	w := pc.stdout
	fmt.Fprintf(w, "hash:      %s\nlabel:     %s\nauthor:    %s\npublished: %s\n", v.Hash, v.Label, v.Author, v.CreatedAt.Format(time.RFC3339))
	if uses := liveUses(lp)[v.Hash]; len(uses) > 0 {
		fmt.Fprintf(w, "in use:    %s\n", strings.Join(uses, " "))
	}
	fmt.Fprintf(w, "changelog: %s\nfiles:\n", strings.ReplaceAll(v.Changelog, "\n", "\n           "))
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	for _, p := range sortedKeys(v.Files) {
		fmt.Fprintf(tw, "  %s\t%d bytes\n", p, len(v.Files[p]))
	}
	return tw.Flush()
}

func policyDiff(ctx context.Context, pc *policyCmd) error {
	a, err := pc.version(ctx, pc.args[0])
	if err != nil {
		return err
	}
	b, err := pc.version(ctx, pc.args[1])
	if err != nil {
		return err
	}
	names := map[string]bool{}
	for p := range a.Files {
		names[p] = true
	}
	for p := range b.Files {
		names[p] = true
	}
	changed := 0
	for _, p := range sortedKeys(names) {
		fa, inA := a.Files[p]
		fb, inB := b.Files[p]
		if inA && inB && bytes.Equal(fa, fb) {
			continue
		}
		changed++
		from, to := "a/"+p, "b/"+p
		if !inA {
			from = "/dev/null"
		}
		if !inB {
			to = "/dev/null"
		}
		fmt.Fprintf(pc.stdout, "--- %s\t%s %s\n+++ %s\t%s %s\n", from, shortHash(a.Hash), a.Label, to, shortHash(b.Hash), b.Label)
		writeUnified(pc.stdout, splitLines(fa), splitLines(fb), 3)
	}
	if changed == 0 {
		fmt.Fprintln(pc.stderr, "no differences")
	}
	return nil
}

// --- activation

// versionFor returns the published version arg names, refusing one the replicas could not
// serve for action: one that does not compile, or defines no policy for it.
func (pc *policyCmd) versionFor(ctx context.Context, arg, action string) (store.PolicyVersion, error) {
	v, err := pc.version(ctx, arg)
	if err != nil {
		return store.PolicyVersion{}, err
	}
	set, err := engine.LoadVersion(v.Hash, v.Files)
	if err != nil {
		return store.PolicyVersion{}, fmt.Errorf("version %s does not compile: %w", shortHash(v.Hash), err)
	}
	if _, ok := set.Policy(action); !ok {
		return store.PolicyVersion{}, fmt.Errorf("version %s (%s) defines no policy for %q (it defines %s)", shortHash(v.Hash), v.Label, action, strings.Join(set.Actions(), ", "))
	}
	return v, nil
}

func policyActivate(ctx context.Context, pc *policyCmd) error {
	action := pc.args[0]
	v, err := pc.versionFor(ctx, pc.args[1], action)
	if err != nil {
		return err
	}
	a, err := pc.st.ActivatePolicy(ctx, store.PolicyActivation{Action: action, Hash: v.Hash, Actor: pc.actor}, pc.requireApprove, correlationID())
	if err != nil {
		return err
	}
	if a.Status == store.ActivationPending {
		fmt.Fprintf(pc.stdout, "pending approval: activation %s of %s (%s) for %s\napprove with: verdict policy approve %s --actor <someone other than %s>\n",
			a.ID, shortHash(a.Hash), v.Label, action, a.ID, a.Actor)
		return nil
	}
	fmt.Fprintf(pc.stdout, "activated %s: %s (%s), previously %s; activation %s\n", action, v.Hash, v.Label, shortHash(a.Previous), a.ID)
	return nil
}

func policyApprove(ctx context.Context, pc *policyCmd) error {
	a, err := pc.st.ApproveActivation(ctx, pc.args[0], pc.actor, correlationID())
	if err != nil {
		return err
	}
	fmt.Fprintf(pc.stdout, "activated %s: %s, previously %s; requested by %s, approved by %s\n",
		a.Action, a.Hash, shortHash(a.Previous), a.Actor, a.Approver)
	return nil
}

func policyRollback(ctx context.Context, pc *policyCmd) error {
	a, err := pc.st.RollbackPolicy(ctx, pc.args[0], pc.actor, correlationID())
	if errors.Is(err, store.ErrNotFound) {
		return fmt.Errorf("action %q runs the default bundle: nothing to roll back", pc.args[0])
	}
	if err != nil {
		return err
	}
	now := a.Hash
	if now == "" {
		now = "the default bundle"
	}
	fmt.Fprintf(pc.stdout, "rolled back %s: now %s\n", a.Action, now)
	return nil
}

func policyHistory(ctx context.Context, pc *policyCmd) error {
	hist, err := pc.st.PolicyActivations(ctx, pc.args[0])
	if err != nil {
		return err
	}
	tw := tabwriter.NewWriter(pc.stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "ACTIVATION\tAT\tSTATUS\tVERSION\tPREVIOUS\tACTOR\tAPPROVER")
	for _, a := range hist {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\n", a.ID, a.At.Format(time.RFC3339), a.Status,
			shortHash(a.Hash), shortHash(a.Previous), a.Actor, a.Approver)
	}
	return tw.Flush()
}

func policyShadow(ctx context.Context, pc *policyCmd) error {
	action := pc.args[0]
	var hashes []string
	for _, arg := range pc.args[1:] {
		v, err := pc.versionFor(ctx, arg, action)
		if err != nil {
			return err
		}
		if slices.Contains(hashes, v.Hash) {
			return fmt.Errorf("version %s is listed twice", shortHash(v.Hash))
		}
		hashes = append(hashes, v.Hash)
	}
	if len(hashes) == 0 {
		// Clearing an action without shadow versions changes nothing: say so, and which
		// actions have some, rather than "cleared" for a misspelt action ("paytout") while
		// the one meant keeps its shadow versions.
		lp, err := pc.st.LivePolicies(ctx)
		if err != nil {
			return err
		}
		if len(lp.Shadow[action]) == 0 {
			var shadowed []string
			for _, a := range sortedKeys(lp.Shadow) {
				if len(lp.Shadow[a]) > 0 {
					shadowed = append(shadowed, a)
				}
			}
			if len(shadowed) == 0 {
				shadowed = []string{"none"}
			}
			fmt.Fprintf(pc.stdout, "shadow %s: no shadow versions to clear; nothing changed (actions with shadow versions: %s)\n", action, strings.Join(shadowed, ", "))
			return nil
		}
	}
	if err := pc.st.SetShadow(ctx, action, hashes, pc.actor, correlationID()); err != nil {
		return err
	}
	if len(hashes) == 0 {
		fmt.Fprintf(pc.stdout, "shadow %s: cleared\n", action)
		return nil
	}
	fmt.Fprintf(pc.stdout, "shadow %s: %s\n", action, strings.Join(hashes, " "))
	return nil
}
