package bucket

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/go-kit/log"
	"github.com/grafana/dskit/flagext"
	"github.com/prometheus/common/model"
	"github.com/thanos-io/objstore"
	"github.com/thanos-io/objstore/providers/s3"

	"github.com/cortex-tls/cortex/pkg/tlsconfig"
)

// S3 settings' values, as Cortex names them.
const (
	SignatureVersionV4 = "v4"
	SignatureVersionV2 = "v2"

	SSEKMS = "SSE-KMS"
	SSES3  = "SSE-S3"

	BucketAutoLookup        = "auto"
	BucketVirtualHostLookup = "virtual-hosted"
	BucketPathLookup        = "path"

	ListObjectsVersionV1 = "v1"
	ListObjectsVersionV2 = "v2"
)

var (
	supportedSignatureVersions  = []string{SignatureVersionV4, SignatureVersionV2}
	supportedSSETypes           = []string{SSEKMS, SSES3}
	supportedBucketLookupTypes  = []string{BucketAutoLookup, BucketVirtualHostLookup, BucketPathLookup}
	supportedListObjectsVersion = []string{ListObjectsVersionV1, ListObjectsVersionV2}
)

// S3Config is the s3 block: Cortex's flags and YAML keys.
type S3Config struct {
	Endpoint           string         `yaml:"endpoint"`
	Region             string         `yaml:"region"`
	BucketName         string         `yaml:"bucket_name"`
	SecretAccessKey    flagext.Secret `yaml:"secret_access_key"`
	AccessKeyID        string         `yaml:"access_key_id"`
	Insecure           bool           `yaml:"insecure"`
	SignatureVersion   string         `yaml:"signature_version"`
	BucketLookupType   string         `yaml:"bucket_lookup_type"`
	SendContentMd5     bool           `yaml:"send_content_md5"`
	ListObjectsVersion string         `yaml:"list_objects_version"`
	DisableDualstack   bool           `yaml:"disable_dualstack"`

	SSE  SSEConfig    `yaml:"sse"`
	HTTP S3HTTPConfig `yaml:"http"`

	// maxRetries overrides minio-go's retry count (10) when positive; tests
	// lower it so refused connections fail fast.
	maxRetries int
}

// S3HTTPConfig is the s3.http block: Cortex's transport settings plus the
// TLS flags every client link of this process has
// (-<prefix>s3.http.tls-ca-path, ...), inlined as tls_* keys.
type S3HTTPConfig struct {
	IdleConnTimeout       time.Duration `yaml:"idle_conn_timeout"`
	ResponseHeaderTimeout time.Duration `yaml:"response_header_timeout"`
	InsecureSkipVerify    bool          `yaml:"insecure_skip_verify"`
	TLSHandshakeTimeout   time.Duration `yaml:"tls_handshake_timeout"`
	ExpectContinueTimeout time.Duration `yaml:"expect_continue_timeout"`
	MaxIdleConns          int           `yaml:"max_idle_connections"`
	MaxIdleConnsPerHost   int           `yaml:"max_idle_connections_per_host"`
	MaxConnsPerHost       int           `yaml:"max_connections_per_host"`

	TLS tlsconfig.ClientConfig `yaml:",inline"`
}

// SSEConfig is the s3.sse block: server-side encryption.
type SSEConfig struct {
	Type                 string `yaml:"type"`
	KMSKeyID             string `yaml:"kms_key_id"`
	KMSEncryptionContext string `yaml:"kms_encryption_context"`
}

func (c *S3Config) registerFlags(prefix string, f *flag.FlagSet) {
	p := prefix + "s3."
	f.StringVar(&c.AccessKeyID, p+"access-key-id", "", "S3 access key ID. If empty, credentials come from the AWS SDK's default chain (environment, shared files, instance role).")
	f.Var(&c.SecretAccessKey, p+"secret-access-key", "S3 secret access key.")
	f.StringVar(&c.BucketName, p+"bucket-name", "", "S3 bucket name. Required with -"+prefix+"backend=s3.")
	f.StringVar(&c.Region, p+"region", "", "S3 region. If unset, the client will issue a S3 GetBucketLocation API call to autodetect it.")
	f.StringVar(&c.Endpoint, p+"endpoint", "", "The S3 bucket endpoint, in host:port form with no scheme. It could be an AWS S3 endpoint listed at https://docs.aws.amazon.com/general/latest/gr/s3.html or the address of an S3-compatible service such as MinIO. Required with -"+prefix+"backend=s3.")
	f.BoolVar(&c.Insecure, p+"insecure", false, "If enabled, use plain http:// for the S3 endpoint instead of https://. Cannot be combined with the -"+p+"http.tls-* flags.")
	f.StringVar(&c.SignatureVersion, p+"signature-version", SignatureVersionV4, fmt.Sprintf("The signature version to use for authenticating against S3. Supported values are: %s.", strings.Join(supportedSignatureVersions, ", ")))
	f.StringVar(&c.BucketLookupType, p+"bucket-lookup-type", BucketAutoLookup, fmt.Sprintf("The s3 bucket lookup style. Supported values are: %s.", strings.Join(supportedBucketLookupTypes, ", ")))
	f.BoolVar(&c.SendContentMd5, p+"send-content-md5", true, "If true, attach MD5 checksum when upload objects and S3 uses MD5 checksum algorithm to verify the provided digest. If false, use CRC32C algorithm instead.")
	f.BoolVar(&c.DisableDualstack, p+"disable-dualstack", false, "Disable forcing S3 dualstack (IPv4 and IPv6) endpoint usage on AWS: the client then calls s3.<region>.amazonaws.com rather than s3.dualstack.<region>.amazonaws.com.")
	f.StringVar(&c.ListObjectsVersion, p+"list-objects-version", "", fmt.Sprintf("The list api version. Supported values are: %s, and ''.", strings.Join(supportedListObjectsVersion, ", ")))

	f.StringVar(&c.SSE.Type, p+"sse.type", "", fmt.Sprintf("Enable AWS Server Side Encryption. Supported values: %s.", strings.Join(supportedSSETypes, ", ")))
	f.StringVar(&c.SSE.KMSKeyID, p+"sse.kms-key-id", "", "KMS Key ID used to encrypt objects in S3")
	f.StringVar(&c.SSE.KMSEncryptionContext, p+"sse.kms-encryption-context", "", "KMS Encryption Context used for object encryption. It expects JSON formatted string.")

	h := &c.HTTP
	f.DurationVar(&h.IdleConnTimeout, p+"http.idle-conn-timeout", 90*time.Second, "The time an idle connection will remain idle before closing.")
	f.DurationVar(&h.ResponseHeaderTimeout, p+"http.response-header-timeout", 2*time.Minute, "The amount of time the client will wait for a servers response headers.")
	f.BoolVar(&h.InsecureSkipVerify, p+"http.insecure-skip-verify", false, "If the client connects to S3 via HTTPS and this option is enabled, the client will accept any certificate and hostname. Cortex's name for -"+p+"http.tls-insecure-skip-verify; either one skips verification.")
	f.DurationVar(&h.TLSHandshakeTimeout, p+"tls-handshake-timeout", 10*time.Second, "Maximum time to wait for a TLS handshake (here: the TCP connect and the TLS handshake together). 0 means no limit.")
	f.DurationVar(&h.ExpectContinueTimeout, p+"expect-continue-timeout", time.Second, "The time to wait for a server's first response headers after fully writing the request headers if the request has an Expect header. 0 to send the request body immediately.")
	f.IntVar(&h.MaxIdleConns, p+"max-idle-connections", 100, "Maximum number of idle (keep-alive) connections across all hosts. 0 means no limit.")
	f.IntVar(&h.MaxIdleConnsPerHost, p+"max-idle-connections-per-host", 100, "Maximum number of idle (keep-alive) connections to keep per-host. If 0, a built-in default value is used.")
	f.IntVar(&h.MaxConnsPerHost, p+"max-connections-per-host", 0, "Maximum number of connections per host. 0 means no limit.")
	h.TLS.RegisterFlagsWithPrefix(p+"http", f)
}

// tlsPathSet names the first -s3.http.tls-* flag that asks for TLS, or "".
func (h *S3HTTPConfig) tlsPathSet() string {
	switch {
	case h.TLS.CAPath != "":
		return "tls-ca-path"
	case h.TLS.CertPath != "":
		return "tls-cert-path"
	case h.TLS.KeyPath != "":
		return "tls-key-path"
	case h.TLS.ServerName != "":
		return "tls-server-name"
	case h.TLS.Enabled:
		return "tls-enabled"
	}
	return ""
}

func (c *S3Config) validate(flagName func(string) string) error {
	backend := flagName("backend") + "=s3"
	if c.BucketName == "" {
		return fmt.Errorf("%s must be set when %s", flagName("s3.bucket-name"), backend)
	}
	if c.Endpoint == "" {
		return fmt.Errorf("%s must be set when %s (host:port of the S3 service, e.g. s3.us-east-1.amazonaws.com or minio:9000)", flagName("s3.endpoint"), backend)
	}
	if strings.Contains(c.Endpoint, "://") || strings.Contains(c.Endpoint, "/") {
		return fmt.Errorf("%s=%q: want host[:port] with no scheme or path (https is the default; -%s plain HTTP)", flagName("s3.endpoint"), c.Endpoint, strings.TrimPrefix(flagName("s3.insecure"), "-"))
	}
	if (c.AccessKeyID == "") != (c.SecretAccessKey.String() == "") {
		return fmt.Errorf("%s and %s must be set together (or both left empty to use the AWS SDK's credential chain)", flagName("s3.access-key-id"), flagName("s3.secret-access-key"))
	}
	if !slices.Contains(supportedSignatureVersions, c.SignatureVersion) {
		return fmt.Errorf("%s=%q: unsupported signature version; supported values are: %s", flagName("s3.signature-version"), c.SignatureVersion, strings.Join(supportedSignatureVersions, ", "))
	}
	if !slices.Contains(supportedBucketLookupTypes, c.BucketLookupType) {
		return fmt.Errorf("%s=%q: invalid bucket lookup type; supported values are: %s", flagName("s3.bucket-lookup-type"), c.BucketLookupType, strings.Join(supportedBucketLookupTypes, ", "))
	}
	if c.ListObjectsVersion != "" && !slices.Contains(supportedListObjectsVersion, c.ListObjectsVersion) {
		return fmt.Errorf("%s=%q: invalid list objects version; supported values are: %s, and ''", flagName("s3.list-objects-version"), c.ListObjectsVersion, strings.Join(supportedListObjectsVersion, ", "))
	}
	if c.SSE.Type != "" && !slices.Contains(supportedSSETypes, c.SSE.Type) {
		return fmt.Errorf("%s=%q: unsupported S3 SSE type; supported values are: %s", flagName("s3.sse.type"), c.SSE.Type, strings.Join(supportedSSETypes, ", "))
	}
	if _, err := parseKMSEncryptionContext(c.SSE.KMSEncryptionContext); err != nil {
		return fmt.Errorf("%s: invalid S3 SSE encryption context: %w", flagName("s3.sse.kms-encryption-context"), err)
	}
	if c.Insecure {
		if name := c.HTTP.tlsPathSet(); name != "" {
			return fmt.Errorf("%s=true (plain HTTP) contradicts %s: drop one of them", flagName("s3.insecure"), flagName("s3.http."+name))
		}
	}
	return nil
}

func parseKMSEncryptionContext(data string) (map[string]string, error) {
	if data == "" {
		return nil, nil
	}
	decoded := map[string]string{}
	if err := json.Unmarshal([]byte(data), &decoded); err != nil {
		return nil, err
	}
	return decoded, nil
}

// tlsPrefix is the tlsconfig prefix of the S3 link ("blocks-storage.s3.http").
func s3TLSPrefix(prefix string) string { return prefix + "s3.http" }

// newS3Client builds the S3 provider with a transport from pkg/tlsconfig.
func newS3Client(cfg *Config, name string, loader *tlsconfig.Loader, logger *slog.Logger, kit log.Logger, wrapTransport func(http.RoundTripper) http.RoundTripper) (objstore.Bucket, error) {
	c := &cfg.S3
	rt, err := c.transport(cfg.prefix, loader)
	if err != nil {
		return nil, err
	}
	b, err := s3.NewBucketWithConfig(kit, c.objstoreConfig(rt), name, wrapTransport)
	if err != nil {
		return nil, fmt.Errorf("%s=s3: %w", cfg.flag("backend"), err)
	}
	scheme := "https"
	if c.Insecure {
		scheme = "http"
	}
	logger.Info("object storage client", "backend", S3, "endpoint", scheme+"://"+c.Endpoint, "bucket", c.BucketName)
	return b, nil
}

// objstoreConfig is the S3 provider's configuration of c, over rt.
func (c *S3Config) objstoreConfig(rt http.RoundTripper) s3.Config {
	lookup := s3.AutoLookup
	switch c.BucketLookupType {
	case BucketVirtualHostLookup:
		lookup = s3.VirtualHostLookup
	case BucketPathLookup:
		lookup = s3.PathLookup
	}
	var sse s3.SSEConfig
	switch c.SSE.Type {
	case SSEKMS:
		ctx, _ := parseKMSEncryptionContext(c.SSE.KMSEncryptionContext) // checked by validate
		sse = s3.SSEConfig{Type: s3.SSEKMS, KMSKeyID: c.SSE.KMSKeyID, KMSEncryptionContext: ctx}
	case SSES3:
		sse = s3.SSEConfig{Type: s3.SSES3}
	}
	oc := s3.DefaultConfig
	oc.PutUserMetadata = map[string]string{}
	oc.Bucket = c.BucketName
	oc.Endpoint = c.Endpoint
	oc.Region = c.Region
	oc.AccessKey = c.AccessKeyID
	oc.SecretKey = c.SecretAccessKey.String()
	oc.AWSSDKAuth = c.AccessKeyID == ""
	oc.Insecure = c.Insecure
	oc.SignatureV2 = c.SignatureVersion == SignatureVersionV2
	oc.BucketLookupType = lookup
	oc.SendContentMd5 = c.SendContentMd5
	oc.ListObjectsVersion = c.ListObjectsVersion
	oc.SSEConfig = sse
	oc.MaxRetries = c.maxRetries
	oc.HTTPConfig = s3.HTTPConfig{
		IdleConnTimeout:       model.Duration(c.HTTP.IdleConnTimeout),
		ResponseHeaderTimeout: model.Duration(c.HTTP.ResponseHeaderTimeout),
		TLSHandshakeTimeout:   model.Duration(c.HTTP.TLSHandshakeTimeout),
		ExpectContinueTimeout: model.Duration(c.HTTP.ExpectContinueTimeout),
		MaxIdleConns:          c.HTTP.MaxIdleConns,
		MaxIdleConnsPerHost:   c.HTTP.MaxIdleConnsPerHost,
		MaxConnsPerHost:       c.HTTP.MaxConnsPerHost,
		Transport:             rt,
	}
	oc.DisableDualstack = c.DisableDualstack
	return oc
}

// transport returns the S3 link's HTTP transport: TLS from pkg/tlsconfig
// (validated now, naming the flag, and reloaded on change) unless
// -<prefix>s3.insecure asks for plain HTTP, with Cortex's s3.http settings.
func (c *S3Config) transport(prefix string, loader *tlsconfig.Loader) (*http.Transport, error) {
	tc := c.HTTP.TLS
	if !c.Insecure {
		// https is S3's default: with no -s3.http.tls-* flag at all the
		// server is verified against the system's CAs.
		tc.Enabled = true
	}
	if c.HTTP.InsecureSkipVerify {
		tc.InsecureSkipVerify = true
	}
	if c.Insecure {
		tc = tlsconfig.ClientConfig{}
	}
	client, err := tlsconfig.NewClient(s3TLSPrefix(prefix), tc, loader)
	if err != nil {
		return nil, err
	}
	t := client.HTTPTransport()
	h := c.HTTP
	t.IdleConnTimeout = h.IdleConnTimeout
	t.ResponseHeaderTimeout = h.ResponseHeaderTimeout
	t.TLSHandshakeTimeout = h.TLSHandshakeTimeout
	t.ExpectContinueTimeout = h.ExpectContinueTimeout
	t.MaxIdleConns = h.MaxIdleConns
	t.MaxIdleConnsPerHost = h.MaxIdleConnsPerHost
	t.MaxConnsPerHost = h.MaxConnsPerHost
	// Objects are stored as uploaded; never let the transport gunzip one.
	t.DisableCompression = true
	if dial := t.DialTLSContext; dial != nil && h.TLSHandshakeTimeout > 0 {
		// The transport's own TLSHandshakeTimeout does not apply to a custom
		// TLS dialer: bound the connect and handshake here.
		t.DialTLSContext = func(ctx context.Context, network, addr string) (net.Conn, error) {
			ctx, cancel := context.WithTimeout(ctx, h.TLSHandshakeTimeout)
			defer cancel()
			conn, err := dial(ctx, network, addr)
			if err != nil && errors.Is(err, context.DeadlineExceeded) {
				return nil, fmt.Errorf("-%ss3.tls-handshake-timeout: no TLS connection to %s within %s: %w", prefix, addr, h.TLSHandshakeTimeout, err)
			}
			return conn, err
		}
	}
	return t, nil
}
