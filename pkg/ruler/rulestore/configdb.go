package rulestore

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"slices"
	"strings"
	"sync"

	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/model/rulefmt"
	"github.com/prometheus/prometheus/promql/parser"

	configsclient "github.com/cortex-tls/cortex/pkg/configs/client"
	"github.com/cortex-tls/cortex/pkg/tenant"
)

// ConfigDBStore reads every tenant's rules from the configs service's
// private API (GET /private/api/prom/configs/rules), as Cortex's configdb
// rule store does. It is read-only: rules are written through the configs
// API (POST /api/prom/configs/rules).
//
// Each read makes one request, asking only for the configs changed since
// the last answer, and answers from what it has gathered: a tenant's rule
// files are parsed once per version. A tenant whose files do not parse keeps
// its error, which names the tenant and the file, until it posts new rules;
// the other tenants are not affected.
type ConfigDBStore struct {
	client *configsclient.Client
	logger *slog.Logger
	parser parser.Parser

	// mtx serialises the polls, so that since and tenants move together.
	mtx     sync.Mutex
	since   int64
	tenants map[string]configDBTenant
}

// configDBTenant is one tenant's latest rules: groups ordered by namespace
// then name, or the error of its rule files.
type configDBTenant struct {
	groups []RuleGroup
	err    error
}

// NewConfigDBStore returns a store reading from the configs service behind c.
func NewConfigDBStore(c *configsclient.Client, logger *slog.Logger) *ConfigDBStore {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	return &ConfigDBStore{client: c, logger: logger, parser: readParser, tenants: map[string]configDBTenant{}}
}

// poll fetches the tenants' rules changed since the last poll (one request)
// and then calls read with the state of every tenant, which read must not
// keep.
func (s *ConfigDBStore) poll(ctx context.Context, read func(tenants map[string]configDBTenant)) error {
	s.mtx.Lock()
	defer s.mtx.Unlock()
	var resp configsclient.Response[configsclient.RulesConfig]
	if err := s.client.GetSince(ctx, configsclient.RulesPath, s.since, &resp); err != nil {
		return fmt.Errorf("fetching rules from the configs service at -%sconfigs.url=%s: %w", flagPrefix, s.client.URL(), err)
	}
	for _, id := range slices.Sorted(maps.Keys(resp.Configs)) {
		v := resp.Configs[id]
		s.since = max(s.since, v.ID)
		if err := tenant.Valid(id); err != nil {
			s.logger.Error("configs service returned an unusable tenant ID; its rules are skipped", "tenant", id, "err", err)
			continue
		}
		if v.DeletedAt != "" || v.Config == nil {
			delete(s.tenants, id)
			continue
		}
		t := s.parse(id, *v.Config)
		if t.err != nil {
			s.logger.Error("tenant's rules in the configs service do not parse; the tenant's rules are not loaded until fixed", "tenant", id, "config_id", v.ID, "err", t.err)
		}
		if len(t.groups) == 0 && t.err == nil {
			delete(s.tenants, id)
			continue
		}
		s.tenants[id] = t
	}
	read(s.tenants)
	return nil
}

// parse reads one tenant's rule files; every file at fault is named.
func (s *ConfigDBStore) parse(user string, cfg configsclient.RulesConfig) configDBTenant {
	var t configDBTenant
	if cfg.RuleFormatVersion != "" && cfg.RuleFormatVersion != "2" {
		t.err = fmt.Errorf("tenant %q: rule_format_version %q is not supported: only \"2\" (the Prometheus 2 YAML rule format)", user, cfg.RuleFormatVersion)
		return t
	}
	var errs []error
	for _, file := range slices.Sorted(maps.Keys(cfg.RulesFiles)) {
		rgs, perrs := rulefmt.Parse([]byte(cfg.RulesFiles[file]), false, model.UTF8Validation, s.parser, s.logger)
		if len(perrs) > 0 {
			msgs := make([]string, len(perrs))
			for i, e := range perrs {
				msgs[i] = e.Error()
			}
			errs = append(errs, fmt.Errorf("tenant %q, rules file %q: %s", user, file, strings.Join(msgs, "; ")))
			continue
		}
		for _, g := range rgs.Groups {
			t.groups = append(t.groups, RuleGroup{User: user, Namespace: file, Group: g})
		}
	}
	if len(errs) > 0 {
		t.groups, t.err = nil, errors.Join(errs...)
		return t
	}
	sortGroups(t.groups)
	return t
}

// ListAllUsers returns the tenants with rules in the configs service. A
// tenant whose rule files do not parse is left out (it has no group that
// can be loaded; the error was logged, naming the tenant and the file, and
// ListRuleGroups returns it), so that a reader going through every tenant is
// not stopped by one tenant's files.
func (s *ConfigDBStore) ListAllUsers(ctx context.Context) ([]string, error) {
	var users []string
	err := s.poll(ctx, func(tenants map[string]configDBTenant) {
		for id, t := range tenants {
			if t.err == nil {
				users = append(users, id)
			}
		}
	})
	if err != nil {
		return nil, err
	}
	slices.Sort(users)
	return users, nil
}

// ListRuleGroups returns the tenant's groups (of one rule file when
// namespace is set), or the error naming the tenant's files that do not
// parse. A tenant with no rules has no groups.
func (s *ConfigDBStore) ListRuleGroups(ctx context.Context, user, namespace string) ([]RuleGroup, error) {
	var (
		t  configDBTenant
		ok bool
	)
	if err := s.poll(ctx, func(tenants map[string]configDBTenant) { t, ok = tenants[user] }); err != nil {
		return nil, err
	}
	if !ok {
		return nil, nil
	}
	if t.err != nil {
		return nil, t.err
	}
	var out []RuleGroup
	for _, g := range t.groups {
		if namespace == "" || g.Namespace == namespace {
			g.Group = cloneGroup(g.Group)
			out = append(out, g)
		}
	}
	return out, nil
}

// cloneGroup copies a cached group, so that callers may change what they
// are given.
func cloneGroup(g rulefmt.RuleGroup) rulefmt.RuleGroup {
	if g.QueryOffset != nil {
		d := *g.QueryOffset
		g.QueryOffset = &d
	}
	g.Labels = maps.Clone(g.Labels)
	g.Rules = slices.Clone(g.Rules)
	for i := range g.Rules {
		g.Rules[i].Labels = maps.Clone(g.Rules[i].Labels)
		g.Rules[i].Annotations = maps.Clone(g.Rules[i].Annotations)
	}
	return g
}

// GetRuleGroup returns one group, or ErrGroupNotFound.
func (s *ConfigDBStore) GetRuleGroup(ctx context.Context, user, namespace, group string) (RuleGroup, error) {
	groups, err := s.ListRuleGroups(ctx, user, namespace)
	if err != nil {
		return RuleGroup{}, err
	}
	for _, g := range groups {
		if g.Group.Name == group {
			return g, nil
		}
	}
	return RuleGroup{}, groupNotFound(user, namespace, group)
}

const configDBWrites = "write rules through the configs API (POST /api/prom/configs/rules)"

// SetRuleGroup returns ErrReadOnly.
func (s *ConfigDBStore) SetRuleGroup(context.Context, RuleGroup) error {
	return readOnly(ConfigDB, configDBWrites)
}

// DeleteRuleGroup returns ErrReadOnly.
func (s *ConfigDBStore) DeleteRuleGroup(context.Context, string, string, string) error {
	return readOnly(ConfigDB, configDBWrites)
}

// DeleteNamespace returns ErrReadOnly.
func (s *ConfigDBStore) DeleteNamespace(context.Context, string, string) error {
	return readOnly(ConfigDB, configDBWrites)
}

// Close closes the idle connections to the configs service.
func (s *ConfigDBStore) Close() error {
	s.client.CloseIdleConnections()
	return nil
}

// sortGroups orders groups by namespace, then name.
func sortGroups(groups []RuleGroup) {
	slices.SortStableFunc(groups, func(a, b RuleGroup) int {
		return cmp.Or(strings.Compare(a.Namespace, b.Namespace), strings.Compare(a.Group.Name, b.Group.Name))
	})
}

// groupNotFound wraps ErrGroupNotFound with the group asked for.
func groupNotFound(user, namespace, group string) error {
	return fmt.Errorf("%w: tenant %q, namespace %q, group %q", ErrGroupNotFound, user, namespace, group)
}
