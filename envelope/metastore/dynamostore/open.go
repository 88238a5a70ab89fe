package dynamostore

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awsconfig "github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
)

// Config describes a DynamoDB metastore for Open.
type Config struct {
	// Table is the table name. Default: DefaultTableName ("EncryptionKey").
	Table string
	// Region is the preferred region: all writes and the first read go
	// there. Required.
	Region string
	// Endpoint, when set, replaces the AWS endpoint of Region (a local
	// server such as dynalite, or a VPC endpoint). Default: AWS's.
	Endpoint string
	// Replicas are the other regions of a global table, in the order reads
	// fail over to them. Default: none.
	Replicas []Replica
	// RegionSuffix makes the store report Region as the key id suffix
	// (WithRegionSuffix). Default: false.
	RegionSuffix bool
	// AWSConfig is the base SDK configuration (credentials, retries,
	// HTTP client); each client's region and endpoint are set from the
	// fields above. Default: the default AWS configuration and credential
	// chain, loaded when Open is called.
	AWSConfig *aws.Config
}

// Replica is one replica region of a global table.
type Replica struct {
	Region   string
	Endpoint string // optional endpoint override, as Config.Endpoint
}

// Validate reports what is wrong with c, if anything.
func (c Config) Validate() error {
	if c.Region == "" {
		return errors.New("dynamostore: a region is required")
	}
	seen := map[string]bool{c.Region: true}
	for _, r := range c.Replicas {
		if r.Region == "" {
			return errors.New("dynamostore: a replica has no region")
		}
		if seen[r.Region] {
			return fmt.Errorf("dynamostore: region %s is configured twice", r.Region)
		}
		seen[r.Region] = true
	}
	return nil
}

// Open builds SDK clients for cfg's regions and returns a Store on them.
// It makes no network call (the default credential chain resolves
// credentials on first use); it neither checks nor creates the table.
func Open(ctx context.Context, cfg Config) (*Store, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	base := cfg.AWSConfig
	if base == nil {
		loaded, err := awsconfig.LoadDefaultConfig(ctx)
		if err != nil {
			return nil, fmt.Errorf("dynamostore: failed to load AWS configuration: %w", err)
		}
		base = &loaded
	}
	opts := []Option{WithRegion(cfg.Region), WithRegionSuffix(cfg.RegionSuffix)}
	if cfg.Table != "" {
		opts = append(opts, WithTableName(cfg.Table))
	}
	for _, r := range cfg.Replicas {
		opts = append(opts, WithReplica(r.Region, NewClient(*base, r.Region, r.Endpoint)))
	}
	return New(NewClient(*base, cfg.Region, cfg.Endpoint), opts...)
}

// NewClient returns a DynamoDB client for region built from base, with
// endpoint (when not empty) in place of the AWS endpoint.
func NewClient(base aws.Config, region, endpoint string) *dynamodb.Client {
	return dynamodb.NewFromConfig(base, func(o *dynamodb.Options) {
		o.Region = region
		if endpoint != "" {
			o.BaseEndpoint = aws.String(endpoint)
		}
	})
}

// TableAPI is the part of the DynamoDB client CreateTable uses;
// *dynamodb.Client implements it.
type TableAPI interface {
	CreateTable(ctx context.Context, in *dynamodb.CreateTableInput, optFns ...func(*dynamodb.Options)) (*dynamodb.CreateTableOutput, error)
	DescribeTable(ctx context.Context, in *dynamodb.DescribeTableInput, optFns ...func(*dynamodb.Options)) (*dynamodb.DescribeTableOutput, error)
}

var _ TableAPI = (*dynamodb.Client)(nil)

// CreateTable creates Asherah's key table, named name (DefaultTableName
// when empty): hash key Id (S), range key Created (N), on-demand billing.
// It waits up to two minutes for the table to become active. A table that
// already exists is left as it is and is not an error. For a global table,
// create it in one region and add replicas with the AWS tools.
func CreateTable(ctx context.Context, client TableAPI, name string) error {
	if name == "" {
		name = DefaultTableName
	}
	_, err := client.CreateTable(ctx, &dynamodb.CreateTableInput{
		TableName: aws.String(name),
		AttributeDefinitions: []types.AttributeDefinition{
			{AttributeName: aws.String(attrID), AttributeType: types.ScalarAttributeTypeS},
			{AttributeName: aws.String(attrCreated), AttributeType: types.ScalarAttributeTypeN},
		},
		KeySchema: []types.KeySchemaElement{
			{AttributeName: aws.String(attrID), KeyType: types.KeyTypeHash},
			{AttributeName: aws.String(attrCreated), KeyType: types.KeyTypeRange},
		},
		BillingMode: types.BillingModePayPerRequest,
	})
	var inUse *types.ResourceInUseException
	if err != nil && !errors.As(err, &inUse) {
		return fmt.Errorf("dynamostore: failed to create table %s: %w", name, err)
	}
	w := dynamodb.NewTableExistsWaiter(client, func(o *dynamodb.TableExistsWaiterOptions) {
		o.MinDelay = 100 * time.Millisecond
		o.MaxDelay = 5 * time.Second
	})
	if err := w.Wait(ctx, &dynamodb.DescribeTableInput{TableName: aws.String(name)}, 2*time.Minute); err != nil {
		return fmt.Errorf("dynamostore: table %s did not become active: %w", name, err)
	}
	return nil
}

// CreateTable creates the store's table through its preferred client (see
// the package function CreateTable). It fails when that client does not
// implement TableAPI; a *dynamodb.Client does.
func (s *Store) CreateTable(ctx context.Context) error {
	api, ok := s.clients[0].api.(TableAPI)
	if !ok {
		return fmt.Errorf("dynamostore: the client (%T) cannot create tables", s.clients[0].api)
	}
	return CreateTable(ctx, api, s.table)
}
