// Package rulestore keeps tenants' rule groups: in the configs service
// (read-only here, written through its own API), in a local directory
// (read-only) or in an object-storage bucket (read-write, what the ruler API
// writes to).
package rulestore

import (
	"context"
	"errors"

	"github.com/prometheus/prometheus/model/rulefmt"
)

// ErrGroupNotFound is returned by GetRuleGroup and DeleteRuleGroup for a
// group that does not exist.
var ErrGroupNotFound = errors.New("rule group not found")

// ErrGroupNamespaceNotFound is returned by DeleteNamespace for a namespace
// with no groups.
var ErrGroupNamespaceNotFound = errors.New("namespace not found")

// ErrReadOnly is returned by the writes of a store that cannot be written
// through the ruler API (configdb, local).
var ErrReadOnly = errors.New("rule store is read-only")

// RuleGroup is one tenant's rule group in one namespace (Prometheus' rule
// file name; the ruler API's {namespace}).
type RuleGroup struct {
	User      string
	Namespace string
	Group     rulefmt.RuleGroup
}

// Store is where the ruler reads rule groups and the ruler API writes them.
type Store interface {
	// ListAllUsers returns every tenant with at least one rule group.
	ListAllUsers(ctx context.Context) ([]string, error)
	// ListRuleGroups returns the tenant's groups, of one namespace when
	// namespace is not empty, ordered by namespace then group name.
	ListRuleGroups(ctx context.Context, user, namespace string) ([]RuleGroup, error)
	// GetRuleGroup returns one group or ErrGroupNotFound.
	GetRuleGroup(ctx context.Context, user, namespace, group string) (RuleGroup, error)
	// SetRuleGroup creates or replaces the group g.Group.Name.
	SetRuleGroup(ctx context.Context, g RuleGroup) error
	// DeleteRuleGroup removes one group or returns ErrGroupNotFound.
	DeleteRuleGroup(ctx context.Context, user, namespace, group string) error
	// DeleteNamespace removes every group of the namespace or returns
	// ErrGroupNamespaceNotFound.
	DeleteNamespace(ctx context.Context, user, namespace string) error
}
