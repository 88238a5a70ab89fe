package dynamostore

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"strconv"
	"strings"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/enc-pipe/enc-pipe/envelope"
)

// DefaultTableName is Asherah's default table name.
const DefaultTableName = "EncryptionKey"

// Attribute names of Asherah's item layout.
const (
	attrID            = "Id"
	attrCreated       = "Created"
	attrKeyRecord     = "KeyRecord"
	attrRevoked       = "Revoked"
	attrKey           = "Key"
	attrParentKeyMeta = "ParentKeyMeta"
	attrKeyID         = "KeyId"
)

// ErrMalformedItem is wrapped by the errors of Load and LoadLatest for an
// item that does not have Asherah's layout.
var ErrMalformedItem = errors.New("dynamostore: malformed key item")

// API is the part of the DynamoDB client that Store uses; *dynamodb.Client
// implements it.
type API interface {
	GetItem(ctx context.Context, in *dynamodb.GetItemInput, optFns ...func(*dynamodb.Options)) (*dynamodb.GetItemOutput, error)
	PutItem(ctx context.Context, in *dynamodb.PutItemInput, optFns ...func(*dynamodb.Options)) (*dynamodb.PutItemOutput, error)
	Query(ctx context.Context, in *dynamodb.QueryInput, optFns ...func(*dynamodb.Options)) (*dynamodb.QueryOutput, error)
	// Used only by the key administration methods Revoke, List and Delete.
	UpdateItem(ctx context.Context, in *dynamodb.UpdateItemInput, optFns ...func(*dynamodb.Options)) (*dynamodb.UpdateItemOutput, error)
	DeleteItem(ctx context.Context, in *dynamodb.DeleteItemInput, optFns ...func(*dynamodb.Options)) (*dynamodb.DeleteItemOutput, error)
	Scan(ctx context.Context, in *dynamodb.ScanInput, optFns ...func(*dynamodb.Options)) (*dynamodb.ScanOutput, error)
}

var _ API = (*dynamodb.Client)(nil)

// Store is an envelope.Metastore on a DynamoDB table. Create it with New
// or Open. It is safe for concurrent use.
type Store struct {
	table        string
	regionSuffix bool
	clients      []regional // preferred first, then replicas in failover order
}

var (
	_ envelope.Metastore      = (*Store)(nil)
	_ envelope.RegionSuffixer = (*Store)(nil)
	_ envelope.Revoker        = (*Store)(nil)
	_ envelope.Lister         = (*Store)(nil)
	_ envelope.Deleter        = (*Store)(nil)
)

type regional struct {
	region string // "" when not known (single region, no suffix)
	api    API
}

// Option configures New.
type Option func(*Store) error

// WithTableName sets the table name (default DefaultTableName).
func WithTableName(name string) Option {
	return func(s *Store) error {
		if name == "" {
			return errors.New("dynamostore: empty table name")
		}
		s.table = name
		return nil
	}
}

// WithRegion names the preferred client's region. It is needed only when
// the client is not a *dynamodb.Client (whose configured region is used
// otherwise) and the region matters: with WithRegionSuffix, with replicas,
// and in error messages.
func WithRegion(region string) Option {
	return func(s *Store) error {
		if region == "" {
			return errors.New("dynamostore: empty region")
		}
		s.clients[0].region = region
		return nil
	}
}

// WithRegionSuffix makes GetRegionSuffix return the preferred region, as
// Asherah's WithRegionSuffix(true) does, so that key ids carry the region.
// Use it with global tables.
func WithRegionSuffix(enabled bool) Option {
	return func(s *Store) error { s.regionSuffix = enabled; return nil }
}

// WithReplica adds the client of another region of a global table. Reads
// fail over to replicas, in the order they were added, when the preferred
// region fails. Writes never go to a replica.
func WithReplica(region string, api API) Option {
	return func(s *Store) error {
		if region == "" || api == nil {
			return errors.New("dynamostore: a replica needs a region and a client")
		}
		s.clients = append(s.clients, regional{region: region, api: api})
		return nil
	}
}

// New returns a Store that reads and writes through client, the preferred
// region's DynamoDB client. It makes no network call; see CreateTable for
// creating the table.
func New(client API, opts ...Option) (*Store, error) {
	if client == nil {
		return nil, errors.New("dynamostore: nil client")
	}
	s := &Store{table: DefaultTableName, clients: []regional{{api: client}}}
	if c, ok := client.(*dynamodb.Client); ok {
		s.clients[0].region = c.Options().Region
	}
	for _, opt := range opts {
		if opt == nil {
			continue
		}
		if err := opt(s); err != nil {
			return nil, err
		}
	}
	if s.regionSuffix && s.clients[0].region == "" {
		return nil, errors.New("dynamostore: WithRegionSuffix needs the client's region (configure it, or use WithRegion)")
	}
	seen := map[string]bool{}
	for _, c := range s.clients {
		if len(s.clients) > 1 && c.region == "" {
			return nil, errors.New("dynamostore: with replicas, the preferred client's region must be known (use WithRegion)")
		}
		if c.region != "" && seen[c.region] {
			return nil, fmt.Errorf("dynamostore: region %s is configured twice", c.region)
		}
		seen[c.region] = true
	}
	return s, nil
}

// TableName returns the table the store uses.
func (s *Store) TableName() string { return s.table }

// Region returns the preferred region, or "" when it is not known.
func (s *Store) Region() string { return s.clients[0].region }

// GetRegionSuffix returns the preferred region when WithRegionSuffix is
// on, and "" otherwise. The session factory appends a non-empty suffix to
// system and intermediate key ids (envelope.RegionSuffixer).
func (s *Store) GetRegionSuffix() string {
	if s.regionSuffix {
		return s.clients[0].region
	}
	return ""
}

// Load returns the key stored under (id, created), or envelope.ErrNotFound.
// It reads consistently from the preferred region; when that fails or
// finds nothing, it asks the replicas in order.
func (s *Store) Load(ctx context.Context, id string, created int64) (*envelope.EnvelopeKeyRecord, error) {
	in := &dynamodb.GetItemInput{
		TableName: aws.String(s.table),
		Key: map[string]types.AttributeValue{
			attrID:      &types.AttributeValueMemberS{Value: id},
			attrCreated: &types.AttributeValueMemberN{Value: strconv.FormatInt(created, 10)},
		},
		ConsistentRead:           aws.Bool(true),
		ProjectionExpression:     aws.String("#kr"),
		ExpressionAttributeNames: map[string]string{"#kr": attrKeyRecord},
	}
	return s.read(ctx, "GetItem", id, true, func(c regional) (map[string]types.AttributeValue, error) {
		out, err := c.api.GetItem(ctx, in)
		if err != nil {
			return nil, err
		}
		return out.Item, nil
	})
}

// LoadLatest returns the key with the greatest created time for id, or
// envelope.ErrNotFound. It queries the preferred region consistently and
// fails over to the replicas only when the preferred region fails.
func (s *Store) LoadLatest(ctx context.Context, id string) (*envelope.EnvelopeKeyRecord, error) {
	in := &dynamodb.QueryInput{
		TableName:                 aws.String(s.table),
		KeyConditionExpression:    aws.String("#id = :id"),
		ExpressionAttributeNames:  map[string]string{"#id": attrID, "#kr": attrKeyRecord},
		ExpressionAttributeValues: map[string]types.AttributeValue{":id": &types.AttributeValueMemberS{Value: id}},
		ProjectionExpression:      aws.String("#kr"),
		ScanIndexForward:          aws.Bool(false),
		Limit:                     aws.Int32(1),
		ConsistentRead:            aws.Bool(true),
	}
	return s.read(ctx, "Query", id, false, func(c regional) (map[string]types.AttributeValue, error) {
		out, err := c.api.Query(ctx, in)
		if err != nil {
			return nil, err
		}
		if len(out.Items) == 0 {
			return nil, nil
		}
		return out.Items[0], nil
	})
}

// read runs get against the preferred region and then the replicas. It
// stops at the first region that answers with an item, or that answers
// "absent" unless absentFailsOver.
func (s *Store) read(ctx context.Context, op, id string, absentFailsOver bool, get func(regional) (map[string]types.AttributeValue, error)) (*envelope.EnvelopeKeyRecord, error) {
	var errs []error
	absent := false
	for _, c := range s.clients {
		item, err := get(c)
		if err != nil {
			errs = append(errs, s.opErr(c, op, id, err))
			if ctx.Err() != nil {
				break
			}
			continue
		}
		if item == nil {
			absent = true
			if absentFailsOver {
				continue
			}
			break
		}
		rec, err := decodeItem(item)
		if err != nil {
			return nil, fmt.Errorf("dynamostore: %s %s in table %s: %w", op, id, s.table, err)
		}
		rec.ID = id
		return rec, nil
	}
	if absent {
		// At least one region answered, and none had the key. Say so, and
		// keep the failures of the regions that did not answer.
		if len(errs) > 0 {
			return nil, fmt.Errorf("dynamostore: %s not found in the regions that answered: %w; %w", id, envelope.ErrNotFound, regionErrors(errs))
		}
		return nil, envelope.ErrNotFound
	}
	return nil, regionErrors(errs)
}

// regionErrors joins the errors of several regions, like errors.Join
// (errors.Is and errors.As see each of them), on one line.
type regionErrors []error

func (e regionErrors) Error() string {
	msgs := make([]string, len(e))
	for i, err := range e {
		msgs[i] = err.Error()
	}
	return strings.Join(msgs, "; ")
}

func (e regionErrors) Unwrap() []error { return e }

// Store writes rec under (id, created) in the preferred region, unless an
// item with that key exists: then it returns envelope.ErrKeyExists. It
// never writes to a replica. Any other error means the item may or may not
// have been written.
func (s *Store) Store(ctx context.Context, id string, created int64, rec *envelope.EnvelopeKeyRecord) error {
	if rec == nil {
		return errors.New("dynamostore: Store of a nil record")
	}
	c := s.clients[0]
	_, err := c.api.PutItem(ctx, &dynamodb.PutItemInput{
		TableName:                aws.String(s.table),
		Item:                     encodeItem(id, created, rec),
		ConditionExpression:      aws.String("attribute_not_exists(#id)"),
		ExpressionAttributeNames: map[string]string{"#id": attrID},
	})
	if err != nil {
		var ccf *types.ConditionalCheckFailedException
		if errors.As(err, &ccf) {
			return fmt.Errorf("dynamostore: %s (created %d): %w", id, created, envelope.ErrKeyExists)
		}
		return s.opErr(c, "PutItem", id, err)
	}
	return nil
}

func (s *Store) opErr(c regional, op, id string, err error) error {
	where := "table " + s.table
	if c.region != "" {
		where = "region " + c.region + ", " + where
	}
	return fmt.Errorf("dynamostore: %s %s (%s): %w", op, id, where, err)
}

// encodeItem lays rec out as Asherah's item.
func encodeItem(id string, created int64, rec *envelope.EnvelopeKeyRecord) map[string]types.AttributeValue {
	return map[string]types.AttributeValue{
		attrID:        &types.AttributeValueMemberS{Value: id},
		attrCreated:   &types.AttributeValueMemberN{Value: strconv.FormatInt(created, 10)},
		attrKeyRecord: &types.AttributeValueMemberM{Value: EncodeKeyRecord(rec)},
	}
}

// EncodeKeyRecord returns rec as the KeyRecord map of Asherah's item
// layout: Revoked only when true, Created, Key as standard base64, and
// ParentKeyMeta only when rec has a parent.
func EncodeKeyRecord(rec *envelope.EnvelopeKeyRecord) map[string]types.AttributeValue {
	m := map[string]types.AttributeValue{
		attrCreated: &types.AttributeValueMemberN{Value: strconv.FormatInt(rec.Created, 10)},
		attrKey:     &types.AttributeValueMemberS{Value: base64.StdEncoding.EncodeToString(rec.EncryptedKey)},
	}
	if rec.Revoked {
		m[attrRevoked] = &types.AttributeValueMemberBOOL{Value: true}
	}
	if rec.ParentKeyMeta != nil {
		m[attrParentKeyMeta] = &types.AttributeValueMemberM{Value: map[string]types.AttributeValue{
			attrKeyID:   &types.AttributeValueMemberS{Value: rec.ParentKeyMeta.ID},
			attrCreated: &types.AttributeValueMemberN{Value: strconv.FormatInt(rec.ParentKeyMeta.Created, 10)},
		}}
	}
	return m
}

// decodeItem reads the KeyRecord attribute of an item.
func decodeItem(item map[string]types.AttributeValue) (*envelope.EnvelopeKeyRecord, error) {
	m, ok := item[attrKeyRecord].(*types.AttributeValueMemberM)
	if !ok {
		return nil, fmt.Errorf("%w: no %s map", ErrMalformedItem, attrKeyRecord)
	}
	return DecodeKeyRecord(m.Value)
}

// DecodeKeyRecord parses the KeyRecord map of Asherah's item layout. It
// accepts Key as a base64 string (Asherah's form) or as binary, and a
// missing Revoked as false. Errors wrap ErrMalformedItem.
func DecodeKeyRecord(m map[string]types.AttributeValue) (*envelope.EnvelopeKeyRecord, error) {
	rec := &envelope.EnvelopeKeyRecord{}
	var err error
	if rec.Created, err = numberAttr(m, attrCreated); err != nil {
		return nil, err
	}
	switch k := m[attrKey].(type) {
	case *types.AttributeValueMemberS:
		if rec.EncryptedKey, err = base64.StdEncoding.DecodeString(k.Value); err != nil {
			return nil, fmt.Errorf("%w: %s is not standard base64: %v", ErrMalformedItem, attrKey, err)
		}
	case *types.AttributeValueMemberB:
		rec.EncryptedKey = k.Value
	default:
		return nil, fmt.Errorf("%w: no %s string", ErrMalformedItem, attrKey)
	}
	if len(rec.EncryptedKey) == 0 {
		return nil, fmt.Errorf("%w: empty %s", ErrMalformedItem, attrKey)
	}
	switch r := m[attrRevoked].(type) {
	case nil, *types.AttributeValueMemberNULL:
	case *types.AttributeValueMemberBOOL:
		rec.Revoked = r.Value
	default:
		return nil, fmt.Errorf("%w: %s is not a boolean", ErrMalformedItem, attrRevoked)
	}
	switch p := m[attrParentKeyMeta].(type) {
	case nil, *types.AttributeValueMemberNULL:
	case *types.AttributeValueMemberM:
		id, ok := p.Value[attrKeyID].(*types.AttributeValueMemberS)
		if !ok || id.Value == "" {
			return nil, fmt.Errorf("%w: %s has no %s", ErrMalformedItem, attrParentKeyMeta, attrKeyID)
		}
		created, err := numberAttr(p.Value, attrCreated)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", attrParentKeyMeta, err)
		}
		rec.ParentKeyMeta = &envelope.KeyMeta{ID: id.Value, Created: created}
	default:
		return nil, fmt.Errorf("%w: %s is not a map", ErrMalformedItem, attrParentKeyMeta)
	}
	return rec, nil
}

func numberAttr(m map[string]types.AttributeValue, name string) (int64, error) {
	n, ok := m[name].(*types.AttributeValueMemberN)
	if !ok {
		return 0, fmt.Errorf("%w: no %s number", ErrMalformedItem, name)
	}
	v, err := strconv.ParseInt(strings.TrimSpace(n.Value), 10, 64)
	if err != nil {
		return 0, fmt.Errorf("%w: %s %q is not an integer", ErrMalformedItem, name, n.Value)
	}
	return v, nil
}
