package config

import (
	"bytes"
	"flag"
	"testing"
	"time"
)

func TestHelpGroupsByPrefix(t *testing.T) {
	fs := flag.NewFlagSet("t", flag.ContinueOnError)
	fs.String("server.http-listen-address", "", "Listen address.")
	fs.Int("server.http-listen-port", 80, "Listen port.")
	fs.Duration("ingester.rate-update-period", 15*time.Second, "How often.\nSecond line.")
	fs.Bool("version", false, "Print the version.")
	fs.String("target", "all", "Components.")
	fs.Bool("ingester.flag", true, "A boolean on by default.")

	var b bytes.Buffer
	Help(&b, fs, nil)
	want := `general:
  -target string
    	Components. (default "all")
  -version
    	Print the version.

ingester:
  -ingester.flag
    	A boolean on by default. (default true)
  -ingester.rate-update-period duration
    	How often.
    	Second line. (default 15s)

server:
  -server.http-listen-address string
    	Listen address.
  -server.http-listen-port int
    	Listen port. (default 80)
`
	if b.String() != want {
		t.Errorf("Help printed\n%s\nwant\n%s", b.String(), want)
	}

	b.Reset()
	Help(&b, fs, MatchAny([]string{"server.http-listen-*", "version"}))
	want = `general:
  -version
    	Print the version.

server:
  -server.http-listen-address string
    	Listen address.
  -server.http-listen-port int
    	Listen port. (default 80)
`
	if b.String() != want {
		t.Errorf("Help with a filter printed\n%s\nwant\n%s", b.String(), want)
	}
}
