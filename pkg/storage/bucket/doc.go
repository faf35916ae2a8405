// Package bucket is the object storage client of the blocks storage: the
// Cortex bucket configuration (-blocks-storage.backend, .filesystem.*,
// .s3.*, .gcs.*, .azure.*, .swift.*, registered under any prefix so the same
// struct serves -ruler-storage., whose configdb and local backends are its
// ExtraBackends, and later -alertmanager-storage.) and NewClient, which
// validates it, builds the thanos-io/objstore provider and instruments it
// with Cortex's thanos_objstore_bucket_* metrics.
//
// The S3 link's TLS (-<prefix>.s3.http.tls-*) goes through pkg/tlsconfig like
// every other client link of the process: its files are checked at startup
// with errors naming the flag and reload without a restart.
//
// It only builds clients: it must not know what is stored in a bucket (block
// layout, tenants, markers), never deletes or lists anything on its own, and
// never writes outside the configured filesystem directory.
package bucket
