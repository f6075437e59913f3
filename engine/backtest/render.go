package backtest

import (
	"fmt"
	"html/template"
	"io"
	"math"
	"strconv"
	"strings"
	"text/tabwriter"

	"github.com/verdict-engine/verdict/engine"
)

// Meta describes the run a report comes from, for its headings.
type Meta struct {
	Policies string `json:"policies"` // the candidate bundle
	Action   string `json:"action,omitempty"`
	Source   string `json:"source"` // the store or the input file
	// Warmup is how many decisions before the range were replayed to warm the counters.
	Warmup int64 `json:"warmup_decisions"`
	// Skipped counts decisions not evaluated, by cause (no policy for the action in the
	// candidate bundle, undecodable input).
	Skipped map[string]int64 `json:"skipped,omitempty"`
}

func pct(r Ratio) string {
	if !r.Defined() {
		return "-"
	}
	return strconv.FormatFloat(100*float64(r), 'f', 1, 64) + "%"
}

func dec(r Ratio) string {
	if !r.Defined() {
		return "-"
	}
	return strconv.FormatFloat(float64(r), 'f', 3, 64)
}

// group formats n with thousands separators.
func group(n int64) string {
	s := strconv.FormatInt(n, 10)
	neg := strings.HasPrefix(s, "-")
	s = strings.TrimPrefix(s, "-")
	var b strings.Builder
	for i, c := range s {
		if i > 0 && (len(s)-i)%3 == 0 {
			b.WriteByte(',')
		}
		b.WriteRune(c)
	}
	if neg {
		return "-" + b.String()
	}
	return b.String()
}

func signed(n int64) string {
	if n > 0 {
		return "+" + group(n)
	}
	return group(n)
}

// WriteText writes r as terminal tables.
func WriteText(w io.Writer, r Report, m Meta) error {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	p := func(format string, a ...any) { fmt.Fprintf(tw, format, a...) }
	fmt.Fprintf(w, "Backtest of %s on %s decisions", m.Policies, group(r.Decisions))
	if m.Action != "" {
		fmt.Fprintf(w, " (action %s)", m.Action)
	}
	if r.Decisions > 0 {
		unit := "days"
		if r.Days == 1 {
			unit = "day"
		}
		fmt.Fprintf(w, ", %s to %s (%d %s)", r.From.UTC().Format("2006-01-02 15:04"), r.To.UTC().Format("2006-01-02 15:04"), r.Days, unit)
	}
	fmt.Fprintf(w, "\nsource %s; %s earlier decisions replayed to warm the counters\n", m.Source, group(m.Warmup))
	for cause, n := range m.Skipped {
		fmt.Fprintf(w, "skipped %s decisions: %s\n", group(n), cause)
	}
	fmt.Fprintf(w, "labels: %s positive (fraud, chargeback), %s negative (legit, false_positive), %s unlabelled (not in precision/recall)\n\n",
		group(r.Labels.Positive), group(r.Labels.Negative), group(r.Labels.Unlabelled))

	p("outcome\tlive\t\tcandidate\t\tchange\t\n")
	for _, o := range AllOutcomes() {
		l, c := r.Live.Outcomes.Of(o), r.Candidate.Outcomes.Of(o)
		p("%s\t%s\t%s\t%s\t%s\t%s\t\n", o, group(l), pct(ratio(l, r.Decisions)), group(c), pct(ratio(c, r.Decisions)), signed(c-l))
	}
	p("\t\t\t\t\t\t\n")
	p("\tlive\tcandidate\t\n")
	p("approve rate\t%s\t%s\t\n", pct(r.Live.ApproveRate), pct(r.Candidate.ApproveRate))
	p("reviews per day\t%.1f\t%.1f\t\n", r.Live.ReviewsPerDay, r.Candidate.ReviewsPerDay)
	p("max reviews in a day\t%s\t%s\t\n", group(r.Live.MaxReviewsPerDay), group(r.Candidate.MaxReviewsPerDay))
	p("block precision\t%s\t%s\t\n", dec(r.Live.Block.Precision), dec(r.Candidate.Block.Precision))
	p("block recall\t%s\t%s\t\n", dec(r.Live.Block.Recall), dec(r.Candidate.Block.Recall))
	p("block+review precision\t%s\t%s\t\n", dec(r.Live.BlockReview.Precision), dec(r.Candidate.BlockReview.Precision))
	p("block+review recall\t%s\t%s\t\n", dec(r.Live.BlockReview.Recall), dec(r.Candidate.BlockReview.Recall))
	p("\t\t\t\n")
	p("live \\ candidate\tapprove\tstep_up\treview\tblock\t\n")
	for i, o := range AllOutcomes() {
		p("%s\t%s\t%s\t%s\t%s\t\n", o, group(r.Changes[i][0]), group(r.Changes[i][1]), group(r.Changes[i][2]), group(r.Changes[i][3]))
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	if s := r.Sweep; s != nil {
		fmt.Fprintf(w, "\nsweep of data.thresholds.%s.%s over %s %s decisions\n", s.Action, s.Name, group(s.Decisions), s.Action)
		tw = tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
		p = func(format string, a ...any) { fmt.Fprintf(tw, format, a...) }
		p("value\tapprove\tstep_up\treview\tblock\tblock P\tblock R\tb+r P\tb+r R\treviews/day\t\n")
		for _, pt := range s.Points {
			p("%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%.1f\t\n", strconv.FormatFloat(pt.Value, 'g', -1, 64),
				pct(pt.ApproveRate), pct(pt.StepUpRate), pct(pt.ReviewRate), pct(pt.BlockRate),
				dec(pt.Block.Precision), dec(pt.Block.Recall), dec(pt.BlockReview.Precision), dec(pt.BlockReview.Recall), pt.ReviewsPerDay)
		}
		return tw.Flush()
	}
	return nil
}

// Colors of the outcomes in charts.
var outcomeColors = map[engine.Outcome]string{
	engine.Approve: "#2e7d32", engine.StepUp: "#1565c0", engine.Review: "#ef6c00", engine.Block: "#c62828",
}

// barChart draws the outcome mix, live next to candidate, as an inline SVG.
func barChart(r Report) template.HTML {
	const w, h, left, bottom, top = 560, 260, 50, 40, 20
	plotH := float64(h - bottom - top)
	var b strings.Builder
	fmt.Fprintf(&b, `<svg xmlns="http://www.w3.org/2000/svg" width="%d" height="%d" viewBox="0 0 %d %d" role="img" aria-label="outcome mix, live and candidate">`, w, h, w, h)
	maxRate := 0.0
	for _, o := range AllOutcomes() {
		maxRate = max(maxRate, float64(ratio(r.Live.Outcomes.Of(o), r.Decisions)), float64(ratio(r.Candidate.Outcomes.Of(o), r.Decisions)))
	}
	if !(maxRate > 0) {
		maxRate = 1
	}
	maxRate = math.Min(1, math.Ceil(maxRate*10)/10)
	for i := 0; i <= 4; i++ {
		v := maxRate * float64(i) / 4
		y := float64(top) + plotH*(1-v/maxRate)
		fmt.Fprintf(&b, `<line x1="%d" x2="%d" y1="%.1f" y2="%.1f" stroke="#ddd"/><text x="%d" y="%.1f" font-size="11" text-anchor="end">%.0f%%</text>`, left, w-10, y, y, left-4, y+4, v*100)
	}
	groupW := float64(w-left-10) / 4
	for i, o := range AllOutcomes() {
		x0 := float64(left) + groupW*float64(i)
		for k, n := range []int64{r.Live.Outcomes.Of(o), r.Candidate.Outcomes.Of(o)} {
			v := float64(ratio(n, r.Decisions))
			if math.IsNaN(v) {
				v = 0
			}
			bh := plotH * v / maxRate
			x := x0 + groupW*0.15 + float64(k)*groupW*0.36
			opacity := "1"
			if k == 0 {
				opacity = "0.45"
			}
			fmt.Fprintf(&b, `<rect x="%.1f" y="%.1f" width="%.1f" height="%.1f" fill="%s" fill-opacity="%s"><title>%s %s: %s (%.2f%%)</title></rect>`,
				x, float64(top)+plotH-bh, groupW*0.32, bh, outcomeColors[o], opacity, []string{"live", "candidate"}[k], o, group(n), v*100)
			fmt.Fprintf(&b, `<text x="%.1f" y="%.1f" font-size="10" text-anchor="middle">%.1f%%</text>`, x+groupW*0.16, float64(top)+plotH-bh-3, v*100)
		}
		fmt.Fprintf(&b, `<text x="%.1f" y="%d" font-size="12" text-anchor="middle">%s</text>`, x0+groupW/2, h-bottom+16, o)
		fmt.Fprintf(&b, `<text x="%.1f" y="%d" font-size="10" text-anchor="middle" fill="#666">live | candidate</text>`, x0+groupW/2, h-bottom+30)
	}
	b.WriteString(`</svg>`)
	return template.HTML(b.String())
}

// lineChart draws the sweep curves (block rate, review rate, block+review precision and
// recall against the threshold value) as an inline SVG, rates and ratios on one 0..1 axis.
func lineChart(s *SweepReport) template.HTML {
	if s == nil || len(s.Points) == 0 {
		return ""
	}
	const w, h, left, right, bottom, top = 640, 300, 50, 150, 40, 20
	plotW, plotH := float64(w-left-right), float64(h-bottom-top)
	lo, hi := s.Points[0].Value, s.Points[len(s.Points)-1].Value
	span := hi - lo
	if span == 0 {
		span = 1
	}
	x := func(v float64) float64 { return float64(left) + plotW*(v-lo)/span }
	y := func(v float64) float64 { return float64(top) + plotH*(1-v) }
	var b strings.Builder
	fmt.Fprintf(&b, `<svg xmlns="http://www.w3.org/2000/svg" width="%d" height="%d" viewBox="0 0 %d %d" role="img" aria-label="threshold sweep">`, w, h, w, h)
	for i := 0; i <= 4; i++ {
		v := float64(i) / 4
		fmt.Fprintf(&b, `<line x1="%d" x2="%.1f" y1="%.1f" y2="%.1f" stroke="#ddd"/><text x="%d" y="%.1f" font-size="11" text-anchor="end">%.2f</text>`, left, float64(left)+plotW, y(v), y(v), left-4, y(v)+4, v)
	}
	ticks := min(len(s.Points), 8)
	for i := 0; i < ticks; i++ {
		p := s.Points[i*(len(s.Points)-1)/max(ticks-1, 1)]
		fmt.Fprintf(&b, `<text x="%.1f" y="%d" font-size="11" text-anchor="middle">%s</text>`, x(p.Value), h-bottom+16, strconv.FormatFloat(p.Value, 'g', 6, 64))
	}
	fmt.Fprintf(&b, `<text x="%.1f" y="%d" font-size="12" text-anchor="middle">%s</text>`, float64(left)+plotW/2, h-6, template.HTMLEscapeString(s.Name))
	series := []struct {
		name, color, dash string
		get               func(SweepPoint) Ratio
	}{
		{"block rate", outcomeColors[engine.Block], "", func(p SweepPoint) Ratio { return p.BlockRate }},
		{"review rate", outcomeColors[engine.Review], "", func(p SweepPoint) Ratio { return p.ReviewRate }},
		{"b+r precision", "#6a1b9a", "5,3", func(p SweepPoint) Ratio { return p.BlockReview.Precision }},
		{"b+r recall", "#00838f", "5,3", func(p SweepPoint) Ratio { return p.BlockReview.Recall }},
	}
	for k, sr := range series {
		var pts []string
		for _, p := range s.Points {
			if v := sr.get(p); v.Defined() {
				pts = append(pts, fmt.Sprintf("%.1f,%.1f", x(p.Value), y(float64(v))))
				fmt.Fprintf(&b, `<circle cx="%.1f" cy="%.1f" r="2.5" fill="%s"><title>%s at %s: %s</title></circle>`, x(p.Value), y(float64(v)), sr.color, sr.name, strconv.FormatFloat(p.Value, 'g', -1, 64), dec(v))
			}
		}
		fmt.Fprintf(&b, `<polyline fill="none" stroke="%s" stroke-width="2" stroke-dasharray="%s" points="%s"/>`, sr.color, sr.dash, strings.Join(pts, " "))
		ly := top + 10 + k*18
		fmt.Fprintf(&b, `<line x1="%d" x2="%d" y1="%d" y2="%d" stroke="%s" stroke-width="2" stroke-dasharray="%s"/><text x="%d" y="%d" font-size="12">%s</text>`, w-right+10, w-right+30, ly, ly, sr.color, sr.dash, w-right+35, ly+4, sr.name)
	}
	b.WriteString(`</svg>`)
	return template.HTML(b.String())
}

var page = template.Must(template.New("report").Funcs(template.FuncMap{
	"group": group, "pct": pct, "dec": dec, "signed": signed,
	"ratio": func(n, d int64) Ratio { return ratio(n, d) },
	"sub":   func(a, b int64) int64 { return a - b },
	"fmtv":  func(v float64) string { return strconv.FormatFloat(v, 'g', -1, 64) },
	"date": func(r Report) string {
		return r.From.UTC().Format("2006-01-02 15:04") + " to " + r.To.UTC().Format("2006-01-02 15:04")
	},
}).Parse(`<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Verdict backtest: {{.M.Policies}}</title>
<style>
body{font:14px/1.45 system-ui,-apple-system,Segoe UI,sans-serif;margin:2em auto;max-width:1000px;color:#222;padding:0 1em}
table{border-collapse:collapse;margin:.5em 0 1.5em}td,th{padding:.25em .7em;border-bottom:1px solid #e5e5e5;text-align:right}
th:first-child,td:first-child{text-align:left}th{background:#f6f6f6}.muted{color:#666}h2{margin-top:1.6em}
.diag{background:#f0f4ff}.up{color:#c62828}.down{color:#2e7d32}
</style></head><body>
<h1>Backtest: {{.M.Policies}}</h1>
<p>{{group .R.Decisions}} decisions{{if .M.Action}} of action <b>{{.M.Action}}</b>{{end}}{{if .R.Decisions}}, {{date .R}} UTC ({{.R.Days}} days){{end}}.
Source {{.M.Source}}; {{group .M.Warmup}} earlier decisions replayed only to warm the counters.
{{range $k, $v := .M.Skipped}}Skipped {{group $v}}: {{$k}}. {{end}}</p>
<p>Labels: {{group .R.Labels.Positive}} positive (fraud, chargeback), {{group .R.Labels.Negative}} negative (legit, false_positive),
{{group .R.Labels.Unlabelled}} unlabelled <span class="muted">(counted in outcome mixes, not in precision and recall)</span>.</p>
<h2>Outcome mix</h2>
{{.Bars}}
<table><tr><th>outcome</th><th>live</th><th></th><th>candidate</th><th></th><th>change</th></tr>
{{range .Rows}}<tr><td>{{.Name}}</td><td>{{group .Live}}</td><td>{{pct (ratio .Live $.R.Decisions)}}</td><td>{{group .Cand}}</td><td>{{pct (ratio .Cand $.R.Decisions)}}</td><td>{{signed (sub .Cand .Live)}}</td></tr>
{{end}}</table>
<h2>Quality and load</h2>
<table><tr><th></th><th>live</th><th>candidate</th></tr>
<tr><td>approve rate</td><td>{{pct .R.Live.ApproveRate}}</td><td>{{pct .R.Candidate.ApproveRate}}</td></tr>
<tr><td>reviews per day</td><td>{{printf "%.1f" .R.Live.ReviewsPerDay}}</td><td>{{printf "%.1f" .R.Candidate.ReviewsPerDay}}</td></tr>
<tr><td>max reviews in a day</td><td>{{group .R.Live.MaxReviewsPerDay}}</td><td>{{group .R.Candidate.MaxReviewsPerDay}}</td></tr>
<tr><td>block precision</td><td>{{dec .R.Live.Block.Precision}}</td><td>{{dec .R.Candidate.Block.Precision}}</td></tr>
<tr><td>block recall</td><td>{{dec .R.Live.Block.Recall}}</td><td>{{dec .R.Candidate.Block.Recall}}</td></tr>
<tr><td>block+review precision</td><td>{{dec .R.Live.BlockReview.Precision}}</td><td>{{dec .R.Candidate.BlockReview.Precision}}</td></tr>
<tr><td>block+review recall</td><td>{{dec .R.Live.BlockReview.Recall}}</td><td>{{dec .R.Candidate.BlockReview.Recall}}</td></tr>
</table>
<h2>Changes <span class="muted">(rows: live, columns: candidate)</span></h2>
<table><tr><th></th>{{range .Rows}}<th>{{.Name}}</th>{{end}}</tr>
{{range $i, $row := .Rows}}<tr><td>{{$row.Name}}</td>{{range $j, $n := $row.Changes}}<td{{if eq $i $j}} class="diag"{{end}}>{{group $n}}</td>{{end}}</tr>
{{end}}</table>
{{with .R.Sweep}}<h2>Sweep of data.thresholds.{{.Action}}.{{.Name}}</h2>
<p>{{group .Decisions}} {{.Action}} decisions evaluated at each value.</p>
{{$.Lines}}
<table><tr><th>value</th><th>approve</th><th>step_up</th><th>review</th><th>block</th><th>block P</th><th>block R</th><th>b+r P</th><th>b+r R</th><th>reviews/day</th></tr>
{{range .Points}}<tr><td>{{fmtv .Value}}</td><td>{{pct .ApproveRate}}</td><td>{{pct .StepUpRate}}</td><td>{{pct .ReviewRate}}</td><td>{{pct .BlockRate}}</td><td>{{dec .Block.Precision}}</td><td>{{dec .Block.Recall}}</td><td>{{dec .BlockReview.Precision}}</td><td>{{dec .BlockReview.Recall}}</td><td>{{printf "%.1f" .ReviewsPerDay}}</td></tr>
{{end}}</table>{{end}}
<p class="muted">Generated by verdict backtest. Precision = TP/(TP+FP), recall = TP/(TP+FN) over labelled decisions; "-" when undefined.</p>
</body></html>
`))

type htmlRow struct {
	Name       string
	Live, Cand int64
	Changes    [4]int64
}

// WriteHTML writes r as one self-contained HTML page: inline CSS and SVG charts, no
// script, nothing fetched.
func WriteHTML(w io.Writer, r Report, m Meta) error {
	var rows []htmlRow
	for i, o := range AllOutcomes() {
		rows = append(rows, htmlRow{Name: o.String(), Live: r.Live.Outcomes.Of(o), Cand: r.Candidate.Outcomes.Of(o), Changes: r.Changes[i]})
	}
	return page.Execute(w, struct {
		R     Report
		M     Meta
		Rows  []htmlRow
		Bars  template.HTML
		Lines template.HTML
	}{r, m, rows, barChart(r), lineChart(r.Sweep)})
}
