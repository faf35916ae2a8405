package bucket

import (
	"flag"
	"fmt"
	"slices"
	"strings"
)

// The values of -<prefix>.backend.
const (
	S3         = "s3"
	GCS        = "gcs"
	Azure      = "azure"
	Swift      = "swift"
	Filesystem = "filesystem"
)

// SupportedBackends lists the values -<prefix>.backend accepts.
var SupportedBackends = []string{S3, GCS, Azure, Swift, Filesystem}

// Config is Cortex's bucket client configuration. Its YAML keys are
// Cortex's (backend, s3, gcs, azure, swift, filesystem); Cortex inlines it in
// the blocks_storage block (and later in ruler_storage and
// alertmanager_storage).
type Config struct {
	Backend    string           `yaml:"backend"`
	S3         S3Config         `yaml:"s3"`
	GCS        GCSConfig        `yaml:"gcs"`
	Azure      AzureConfig      `yaml:"azure"`
	Swift      SwiftConfig      `yaml:"swift"`
	Filesystem FilesystemConfig `yaml:"filesystem"`

	// ExtraBackends are further values of -<prefix>backend that are not
	// object storage, served by the caller (the ruler storage's configdb and
	// local, as in Cortex). Set it before registering the flags: the
	// backend flag's help and Validate's error list them.
	ExtraBackends []string `yaml:"-"`

	// prefix is the flag prefix given to RegisterFlagsWithPrefix
	// ("blocks-storage."), kept so errors name the operator's flags.
	prefix string
}

// RegisterFlagsWithPrefix registers -<prefix>backend and every backend's
// flags; prefix ends with a dot ("blocks-storage."), as in Cortex. Unlike
// Cortex, the default backend is filesystem, in a directory named after the
// prefix ("blocks" for "blocks-storage.") under the working directory, so
// the process runs with no external service.
func (c *Config) RegisterFlagsWithPrefix(prefix string, f *flag.FlagSet) {
	c.RegisterFlagsWithPrefixAndDefaults(prefix, f, Filesystem, DefaultDir(prefix))
}

// DefaultDir is the default -<prefix>filesystem.dir: the prefix's name
// without "-storage." ("blocks-storage." gives "blocks").
func DefaultDir(prefix string) string {
	d := strings.TrimSuffix(strings.TrimSuffix(prefix, "."), "-storage")
	if d == "" {
		return "bucket"
	}
	return d
}

// RegisterFlagsWithPrefixAndDefaults is RegisterFlagsWithPrefix with the
// default backend and filesystem directory chosen by the caller.
func (c *Config) RegisterFlagsWithPrefixAndDefaults(prefix string, f *flag.FlagSet, backend, dir string) {
	c.prefix = prefix
	c.S3.registerFlags(prefix, f)
	c.GCS.registerFlags(prefix, f)
	c.Azure.registerFlags(prefix, f)
	c.Swift.registerFlags(prefix, f)
	c.Filesystem.registerFlags(prefix, f, dir)
	f.StringVar(&c.Backend, prefix+"backend", backend, fmt.Sprintf("Backend storage to use. Supported backends are: %s. Only filesystem and s3 (MinIO) are tested against real servers here.", strings.Join(c.supported(), ", ")))
}

// supported lists the accepted -<prefix>backend values: the object storage
// backends, then ExtraBackends.
func (c *Config) supported() []string {
	return append(slices.Clone(SupportedBackends), c.ExtraBackends...)
}

// IsExtraBackend reports whether -<prefix>backend names one of
// ExtraBackends, for which there is no bucket client.
func (c *Config) IsExtraBackend() bool { return slices.Contains(c.ExtraBackends, c.Backend) }

// flag names a flag of this config for error messages: flag("s3.endpoint")
// gives "-blocks-storage.s3.endpoint".
func (c *Config) flag(name string) string { return "-" + c.prefix + name }

// Validate checks what can be checked without I/O; NewClient checks the
// rest (certificate files, the filesystem directory).
func (c *Config) Validate() error {
	if c.IsExtraBackend() {
		return nil // the caller validates its own backends
	}
	if !slices.Contains(SupportedBackends, c.Backend) {
		return fmt.Errorf("%s=%q: unknown backend; supported backends are: %s", c.flag("backend"), c.Backend, strings.Join(c.supported(), ", "))
	}
	switch c.Backend {
	case S3:
		return c.S3.validate(c.flag)
	case GCS:
		if c.GCS.BucketName == "" {
			return fmt.Errorf("%s must be set when %s=gcs", c.flag("gcs.bucket-name"), c.flag("backend"))
		}
	case Azure:
		if c.Azure.StorageAccountName == "" {
			return fmt.Errorf("%s must be set when %s=azure", c.flag("azure.account-name"), c.flag("backend"))
		}
		if c.Azure.ContainerName == "" {
			return fmt.Errorf("%s must be set when %s=azure", c.flag("azure.container-name"), c.flag("backend"))
		}
		if c.Azure.StorageAccountKey.String() != "" && c.Azure.ConnectionString.String() != "" {
			return fmt.Errorf("%s and %s cannot both be set: the connection string holds the credentials", c.flag("azure.account-key"), c.flag("azure.connection-string"))
		}
		if c.Azure.UserAssignedID != "" && c.Azure.ConnectionString.String() != "" {
			return fmt.Errorf("%s cannot be set with %s", c.flag("azure.user-assigned-id"), c.flag("azure.connection-string"))
		}
	case Swift:
		if c.Swift.AuthURL == "" {
			return fmt.Errorf("%s must be set when %s=swift", c.flag("swift.auth-url"), c.flag("backend"))
		}
		if c.Swift.ContainerName == "" {
			return fmt.Errorf("%s must be set when %s=swift", c.flag("swift.container-name"), c.flag("backend"))
		}
	case Filesystem:
		if c.Filesystem.Directory == "" {
			return fmt.Errorf("%s must be set when %s=filesystem", c.flag("filesystem.dir"), c.flag("backend"))
		}
	}
	return nil
}

// FilesystemConfig is the filesystem backend: objects are files under Dir.
type FilesystemConfig struct {
	Directory string `yaml:"dir"`
}

func (c *FilesystemConfig) registerFlags(prefix string, f *flag.FlagSet, dir string) {
	f.StringVar(&c.Directory, prefix+"filesystem.dir", dir, "Local filesystem storage directory, created if missing; a relative path is relative to the working directory. (Cortex's default is empty; here it defaults to a directory under the working directory so the filesystem backend works out of the box.) Only for a single process or a shared filesystem.")
}
