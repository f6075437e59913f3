package engine

import (
	"github.com/open-policy-agent/opa/v1/ast"
)

// inputValue builds the OPA value of the input document directly, without the JSON
// round trip EvalInput would make.
func inputValue(in *Input) ast.Value {
	return ast.NewObject(
		ast.Item(ast.InternedTerm("action"), ast.StringTerm(in.Action)),
		ast.Item(ast.InternedTerm("subject"), mapTerm(in.Subject)),
		ast.Item(ast.InternedTerm("device"), mapTerm(in.Device)),
		ast.Item(ast.InternedTerm("context"), mapTerm(in.Context)),
		ast.Item(ast.InternedTerm("behavior"), mapTerm(in.Behavior)),
		ast.Item(ast.InternedTerm("signals"), signalsTerm(&in.Signals)),
	)
}

func mapTerm(m map[string]any) *ast.Term {
	if len(m) == 0 {
		return ast.NewTerm(ast.NewObject())
	}
	v, err := ast.InterfaceToValue(m)
	if err != nil {
		// Only JSON-decoded values reach here, which always convert.
		return ast.NewTerm(ast.NewObject())
	}
	return ast.NewTerm(v)
}

func intTerm(n int64) *ast.Term   { return ast.InternedTerm(int(n)) }
func numTerm(f float64) *ast.Term { return ast.FloatNumberTerm(f) }

func windowTerm(w *Window) *ast.Term {
	return ast.ObjectTerm(
		ast.Item(ast.InternedTerm("count_1m"), intTerm(w.Count1m)),
		ast.Item(ast.InternedTerm("count_1h"), intTerm(w.Count1h)),
		ast.Item(ast.InternedTerm("count_24h"), intTerm(w.Count24h)),
		ast.Item(ast.InternedTerm("distinct_users_24h"), intTerm(w.DistinctUsers24h)),
		ast.Item(ast.InternedTerm("distinct_devices_24h"), intTerm(w.DistinctDevices24h)),
	)
}

func stringsTerm(ss []string) *ast.Term {
	ts := make([]*ast.Term, len(ss))
	for i, s := range ss {
		ts[i] = ast.StringTerm(s)
	}
	return ast.ArrayTerm(ts...)
}

func signalsTerm(s *Signals) *ast.Term {
	v := &s.Verification
	lists := make([][2]*ast.Term, 0, len(s.Lists))
	for k, on := range s.Lists {
		lists = append(lists, ast.Item(ast.StringTerm(k), ast.InternedTerm(on)))
	}
	return ast.ObjectTerm(
		ast.Item(ast.InternedTerm("verification"), ast.ObjectTerm(
			ast.Item(ast.InternedTerm("status"), ast.StringTerm(v.Status)),
			ast.Item(ast.InternedTerm("provider"), ast.StringTerm(v.Provider)),
			ast.Item(ast.InternedTerm("score"), numTerm(v.Score)),
			ast.Item(ast.InternedTerm("reason_codes"), stringsTerm(v.ReasonCodes)),
			ast.Item(ast.InternedTerm("age_days"), numTerm(v.AgeDays)),
		)),
		ast.Item(ast.InternedTerm("velocity"), ast.ObjectTerm(
			ast.Item(ast.InternedTerm("user"), windowTerm(&s.Velocity.User)),
			ast.Item(ast.InternedTerm("device"), windowTerm(&s.Velocity.Device)),
			ast.Item(ast.InternedTerm("ip"), windowTerm(&s.Velocity.IP)),
		)),
		ast.Item(ast.InternedTerm("device"), ast.ObjectTerm(
			ast.Item(ast.InternedTerm("known"), ast.InternedTerm(s.Device.Known)),
			ast.Item(ast.InternedTerm("age_hours"), numTerm(s.Device.AgeHours)),
			ast.Item(ast.InternedTerm("users_seen"), intTerm(s.Device.UsersSeen)),
			ast.Item(ast.InternedTerm("flagged"), ast.InternedTerm(s.Device.Flagged)),
		)),
		ast.Item(ast.InternedTerm("lists"), ast.ObjectTerm(lists...)),
		ast.Item(ast.InternedTerm("unavailable"), stringsTerm(s.Unavailable)),
	)
}
