package frontend

// queryParallelism is how many split and shard queries of one of the
// tenant's client queries run at once: the tenant's
// -querier.max-query-parallelism (for several tenants the smallest), at
// least one.
func (f *Frontend) queryParallelism(tenantID string) int {
	if f.limits == nil {
		return defaultQueryParallelism
	}
	return max(f.limits.For(tenantID).MaxQueryParallelism, 1)
}
