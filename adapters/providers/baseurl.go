package providers

import (
	"errors"
	"net/url"
)

// CheckBaseURL checks a provider API base URL from configuration: absolute, without
// credentials, query or fragment, and https, since every request carries the API token
// (http only to this host, for a local fake of the API).
func CheckBaseURL(s string) error {
	u, err := url.Parse(s)
	if err != nil {
		return errors.New("not a URL")
	}
	if u.Host == "" || u.User != nil || u.RawQuery != "" || u.ForceQuery || u.Fragment != "" {
		return errors.New("want scheme://host[/path] without credentials, query or fragment")
	}
	switch u.Scheme {
	case "https":
		return nil
	case "http":
		switch u.Hostname() {
		case "localhost", "127.0.0.1", "::1":
			return nil
		}
	}
	return errors.New("must be https (http only for localhost)")
}
