package validation

import (
	"fmt"
	"math"
	"slices"
)

// QueryPriority is Cortex's limits.query_priority: with Enabled, the
// query-frontend gives each of the tenant's queries the priority of the
// first of Priorities one of whose attributes matches it, DefaultPriority
// otherwise, and the queues hand out the tenant's higher priorities first.
type QueryPriority struct {
	Enabled         bool          `yaml:"enabled"`
	DefaultPriority int64         `yaml:"default_priority"`
	Priorities      []PriorityDef `yaml:"priorities"`
}

// PriorityDef is one priority level of a tenant.
type PriorityDef struct {
	// Priority is the level: higher is dequeued first. Unique per tenant.
	Priority int64 `yaml:"priority"`
	// ReservedQueriers of the tenant's queriers take only queries of this
	// priority or higher: a count, or below 1 a fraction of the tenant's
	// queriers (rounded up). Reservations that would take every querier
	// of the tenant are not made.
	ReservedQueriers float64 `yaml:"reserved_queriers"`
	// QueryAttributes: a query matching any of them gets Priority.
	QueryAttributes []QueryAttribute `yaml:"query_attributes"`
}

// Validate checks the priority definitions and compiles their regular
// expressions.
func (q *QueryPriority) Validate() error {
	q.Priorities = slices.Clone(q.Priorities)
	seen := make(map[int64]int, len(q.Priorities))
	for i := range q.Priorities {
		p := &q.Priorities[i]
		at := fmt.Sprintf("query_priority.priorities[%d]", i)
		if j, ok := seen[p.Priority]; ok {
			return fmt.Errorf("%s.priority %d: duplicate of query_priority.priorities[%d]; each priority must be unique", at, p.Priority, j)
		}
		seen[p.Priority] = i
		if p.ReservedQueriers < 0 {
			return fmt.Errorf("%s.reserved_queriers must not be negative (a count, or below 1 a fraction of the tenant's queriers), got %v", at, p.ReservedQueriers)
		}
		p.QueryAttributes = slices.Clone(p.QueryAttributes)
		if err := validateQueryAttributes(p.QueryAttributes, at+".query_attributes"); err != nil {
			return err
		}
	}
	return nil
}

// ReservedQuerierCount is how many of a tenant's queriers reserved
// queriers of r reserve, as Cortex counts them: a value below 1 is a
// fraction of the queriers, rounded up.
func ReservedQuerierCount(r float64, queriers int) int {
	if r < 1 {
		return int(math.Ceil(float64(queriers) * r))
	}
	return int(math.Ceil(r))
}
