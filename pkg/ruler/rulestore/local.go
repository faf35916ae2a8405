package rulestore

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"

	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/model/rulefmt"
	"github.com/prometheus/prometheus/promql/parser"

	"github.com/cortex-tls/cortex/pkg/tenant"
)

// LocalStore reads rules from a directory, as Cortex's local rule store
// does: <dir>/<tenant>/<file>, each file a Prometheus rule file whose name
// is the namespace. Symbolic links are followed (a Kubernetes ConfigMap
// mount is made of them); hidden entries (a name starting with ".") are
// skipped, as are tenant directories whose name is not a valid tenant ID.
// It is read-only: the files are the operator's.
type LocalStore struct {
	dir    string
	logger *slog.Logger
	parser parser.Parser
}

// readParser reads the rule files of the local and configs stores. It
// accepts Prometheus' experimental functions: the ruler, which evaluates the
// groups, refuses a group using them without
// -querier.enable-promql-experimental-functions, that group only.
var readParser = parser.NewParser(parser.Options{EnableExperimentalFunctions: true})

// NewLocalStore returns a store reading dir.
func NewLocalStore(dir string, logger *slog.Logger) *LocalStore {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	return &LocalStore{dir: dir, logger: logger, parser: readParser}
}

// ListAllUsers returns the tenant directories with at least one rule
// group. A tenant whose files do not parse is logged, naming the file, and
// left out (ListRuleGroups returns its error), so that a reader going
// through every tenant is not stopped by one tenant's files.
func (s *LocalStore) ListAllUsers(ctx context.Context) ([]string, error) {
	entries, err := os.ReadDir(s.dir)
	if err != nil {
		return nil, fmt.Errorf("-%slocal.directory: %w", flagPrefix, err)
	}
	var users []string
	for _, e := range entries {
		name := e.Name()
		if strings.HasPrefix(name, ".") || !s.isDir(filepath.Join(s.dir, name)) {
			continue
		}
		if err := tenant.Valid(name); err != nil {
			s.logger.Warn("directory under -"+flagPrefix+"local.directory is not a tenant ID; skipped", "dir", filepath.Join(s.dir, name), "err", err)
			continue
		}
		groups, err := s.ListRuleGroups(ctx, name, "")
		if err != nil {
			s.logger.Error("tenant's rule files cannot be loaded; the tenant is left out until they are fixed", "tenant", name, "err", err)
			continue
		}
		if len(groups) > 0 {
			users = append(users, name)
		}
	}
	return users, nil
}

// isDir reports whether path is a directory, following symbolic links.
func (s *LocalStore) isDir(path string) bool {
	fi, err := os.Stat(path)
	return err == nil && fi.IsDir()
}

// files returns the names of the tenant's rule files, sorted; none for a
// tenant with no directory.
func (s *LocalStore) files(user string) ([]string, error) {
	dir := filepath.Join(s.dir, user)
	entries, err := os.ReadDir(dir)
	if os.IsNotExist(err) {
		return nil, nil
	}
	if err != nil {
		return nil, err // names the directory
	}
	var out []string
	for _, e := range entries {
		name := e.Name()
		if strings.HasPrefix(name, ".") {
			continue
		}
		fi, err := os.Stat(filepath.Join(dir, name))
		if err != nil {
			return nil, err // a dangling link, named
		}
		if fi.Mode().IsRegular() {
			out = append(out, name)
		}
	}
	return out, nil // os.ReadDir sorts by name
}

// checkNames refuses a tenant or namespace that is not a plain name within
// the directory.
func checkNames(user, namespace string) error {
	if err := tenant.Valid(user); err != nil {
		return fmt.Errorf("tenant %q: %w", user, err)
	}
	if namespace != "" && (namespace == "." || namespace == ".." || strings.ContainsAny(namespace, `/\`) || strings.ContainsRune(namespace, 0)) {
		return fmt.Errorf("namespace %q: not a file name", namespace)
	}
	return nil
}

// load parses one rule file; errors name the file.
func (s *LocalStore) load(user, namespace string) ([]RuleGroup, error) {
	path := filepath.Join(s.dir, user, namespace)
	rgs, errs := rulefmt.ParseFile(path, false, model.UTF8Validation, s.parser, s.logger)
	if len(errs) > 0 {
		msgs := make([]string, len(errs))
		for i, e := range errs {
			msgs[i] = e.Error()
		}
		return nil, fmt.Errorf("tenant %q, rules file %s: %s", user, path, strings.Join(msgs, "; "))
	}
	out := make([]RuleGroup, 0, len(rgs.Groups))
	for _, g := range rgs.Groups {
		out = append(out, RuleGroup{User: user, Namespace: namespace, Group: g})
	}
	return out, nil
}

// ListRuleGroups parses the tenant's files (or the file namespace); the
// first file that does not parse fails the call, named.
func (s *LocalStore) ListRuleGroups(_ context.Context, user, namespace string) ([]RuleGroup, error) {
	if err := checkNames(user, namespace); err != nil {
		return nil, err
	}
	files, err := s.files(user)
	if err != nil {
		return nil, err
	}
	var out []RuleGroup
	for _, f := range files {
		if namespace != "" && f != namespace {
			continue
		}
		groups, err := s.load(user, f)
		if err != nil {
			return nil, err
		}
		out = append(out, groups...)
	}
	sortGroups(out)
	return out, nil
}

// GetRuleGroup returns one group, or ErrGroupNotFound.
func (s *LocalStore) GetRuleGroup(ctx context.Context, user, namespace, group string) (RuleGroup, error) {
	if namespace == "" {
		return RuleGroup{}, groupNotFound(user, namespace, group)
	}
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

func (s *LocalStore) writes() string {
	return fmt.Sprintf("edit the rule files under -%slocal.directory=%s", flagPrefix, s.dir)
}

// SetRuleGroup returns ErrReadOnly.
func (s *LocalStore) SetRuleGroup(context.Context, RuleGroup) error {
	return readOnly(Local, s.writes())
}

// DeleteRuleGroup returns ErrReadOnly.
func (s *LocalStore) DeleteRuleGroup(context.Context, string, string, string) error {
	return readOnly(Local, s.writes())
}

// DeleteNamespace returns ErrReadOnly.
func (s *LocalStore) DeleteNamespace(context.Context, string, string) error {
	return readOnly(Local, s.writes())
}
