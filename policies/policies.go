// Package policies holds the policies Verdict ships: a Rego bundle with one package per
// action (verdict.login, verdict.onboarding, verdict.payout) built on the shared reason
// library verdict.lib, their Rego unit tests, and the login policy again in CEL.
//
// Every policy answers data.verdict.<action>.decision, an object
//
//	{"outcome": "approve"|"step_up"|"review"|"block", "score": 0..100,
//	 "reasons": [{"code", "outcome", "message", "score", "signal"?, "value"?, "threshold"?, "step_up"?}],
//	 "step_up": "otp"|"webauthn"|"document" (only when outcome is step_up)}
//
// and declares its version and fail mode in the package METADATA (custom.version,
// custom.fail_mode). Thresholds are data: data.thresholds.<action> overrides the policy's
// default_thresholds key by key. Reason codes are documented in the README (Reason codes).
package policies

import (
	"embed"
	"fmt"
	"io/fs"
)

//go:embed bundle
var bundleFS embed.FS

//go:embed cel
var celFS embed.FS

// Bundle returns the Rego bundle, rooted at the bundle directory: lib/verdict.rego,
// login/login.rego, onboarding/onboarding.rego, payout/payout.rego and, next to each,
// its *_test.rego unit tests. A loader evaluating decisions must skip *_test.rego files.
func Bundle() fs.FS { return sub(bundleFS, "bundle") }

// CEL returns the CEL policies, rooted at the cel directory: one <action>.cel.yaml file
// per action (login.cel.yaml).
func CEL() fs.FS { return sub(celFS, "cel") }

func sub(fsys embed.FS, dir string) fs.FS {
	s, err := fs.Sub(fsys, dir)
	if err != nil {
		// Unreachable: dir is a constant, valid directory embedded above.
		panic(fmt.Sprintf("policies: embedded directory %q: %v", dir, err))
	}
	return s
}
