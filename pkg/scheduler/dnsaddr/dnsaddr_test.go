package dnsaddr

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
)

func TestResolve(t *testing.T) {
	lookup := func(_ context.Context, host string) ([]string, error) {
		switch host {
		case "schedulers":
			return []string{"10.0.0.1", "10.0.0.2"}, nil
		case "scheduler-c":
			return []string{"fd00::3"}, nil
		}
		return nil, errors.New("no such host")
	}
	got, err := Resolve(context.Background(), lookup, "frontend.scheduler-address", "schedulers:9095, scheduler-c:9095,127.0.0.1:9000")
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]string{"10.0.0.1:9095": "schedulers:9095", "10.0.0.2:9095": "schedulers:9095", "[fd00::3]:9095": "scheduler-c:9095", "127.0.0.1:9000": "127.0.0.1:9000"}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("got %v, want %v", got, want)
	}
	if _, err := Resolve(context.Background(), lookup, "frontend.scheduler-address", "schedulers:9095,gone:9095"); err == nil || !strings.Contains(err.Error(), `resolving "gone" of -frontend.scheduler-address`) {
		t.Fatalf("an entry that does not resolve: %v", err)
	}
	if _, err := Split("querier.scheduler-address", "schedulers"); err == nil || !strings.Contains(err.Error(), `-querier.scheduler-address="schedulers": entry "schedulers" must be host:port`) {
		t.Fatalf("an entry without port: %v", err)
	}
}
