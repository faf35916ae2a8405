package shardring

import "os"

// hostname is the default instance ID, as Cortex's.
var hostname = os.Hostname
