package bucket

import (
	"context"
	"flag"
	"net/http"
	"time"

	"github.com/go-kit/log"
	"github.com/grafana/dskit/flagext"
	"github.com/prometheus/common/model"
	"github.com/thanos-io/objstore"
	"github.com/thanos-io/objstore/exthttp"
	"github.com/thanos-io/objstore/providers/azure"
	"github.com/thanos-io/objstore/providers/gcs"
	"github.com/thanos-io/objstore/providers/swift"
)

// GCSConfig is the gcs block (Google Cloud Storage). Not tested against a
// real service here.
type GCSConfig struct {
	BucketName     string         `yaml:"bucket_name"`
	ServiceAccount flagext.Secret `yaml:"service_account"`
}

func (c *GCSConfig) registerFlags(prefix string, f *flag.FlagSet) {
	f.StringVar(&c.BucketName, prefix+"gcs.bucket-name", "", "GCS bucket name")
	f.Var(&c.ServiceAccount, prefix+"gcs.service-account", "JSON representing either a Google Developers Console client_credentials.json file or a Google Developers service account key file. If empty, fallback to Google default logic.")
}

func newGCSClient(ctx context.Context, c GCSConfig, name string, logger log.Logger, wrapTransport func(http.RoundTripper) http.RoundTripper) (objstore.Bucket, error) {
	return gcs.NewBucketWithConfig(ctx, logger, gcs.Config{Bucket: c.BucketName, ServiceAccount: c.ServiceAccount.String()}, name, wrapTransport)
}

// HTTPConfig is the http block of the Azure backend: Cortex's transport
// settings.
type HTTPConfig struct {
	IdleConnTimeout       time.Duration `yaml:"idle_conn_timeout"`
	ResponseHeaderTimeout time.Duration `yaml:"response_header_timeout"`
	InsecureSkipVerify    bool          `yaml:"insecure_skip_verify"`
	TLSHandshakeTimeout   time.Duration `yaml:"tls_handshake_timeout"`
	ExpectContinueTimeout time.Duration `yaml:"expect_continue_timeout"`
	MaxIdleConns          int           `yaml:"max_idle_connections"`
	MaxIdleConnsPerHost   int           `yaml:"max_idle_connections_per_host"`
	MaxConnsPerHost       int           `yaml:"max_connections_per_host"`
}

// registerFlags uses Cortex's names: <prefix>http.idle-conn-timeout,
// <prefix>http.response-header-timeout, <prefix>http.insecure-skip-verify,
// then <prefix>tls-handshake-timeout and the rest without "http.".
func (c *HTTPConfig) registerFlags(prefix string, f *flag.FlagSet) {
	f.DurationVar(&c.IdleConnTimeout, prefix+"http.idle-conn-timeout", 90*time.Second, "The time an idle connection will remain idle before closing.")
	f.DurationVar(&c.ResponseHeaderTimeout, prefix+"http.response-header-timeout", 2*time.Minute, "The amount of time the client will wait for a servers response headers.")
	f.BoolVar(&c.InsecureSkipVerify, prefix+"http.insecure-skip-verify", false, "If the client connects via HTTPS and this option is enabled, the client will accept any certificate and hostname.")
	f.DurationVar(&c.TLSHandshakeTimeout, prefix+"tls-handshake-timeout", 10*time.Second, "Maximum time to wait for a TLS handshake. 0 means no limit.")
	f.DurationVar(&c.ExpectContinueTimeout, prefix+"expect-continue-timeout", time.Second, "The time to wait for a server's first response headers after fully writing the request headers if the request has an Expect header. 0 to send the request body immediately.")
	f.IntVar(&c.MaxIdleConns, prefix+"max-idle-connections", 100, "Maximum number of idle (keep-alive) connections across all hosts. 0 means no limit.")
	f.IntVar(&c.MaxIdleConnsPerHost, prefix+"max-idle-connections-per-host", 100, "Maximum number of idle (keep-alive) connections to keep per-host. If 0, a built-in default value is used.")
	f.IntVar(&c.MaxConnsPerHost, prefix+"max-connections-per-host", 0, "Maximum number of connections per host. 0 means no limit.")
}

func (c HTTPConfig) exthttp() exthttp.HTTPConfig {
	return exthttp.HTTPConfig{
		IdleConnTimeout:       model.Duration(c.IdleConnTimeout),
		ResponseHeaderTimeout: model.Duration(c.ResponseHeaderTimeout),
		InsecureSkipVerify:    c.InsecureSkipVerify,
		TLSHandshakeTimeout:   model.Duration(c.TLSHandshakeTimeout),
		ExpectContinueTimeout: model.Duration(c.ExpectContinueTimeout),
		MaxIdleConns:          c.MaxIdleConns,
		MaxIdleConnsPerHost:   c.MaxIdleConnsPerHost,
		MaxConnsPerHost:       c.MaxConnsPerHost,
	}
}

// AzureConfig is the azure block (Azure Blob Storage). Not tested against a
// real service here.
type AzureConfig struct {
	StorageAccountName string         `yaml:"account_name"`
	StorageAccountKey  flagext.Secret `yaml:"account_key"`
	ConnectionString   flagext.Secret `yaml:"connection_string"`
	ContainerName      string         `yaml:"container_name"`
	Endpoint           string         `yaml:"endpoint_suffix"`
	MaxRetries         int            `yaml:"max_retries"`
	MSIResource        string         `yaml:"msi_resource"`
	UserAssignedID     string         `yaml:"user_assigned_id"`
	HTTP               HTTPConfig     `yaml:"http"`
}

func (c *AzureConfig) registerFlags(prefix string, f *flag.FlagSet) {
	p := prefix + "azure."
	f.StringVar(&c.StorageAccountName, p+"account-name", "", "Azure storage account name")
	f.Var(&c.StorageAccountKey, p+"account-key", "Azure storage account key")
	f.Var(&c.ConnectionString, p+"connection-string", "Azure storage connection string, instead of -"+p+"account-key: for a SAS token or the Azurite emulator. The account name must still be set.")
	f.StringVar(&c.ContainerName, p+"container-name", "", "Azure storage container name")
	f.StringVar(&c.Endpoint, p+"endpoint-suffix", "", "Azure storage endpoint suffix without schema. The account name will be prefixed to this value to create the FQDN")
	f.IntVar(&c.MaxRetries, p+"max-retries", 20, "Number of retries for recoverable errors")
	f.StringVar(&c.MSIResource, p+"msi-resource", "", "Deprecated and ignored: the Azure SDK sets the MSI resource itself. Kept so Cortex configurations still parse.")
	f.StringVar(&c.UserAssignedID, p+"user-assigned-id", "", "Azure storage MSI resource managed identity client Id. If not supplied system assigned identity is used")
	c.HTTP.registerFlags(p, f)
}

func newAzureClient(c AzureConfig, name string, logger log.Logger, wrapTransport func(http.RoundTripper) http.RoundTripper) (objstore.Bucket, error) {
	return azure.NewBucketWithConfig(logger, c.objstoreConfig(), name, wrapTransport)
}

// objstoreConfig is the Azure provider's configuration of c.
func (c AzureConfig) objstoreConfig() azure.Config {
	ac := azure.DefaultConfig
	ac.StorageAccountName = c.StorageAccountName
	ac.StorageAccountKey = c.StorageAccountKey.String()
	ac.StorageConnectionString = c.ConnectionString.String()
	ac.ContainerName = c.ContainerName
	if c.Endpoint != "" {
		ac.Endpoint = c.Endpoint
	}
	ac.MaxRetries = c.MaxRetries
	ac.UserAssignedID = c.UserAssignedID
	ac.HTTPConfig = c.HTTP.exthttp()
	// What objstore's YAML parser derives from max_retries.
	ac.PipelineConfig.MaxTries = int32(c.MaxRetries)
	ac.ReaderConfig.MaxRetryRequests = c.MaxRetries
	return ac
}

// SwiftConfig is the swift block (OpenStack Swift). Not tested against a
// real service here.
type SwiftConfig struct {
	AuthVersion                 int           `yaml:"auth_version"`
	AuthURL                     string        `yaml:"auth_url"`
	ApplicationCredentialID     string        `yaml:"application_credential_id"`
	ApplicationCredentialName   string        `yaml:"application_credential_name"`
	ApplicationCredentialSecret string        `yaml:"application_credential_secret"`
	Username                    string        `yaml:"username"`
	UserDomainName              string        `yaml:"user_domain_name"`
	UserDomainID                string        `yaml:"user_domain_id"`
	UserID                      string        `yaml:"user_id"`
	Password                    string        `yaml:"password"`
	DomainID                    string        `yaml:"domain_id"`
	DomainName                  string        `yaml:"domain_name"`
	ProjectID                   string        `yaml:"project_id"`
	ProjectName                 string        `yaml:"project_name"`
	ProjectDomainID             string        `yaml:"project_domain_id"`
	ProjectDomainName           string        `yaml:"project_domain_name"`
	RegionName                  string        `yaml:"region_name"`
	ContainerName               string        `yaml:"container_name"`
	MaxRetries                  int           `yaml:"max_retries"`
	ConnectTimeout              time.Duration `yaml:"connect_timeout"`
	RequestTimeout              time.Duration `yaml:"request_timeout"`
}

func (c *SwiftConfig) registerFlags(prefix string, f *flag.FlagSet) {
	p := prefix + "swift."
	f.IntVar(&c.AuthVersion, p+"auth-version", 0, "OpenStack Swift authentication API version. 0 to autodetect.")
	f.StringVar(&c.AuthURL, p+"auth-url", "", "OpenStack Swift authentication URL")
	f.StringVar(&c.Username, p+"username", "", "OpenStack Swift username.")
	f.StringVar(&c.UserDomainName, p+"user-domain-name", "", "OpenStack Swift user's domain name.")
	f.StringVar(&c.UserDomainID, p+"user-domain-id", "", "OpenStack Swift user's domain ID.")
	f.StringVar(&c.UserID, p+"user-id", "", "OpenStack Swift user ID.")
	f.StringVar(&c.Password, p+"password", "", "OpenStack Swift API key.")
	f.StringVar(&c.DomainID, p+"domain-id", "", "OpenStack Swift user's domain ID.")
	f.StringVar(&c.DomainName, p+"domain-name", "", "OpenStack Swift user's domain name.")
	f.StringVar(&c.ProjectID, p+"project-id", "", "OpenStack Swift project ID (v2,v3 auth only).")
	f.StringVar(&c.ProjectName, p+"project-name", "", "OpenStack Swift project name (v2,v3 auth only).")
	f.StringVar(&c.ProjectDomainID, p+"project-domain-id", "", "ID of the OpenStack Swift project's domain (v3 auth only), only needed if it differs the from user domain.")
	f.StringVar(&c.ProjectDomainName, p+"project-domain-name", "", "Name of the OpenStack Swift project's domain (v3 auth only), only needed if it differs from the user domain.")
	f.StringVar(&c.ApplicationCredentialID, p+"application-credential-id", "", "OpenStack Swift application credential ID.")
	f.StringVar(&c.ApplicationCredentialName, p+"application-credential-name", "", "OpenStack Swift application credential name.")
	f.StringVar(&c.ApplicationCredentialSecret, p+"application-credential-secret", "", "OpenStack Swift application credential secret.")
	f.StringVar(&c.RegionName, p+"region-name", "", "OpenStack Swift Region to use (v2,v3 auth only).")
	f.StringVar(&c.ContainerName, p+"container-name", "", "Name of the OpenStack Swift container to put chunks in.")
	f.IntVar(&c.MaxRetries, p+"max-retries", 3, "Max retries on requests error.")
	f.DurationVar(&c.ConnectTimeout, p+"connect-timeout", 10*time.Second, "Time after which a connection attempt is aborted.")
	f.DurationVar(&c.RequestTimeout, p+"request-timeout", 5*time.Second, "Time after which an idle request is aborted. The timeout watchdog is reset each time some data is received, so the timeout triggers after X time no data is received on a request.")
}

func newSwiftClient(c SwiftConfig, logger log.Logger, wrapTransport func(http.RoundTripper) http.RoundTripper) (objstore.Bucket, error) {
	sc := swift.DefaultConfig
	sc.AuthVersion = c.AuthVersion
	sc.AuthUrl = c.AuthURL
	sc.ApplicationCredentialID = c.ApplicationCredentialID
	sc.ApplicationCredentialName = c.ApplicationCredentialName
	sc.ApplicationCredentialSecret = c.ApplicationCredentialSecret
	sc.Username = c.Username
	sc.UserDomainName = c.UserDomainName
	sc.UserDomainID = c.UserDomainID
	sc.UserId = c.UserID
	sc.Password = c.Password
	sc.DomainId = c.DomainID
	sc.DomainName = c.DomainName
	sc.ProjectID = c.ProjectID
	sc.ProjectName = c.ProjectName
	sc.ProjectDomainID = c.ProjectDomainID
	sc.ProjectDomainName = c.ProjectDomainName
	sc.RegionName = c.RegionName
	sc.ContainerName = c.ContainerName
	sc.Retries = c.MaxRetries
	sc.ConnectTimeout = model.Duration(c.ConnectTimeout)
	sc.Timeout = model.Duration(c.RequestTimeout)
	return swift.NewContainerFromConfig(logger, &sc, false, wrapTransport)
}
