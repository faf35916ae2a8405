package main

// commonFlags are the flags -help prints (path.Match patterns): those an
// operator sets on a first cluster, as Mimir's basic category. -help-all
// prints every flag.
var commonFlags = []string{
	"target", "config.file", "config.expand-env", "print.config", "version", "help-all",
	"auth.enabled", "auth.client-tenants-file", "auth.tenant-from-client-cert", "tls.reload-interval",
	"log.level", "log.format",
	"server.http-listen-address", "server.http-listen-port", "server.grpc-listen-address", "server.grpc-listen-port",
	"server.http-tls-*", "server.grpc-tls-*",
	"http.prometheus-http-prefix", "http.prefix",
	"ring.store", "distributor.replication-factor", "ingester.lifecycler.addr", "ingester.lifecycler.ID",
	"memberlist.join", "memberlist.bind-addr", "memberlist.bind-port", "memberlist.tls-*",
	"ingester.client.tls-*", "querier.frontend-address", "querier.frontend-client.tls-*",
	"blocks-storage.backend", "blocks-storage.filesystem.dir", "blocks-storage.tsdb.dir",
	"blocks-storage.s3.endpoint", "blocks-storage.s3.bucket-name", "blocks-storage.s3.region",
	"blocks-storage.s3.access-key-id", "blocks-storage.s3.secret-access-key", "blocks-storage.s3.insecure",
	"runtime-config.file",
	"alertmanager.configs.url", "alertmanager.configs.client-timeout", "alertmanager.configs.tls-*",
	"alertmanager-storage.backend", "configs.database.uri",
	"ruler-storage.backend", "ruler.alertmanager-url",
}
