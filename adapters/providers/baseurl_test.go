package providers

import "testing"

func TestCheckBaseURL(t *testing.T) {
	for s, ok := range map[string]bool{
		"https://api.eu.onfido.com/v3.6":      true,
		"http://127.0.0.1:8089/api":           true, // a local fake of the API
		"http://localhost:9000":               true,
		"http://evil.example.com/v3.6":        false, // the token would travel in clear
		"https://user:pw@api.example.com":     false,
		"https://api.example.com/v1?tenant=1": false,
		"https://api.example.com/v1#x":        false,
		"https://api.example.com/v1?":         false,
		"api.example.com/v1":                  false,
		"ftp://api.example.com":               false,
		"://":                                 false,
	} {
		if err := CheckBaseURL(s); (err == nil) != ok {
			t.Errorf("CheckBaseURL(%q) = %v, want ok %v", s, err, ok)
		}
	}
}
