package load

import (
	"errors"
	"fmt"
	"net/url"
	"time"

	"github.com/valyala/fasthttp"
)

// client posts bodies to one URL over keep-alive connections. fasthttp reuses request
// and response buffers, so a send allocates nothing and the generator, which shares the
// machine's cores with the server, stays out of the way.
type client struct {
	hc      *fasthttp.HostClient
	uri     string
	header  map[string]string
	timeout time.Duration
}

func newClient(t Target, conns int, lifo bool) (*client, error) {
	u, err := url.Parse(t.URL)
	if err != nil {
		return nil, fmt.Errorf("target url: %w", err)
	}
	if u.Scheme != "http" || u.Host == "" {
		return nil, fmt.Errorf("target url %q: want http://host:port/path", t.URL)
	}
	timeout := t.Timeout
	if timeout <= 0 {
		timeout = 2 * time.Second
	}
	strategy := fasthttp.FIFO
	if lifo {
		// Below saturation a real client pool keeps reusing its warmest connection.
		strategy = fasthttp.LIFO
	}
	hc := &fasthttp.HostClient{
		Addr:                     u.Host,
		MaxConns:                 conns,
		MaxConnWaitTimeout:       timeout,
		MaxIdleConnDuration:      30 * time.Second,
		NoDefaultUserAgentHeader: true,
		ConnPoolStrategy:         strategy,
		ReadBufferSize:           8 << 10,
		WriteBufferSize:          8 << 10,
	}
	return &client{hc: hc, uri: t.URL, header: t.Header, timeout: timeout}, nil
}

func (c *client) close() { c.hc.CloseIdleConnections() }

// sender is one worker's reusable request and response.
type sender struct {
	c    *client
	req  *fasthttp.Request
	resp *fasthttp.Response
}

func (c *client) sender() *sender {
	req := new(fasthttp.Request)
	req.SetRequestURI(c.uri)
	req.Header.SetMethod(fasthttp.MethodPost)
	req.Header.SetContentType("application/json")
	for k, v := range c.header {
		req.Header.Set(k, v)
	}
	return &sender{c: c, req: req, resp: new(fasthttp.Response)}
}

// send posts body and returns the answer's status. The answer's body is valid until the
// next send.
func (s *sender) send(body []byte) (int, error) {
	s.req.SetBodyRaw(body)
	if err := s.c.hc.DoTimeout(s.req, s.resp, s.c.timeout); err != nil {
		if errors.Is(err, fasthttp.ErrTimeout) {
			return 0, fmt.Errorf("no answer within %s", s.c.timeout)
		}
		return 0, err
	}
	return s.resp.StatusCode(), nil
}
