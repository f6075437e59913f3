package http

import (
	"strconv"
	"time"

	"github.com/gofiber/fiber/v2"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/verdict-engine/verdict/signals"
)

// metrics are Verdict's Prometheus series. Labels carry actions, outcomes, reason codes
// and source names only: never ids, IPs or anything a caller posted freely.
type metrics struct {
	decisionLatency *prometheus.HistogramVec
	decisions       *prometheus.CounterVec
	reasons         *prometheus.CounterVec
	stage           *prometheus.HistogramVec
	sourceLatency   *prometheus.HistogramVec
	sourceErrors    *prometheus.CounterVec
	degraded        *prometheus.CounterVec
	responses       *prometheus.CounterVec

	// The label values known up front are resolved once, not per request.
	parse, signals, evaluate, persist prometheus.Observer
	velocity, lists, verification     prometheus.Observer
}

var latencyBuckets = []float64{.0001, .00025, .0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5}

func newMetrics(reg prometheus.Registerer) *metrics {
	m := &metrics{
		decisionLatency: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "verdict_decision_duration_seconds", Help: "Time to answer /v1/decide, by action and outcome.", Buckets: latencyBuckets,
		}, []string{"action", "outcome"}),
		decisions: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "verdict_decisions_total", Help: "Decisions answered, by action and outcome.",
		}, []string{"action", "outcome"}),
		reasons: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "verdict_reasons_total", Help: "Reasons fired, by action and reason code.",
		}, []string{"action", "code"}),
		stage: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "verdict_decide_stage_duration_seconds", Help: "Time spent in each stage of /v1/decide (parse, signals, evaluate, persist).", Buckets: latencyBuckets,
		}, []string{"stage"}),
		sourceLatency: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "verdict_signal_source_duration_seconds", Help: "Time each signal source took.", Buckets: latencyBuckets,
		}, []string{"source"}),
		sourceErrors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "verdict_signal_source_errors_total", Help: "Signal source failures and timeouts.",
		}, []string{"source"}),
		degraded: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "verdict_degraded_decisions_total", Help: "Decisions shaped by a fail mode, by action and cause.",
		}, []string{"action", "cause"}),
		responses: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "verdict_http_responses_total", Help: "HTTP answers by route pattern (never the path itself) and status code.",
		}, []string{"route", "code"}),
	}
	m.parse, m.signals = m.stage.WithLabelValues("parse"), m.stage.WithLabelValues("signals")
	m.evaluate, m.persist = m.stage.WithLabelValues("evaluate"), m.stage.WithLabelValues("persist")
	m.velocity = m.sourceLatency.WithLabelValues(signals.SourceVelocity)
	m.lists = m.sourceLatency.WithLabelValues(signals.SourceLists)
	m.verification = m.sourceLatency.WithLabelValues(signals.SourceVerification)
	if reg != nil {
		reg.MustRegister(m.decisionLatency, m.decisions, m.reasons, m.stage, m.sourceLatency, m.sourceErrors, m.degraded, m.responses)
	}
	return m
}

func seconds(d time.Duration) float64 { return d.Seconds() }

// countResponses counts every answer by route pattern and status, so that an error rate
// (refused bodies, auth failures, 5xx) can be alerted on. The route is the registered
// pattern (/v1/decisions/:id), never the path, which can carry ids and list values; a
// request no route matched is "unmatched".
func (s *Server) countResponses(c *fiber.Ctx) error {
	err := c.Next()
	status := c.Response().StatusCode()
	if err != nil {
		status = toProblem(err).status // written by the error handler, after this returns
	}
	route := c.Route().Path
	switch {
	case status == fiber.StatusNotFound && (route == "/" || route == "" || route == "/v1"):
		route = "unmatched"
	case route == "/v1", route == "/", route == "":
		// Answered by the checks in front of the routes (API key, body size, type and
		// encoding) before any route ran.
		route = "/v1/*"
	}
	s.metrics.responses.WithLabelValues(route, strconv.Itoa(status)).Inc()
	return err
}
