package cortex

import (
	"github.com/cortex-tls/cortex/pkg/util/resource"
)

// resourceMonitorOf returns the process's resource monitor
// (-resource-monitor.*), made on first use and shared by the ingester's
// and the store-gateway's query protection; nil when it monitors nothing.
func (t *Cortex) resourceMonitorOf() (*resource.Monitor, error) {
	t.resourceMonitorOnce.Do(func() {
		t.resourceMonitor, t.resourceMonitorErr = resource.NewMonitor(t.Cfg.ResourceMonitor, t.Registry)
	})
	return t.resourceMonitor, t.resourceMonitorErr
}
