package rulestore

import (
	"bytes"
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"time"

	"github.com/grafana/dskit/concurrency"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/prometheus/model/rulefmt"
	"github.com/thanos-io/objstore"
	"gopkg.in/yaml.v3"

	"github.com/cortex-tls/cortex/pkg/storage/tsdb/users"
	"github.com/cortex-tls/cortex/pkg/tenant"
)

// rulesPrefix is the folder of the rules in the bucket, as in Cortex.
const rulesPrefix = "rules/"

// loadConcurrency bounds the groups downloaded at once by ListRuleGroups,
// as in Cortex.
const loadConcurrency = 10

// maxGroupSize bounds one stored group.
const maxGroupSize = 16 << 20

// BucketStore keeps rule groups in object storage with Cortex's layout:
// rules/<tenant>/<base64url(namespace)>/<base64url(group name)>, one object
// per group (padded URL-safe base64, so any namespace or group name maps to
// one path segment). Cortex stores each group as a rulespb protobuf; here
// the object is the group as YAML, a rulefmt.RuleGroup (the "groups:" item
// of a Prometheus rule file), readable with any object storage tool. It is
// read-write: the ruler API writes through it.
type BucketStore struct {
	bkt    objstore.Bucket
	logger *slog.Logger

	// scanner lists the tenants (-ruler-storage.users-scanner.*), nil for
	// a listing of rules/ each time; index writes the user index it reads.
	scanner       users.Scanner
	index         *users.IndexUpdater
	indexInterval time.Duration
}

// useUsersScanner lists the tenants as cfg says: from the user index at
// rules/user-index.json.gz, which UserIndex's updater writes, and/or from
// a cache.
func (s *BucketStore) useUsersScanner(cfg users.Config, reg prometheus.Registerer) error {
	if cfg.Strategy != users.StrategyUserIndex && cfg.CacheTTL <= 0 {
		return nil
	}
	rules := objstore.NewPrefixedBucket(s.bkt, strings.TrimSuffix(rulesPrefix, "/"))
	scanner, err := users.NewScannerOver(cfg, users.ListFunc(s.listFolders), rules, s.logger, reg)
	if err != nil {
		return err
	}
	s.scanner = scanner
	if cfg.Strategy == users.StrategyUserIndex {
		s.index, s.indexInterval = users.NewIndexUpdaterOver(rules, users.ListFunc(s.listFolders), reg), cfg.UpdateInterval
	}
	return nil
}

// UserIndex returns the updater of the user index and how often to run
// it, nil unless -ruler-storage.users-scanner.strategy=user_index.
func (s *BucketStore) UserIndex() (*users.IndexUpdater, time.Duration) {
	return s.index, s.indexInterval
}

// NewBucketStore returns a store in bkt.
func NewBucketStore(bkt objstore.Bucket, logger *slog.Logger) *BucketStore {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	return &BucketStore{bkt: bkt, logger: logger}
}

func encode(s string) string { return base64.URLEncoding.EncodeToString([]byte(s)) }

func userPrefix(user string) string { return rulesPrefix + user + "/" }

func namespacePrefix(user, namespace string) string {
	return userPrefix(user) + encode(namespace) + "/"
}

func groupKey(user, namespace, group string) string {
	return namespacePrefix(user, namespace) + encode(group)
}

// parseKey reads the namespace and group name out of an object key under
// userPrefix(user).
func parseKey(user, key string) (namespace, group string, err error) {
	parts := strings.Split(strings.TrimPrefix(key, userPrefix(user)), "/")
	if len(parts) != 2 {
		return "", "", fmt.Errorf("object %q: want %s<base64url namespace>/<base64url group>", key, userPrefix(user))
	}
	ns, err := base64.URLEncoding.DecodeString(parts[0])
	if err != nil {
		return "", "", fmt.Errorf("object %q: namespace is not base64url: %w", key, err)
	}
	g, err := base64.URLEncoding.DecodeString(parts[1])
	if err != nil {
		return "", "", fmt.Errorf("object %q: group is not base64url: %w", key, err)
	}
	return string(ns), string(g), nil
}

func checkUser(user string) error {
	if err := tenant.Valid(user); err != nil {
		return fmt.Errorf("tenant %q: %w", user, err)
	}
	return nil
}

// ListAllUsers lists the tenants with rule groups, through the users
// scanner when one is configured.
func (s *BucketStore) ListAllUsers(ctx context.Context) ([]string, error) {
	if s.scanner != nil {
		active, _, _, err := s.scanner.ScanUsers(ctx)
		return active, err
	}
	return s.listFolders(ctx)
}

// listFolders lists the tenant folders under rules/.
func (s *BucketStore) listFolders(ctx context.Context) ([]string, error) {
	var out []string
	err := s.bkt.Iter(ctx, rulesPrefix, func(name string) error {
		user := strings.TrimSuffix(strings.TrimPrefix(name, rulesPrefix), "/")
		if !strings.HasSuffix(name, "/") {
			return nil // an object beside the tenants' folders
		}
		if err := tenant.Valid(user); err != nil {
			s.logger.Warn("folder under rules/ is not a tenant ID; skipped", "object", name, "err", err)
			return nil
		}
		out = append(out, user)
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("listing the tenants under %s: %w", rulesPrefix, err)
	}
	return out, nil
}

// keys lists the group objects of the tenant, or of one namespace.
func (s *BucketStore) keys(ctx context.Context, user, namespace string) ([]string, error) {
	prefix := userPrefix(user)
	if namespace != "" {
		prefix = namespacePrefix(user, namespace)
	}
	var keys []string
	err := s.bkt.Iter(ctx, prefix, func(name string) error {
		if !strings.HasSuffix(name, "/") {
			keys = append(keys, name)
		}
		return nil
	}, objstore.WithRecursiveIter())
	if err != nil {
		return nil, fmt.Errorf("listing the rule groups of tenant %q under %s: %w", user, prefix, err)
	}
	return keys, nil
}

// ListRuleGroups downloads the tenant's groups, up to ten at a time.
// Objects whose key is not of the layout are skipped with a warning; a group
// that cannot be read fails the call, naming its object.
func (s *BucketStore) ListRuleGroups(ctx context.Context, user, namespace string) ([]RuleGroup, error) {
	if err := checkUser(user); err != nil {
		return nil, err
	}
	keys, err := s.keys(ctx, user, namespace)
	if err != nil {
		return nil, err
	}
	type item struct{ key, namespace, group string }
	var items []item
	for _, k := range keys {
		ns, g, err := parseKey(user, k)
		if err != nil {
			s.logger.Warn("object under the tenant's rules is not a rule group; skipped", "tenant", user, "err", err)
			continue
		}
		items = append(items, item{k, ns, g})
	}
	out := make([]RuleGroup, len(items))
	err = concurrency.ForEachJob(ctx, len(items), loadConcurrency, func(ctx context.Context, i int) error {
		it := items[i]
		g, err := s.get(ctx, it.key, user, it.namespace, it.group)
		if errors.Is(err, ErrGroupNotFound) {
			return nil // deleted since the listing
		}
		out[i] = g
		return err
	})
	if err != nil {
		return nil, err
	}
	out = slicesDeleteEmpty(out)
	sortGroups(out)
	return out, nil
}

// slicesDeleteEmpty drops the groups deleted between listing and download.
func slicesDeleteEmpty(groups []RuleGroup) []RuleGroup {
	n := 0
	for _, g := range groups {
		if g.User != "" {
			groups[n] = g
			n++
		}
	}
	return groups[:n]
}

// get downloads and decodes one group object.
func (s *BucketStore) get(ctx context.Context, key, user, namespace, group string) (RuleGroup, error) {
	r, err := s.bkt.Get(ctx, key)
	if s.bkt.IsObjNotFoundErr(err) {
		return RuleGroup{}, groupNotFound(user, namespace, group)
	}
	if err != nil {
		return RuleGroup{}, fmt.Errorf("reading rule group %q of tenant %q, namespace %q (object %s): %w", group, user, namespace, key, err)
	}
	defer r.Close()
	b, err := io.ReadAll(io.LimitReader(r, maxGroupSize+1))
	if err != nil {
		return RuleGroup{}, fmt.Errorf("reading rule group %q of tenant %q, namespace %q (object %s): %w", group, user, namespace, key, err)
	}
	if len(b) > maxGroupSize {
		return RuleGroup{}, fmt.Errorf("rule group %q of tenant %q, namespace %q (object %s): larger than %d bytes", group, user, namespace, key, maxGroupSize)
	}
	var g rulefmt.RuleGroup
	dec := yaml.NewDecoder(bytes.NewReader(b))
	dec.KnownFields(true)
	if err := dec.Decode(&g); err != nil {
		return RuleGroup{}, fmt.Errorf("rule group %q of tenant %q, namespace %q (object %s) is not a rule group in YAML: %w", group, user, namespace, key, err)
	}
	if g.Name != group {
		return RuleGroup{}, fmt.Errorf("rule group %q of tenant %q, namespace %q (object %s) holds a group named %q", group, user, namespace, key, g.Name)
	}
	return RuleGroup{User: user, Namespace: namespace, Group: g}, nil
}

// GetRuleGroup returns one group, or ErrGroupNotFound.
func (s *BucketStore) GetRuleGroup(ctx context.Context, user, namespace, group string) (RuleGroup, error) {
	if err := checkUser(user); err != nil {
		return RuleGroup{}, err
	}
	return s.get(ctx, groupKey(user, namespace, group), user, namespace, group)
}

// SetRuleGroup writes the group g.Group.Name, replacing any previous one.
func (s *BucketStore) SetRuleGroup(ctx context.Context, g RuleGroup) error {
	if err := checkUser(g.User); err != nil {
		return err
	}
	if g.Namespace == "" || g.Group.Name == "" {
		return fmt.Errorf("tenant %q: rule group %q in namespace %q: the namespace and the group name must not be empty", g.User, g.Group.Name, g.Namespace)
	}
	b, err := yaml.Marshal(g.Group)
	if err != nil {
		return fmt.Errorf("encoding rule group %q of tenant %q, namespace %q: %w", g.Group.Name, g.User, g.Namespace, err)
	}
	key := groupKey(g.User, g.Namespace, g.Group.Name)
	if err := s.bkt.Upload(ctx, key, bytes.NewReader(b)); err != nil {
		return fmt.Errorf("writing rule group %q of tenant %q, namespace %q (object %s): %w", g.Group.Name, g.User, g.Namespace, key, err)
	}
	return nil
}

// DeleteRuleGroup removes one group, or returns ErrGroupNotFound.
func (s *BucketStore) DeleteRuleGroup(ctx context.Context, user, namespace, group string) error {
	if err := checkUser(user); err != nil {
		return err
	}
	key := groupKey(user, namespace, group)
	ok, err := s.bkt.Exists(ctx, key)
	if err != nil {
		return fmt.Errorf("looking up rule group %q of tenant %q, namespace %q (object %s): %w", group, user, namespace, key, err)
	}
	if !ok {
		return groupNotFound(user, namespace, group)
	}
	if err := s.bkt.Delete(ctx, key); err != nil && !s.bkt.IsObjNotFoundErr(err) {
		return fmt.Errorf("deleting rule group %q of tenant %q, namespace %q (object %s): %w", group, user, namespace, key, err)
	}
	return nil
}

// DeleteNamespace removes every group of the namespace, or returns
// ErrGroupNamespaceNotFound.
func (s *BucketStore) DeleteNamespace(ctx context.Context, user, namespace string) error {
	if err := checkUser(user); err != nil {
		return err
	}
	if namespace == "" {
		return fmt.Errorf("%w: tenant %q, empty namespace", ErrGroupNamespaceNotFound, user)
	}
	keys, err := s.keys(ctx, user, namespace)
	if err != nil {
		return err
	}
	if len(keys) == 0 {
		return fmt.Errorf("%w: tenant %q, namespace %q", ErrGroupNamespaceNotFound, user, namespace)
	}
	for _, k := range keys {
		if err := s.bkt.Delete(ctx, k); err != nil && !s.bkt.IsObjNotFoundErr(err) {
			return fmt.Errorf("deleting namespace %q of tenant %q (object %s): %w", namespace, user, k, err)
		}
	}
	return nil
}

// Close closes the bucket client.
func (s *BucketStore) Close() error { return s.bkt.Close() }
