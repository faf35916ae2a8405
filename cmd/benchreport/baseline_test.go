package main

import (
	"strings"
	"testing"
)

const pageWithoutComparison = "# Benchmarks\n\nfigures\n\n## Query latency\n\nrows\n\n## Profiling notes\n\nnotes\n"

func TestWithSectionInsertsBeforeProfilingNotes(t *testing.T) {
	section := compareHeading + "\n\nratios\n"
	got := withSection(pageWithoutComparison, section)
	want := "# Benchmarks\n\nfigures\n\n## Query latency\n\nrows\n\n" + compareHeading + "\n\nratios\n\n## Profiling notes\n\nnotes\n"
	if got != want {
		t.Fatalf("got:\n%s\nwant:\n%s", got, want)
	}
	if s := sectionOf(got); s != section+"\n" {
		t.Fatalf("sectionOf = %q, want %q", s, section+"\n")
	}
}

func TestWithSectionReplacesOnlyTheComparison(t *testing.T) {
	page := withSection(pageWithoutComparison, compareHeading+"\n\nold ratios\n")
	got := withSection(page, compareHeading+"\n\nnew ratios\n")
	if strings.Contains(got, "old ratios") || !strings.Contains(got, "new ratios") {
		t.Fatalf("the old section was not replaced:\n%s", got)
	}
	if withSection(page, compareHeading+"\n\nold ratios\n") != page {
		t.Fatal("writing the same section again changed the page")
	}
	rest := strings.Replace(got, compareHeading+"\n\nnew ratios\n\n", "", 1)
	if rest != pageWithoutComparison {
		t.Fatalf("the rest of the page changed:\n%s", rest)
	}
}

func TestWithSectionAtTheEnd(t *testing.T) {
	page := "# Benchmarks\n\nfigures\n"
	got := withSection(page, compareHeading+"\n\nratios")
	if want := "# Benchmarks\n\nfigures\n\n" + compareHeading + "\n\nratios\n"; got != want {
		t.Fatalf("got %q, want %q", got, want)
	}
	if again := withSection(got, compareHeading+"\n\nnew"); again != "# Benchmarks\n\nfigures\n\n"+compareHeading+"\n\nnew\n" {
		t.Fatalf("replacing the last section gave %q", again)
	}
}

// A full regeneration of the page (make bench) keeps the comparison, which
// only -baseline measures.
func TestFullPageKeepsTheComparison(t *testing.T) {
	old := withSection(pageWithoutComparison, compareHeading+"\n\nratios\n")
	fresh := strings.Replace(pageWithoutComparison, "rows", "new rows", 1)
	got := withSection(fresh, sectionOf(old))
	if !strings.Contains(got, "new rows") || !strings.Contains(got, compareHeading+"\n\nratios\n\n## Profiling notes") {
		t.Fatalf("got:\n%s", got)
	}
}

func TestCompareFlagsTurnTLSOnForEveryClient(t *testing.T) {
	flags := strings.Join(compareFlags("/c.yaml", "/d", "/certs", &proc{http: 20001, grpc: 20002}), " ")
	for _, want := range []string{
		"-config.file=/c.yaml",
		"-server.http-listen-port=20001", "-server.grpc-listen-port=20002",
		"-server.http-tls-client-auth=RequireAndVerifyClientCert", "-server.http-tls-ca-path=/certs/root.crt",
		"-ingester.client.tls-enabled=true", "-querier.frontend-client.tls-enabled=true", "-querier.store-gateway-client.tls-enabled=true",
		"-querier.store-gateway-client.tls-cert-path=/certs/client.crt",
		"-blocks-storage.filesystem.dir=/d/blocks",
	} {
		if !strings.Contains(flags, want) {
			t.Errorf("flags lack %s: %s", want, flags)
		}
	}
}
