// Package rulestore keeps tenants' rule groups: in the configs service
// (read-only here, written through its own API), in a local directory
// (read-only) or in an object-storage bucket (read-write, what the ruler API
// writes to).
//
// The backend is -ruler-storage.backend, Cortex's ruler_storage block:
// configdb (-ruler-storage.configs.url and .configs.tls-*, the link shared
// with the alertmanager's in pkg/configs/client), local
// (-ruler-storage.local.directory) or one of pkg/storage/bucket's object
// storage backends (filesystem, s3, gcs, azure, swift). Unlike Cortex, whose
// default is s3, the default is filesystem in ./ruler, so that -target=all
// runs with no external service.
//
// In a bucket the layout is Cortex's, one object per group at
// rules/<tenant>/<base64url(namespace)>/<base64url(group name)>; Cortex
// stores the group as a rulespb protobuf, here the object holds the group as
// YAML (a rulefmt.RuleGroup, an item of a Prometheus rule file's "groups:"),
// so a bucket written by Cortex is not read by this store, nor the reverse.
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
