package rulestore

import (
	"context"
	"fmt"
	"strings"
	"testing"
)

// benchRules is a rule file of n groups of two rules each.
func benchRules(n int) string {
	var b strings.Builder
	b.WriteString("groups:\n")
	for i := range n {
		fmt.Fprintf(&b, "- name: g%d\n  rules:\n  - record: job:r%d:sum\n    expr: sum by (job) (rate(http_requests_total{code=~\"5..\"}[5m]))\n  - alert: A%d\n    expr: up{job=\"j%d\"} == 0\n    for: 5m\n", i, i, i, i)
	}
	return b.String()
}

// syncAll reads every tenant's groups as the ruler's sync does.
func syncAll(ctx context.Context, s Store) (int, error) {
	users, err := s.ListAllUsers(ctx)
	if err != nil {
		return 0, err
	}
	n := 0
	for _, u := range users {
		groups, err := s.ListRuleGroups(ctx, u, "")
		if err != nil {
			return 0, err
		}
		n += len(groups)
	}
	return n, nil
}

// BenchmarkConfigDBSync measures one sync of 100 tenants of 10 groups each
// from the configs service over mutual TLS: "unchanged" is the steady state
// (one request per tenant plus one, answered with no config), "first" a new
// store loading and parsing everything.
func BenchmarkConfigDBSync(b *testing.B) {
	const tenants, groups = 100, 10
	c := newConfigsService(b)
	rules := benchRules(groups)
	for i := range tenants {
		c.post(fmt.Sprintf("tenant-%03d", i), map[string]string{"rules.yaml": rules})
	}
	ctx := context.Background()
	check := func(n int, err error) {
		if err != nil || n != tenants*groups {
			b.Fatalf("sync: %d groups, %v; want %d", n, err, tenants*groups)
		}
	}
	b.Run("unchanged", func(b *testing.B) {
		s := c.store(b)
		check(syncAll(ctx, s))
		b.ReportAllocs()
		b.ResetTimer()
		for b.Loop() {
			check(syncAll(ctx, s))
		}
	})
	b.Run("first", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			s := c.store(b)
			check(syncAll(ctx, s))
		}
	})
}

// BenchmarkBucketSync measures one sync of 100 tenants of 10 groups each
// from the filesystem bucket (one object per group).
func BenchmarkBucketSync(b *testing.B) {
	const tenants, groups = 100, 10
	s, _ := newFilesystemStore(b)
	ctx := context.Background()
	for i := range tenants {
		for j := range groups {
			if err := s.SetRuleGroup(ctx, RuleGroup{User: fmt.Sprintf("tenant-%03d", i), Namespace: "rules.yaml", Group: group(fmt.Sprintf("g%d", j), "sum by (job) (rate(x[5m]))", "up == 0")}); err != nil {
				b.Fatal(err)
			}
		}
	}
	b.ReportAllocs()
	for b.Loop() {
		if n, err := syncAll(ctx, s); err != nil || n != tenants*groups {
			b.Fatalf("sync: %d groups, %v", n, err)
		}
	}
}
