package main

import (
	_ "github.com/grafana/dskit/kv"
	_ "github.com/grafana/dskit/kv/memberlist"
	_ "github.com/grafana/dskit/ring"
	_ "github.com/grafana/dskit/ring/client"
	_ "github.com/grafana/dskit/runtimeconfig"
	_ "github.com/grafana/dskit/tenant"
	_ "github.com/grafana/dskit/user"
	_ "github.com/prometheus/prometheus/model/labels"
	_ "github.com/prometheus/prometheus/prompb"
	_ "github.com/prometheus/prometheus/prompb/io/prometheus/write/v2"
	_ "github.com/prometheus/prometheus/promql"
	_ "github.com/prometheus/prometheus/promql/parser"
	_ "github.com/prometheus/prometheus/storage"
	_ "github.com/prometheus/prometheus/tsdb"
	_ "github.com/klauspost/compress/snappy"
	_ "golang.org/x/time/rate"
)

func main() {}
