package dynamostore

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/enc-pipe/enc-pipe/envelope"
)

// Key administration (envelope.Revoker, Lister, Deleter), for the CLI's
// keys commands and for operators. Writes go to the preferred region, like
// Store; List reads like LoadLatest.

// Revoke sets KeyRecord.Revoked on the item (id, created), keeping the rest
// of it, in the preferred region. It returns an error wrapping
// envelope.ErrNotFound when there is no such item. Revoking twice is not an
// error.
func (s *Store) Revoke(ctx context.Context, id string, created int64) error {
	c := s.clients[0]
	_, err := c.api.UpdateItem(ctx, &dynamodb.UpdateItemInput{
		TableName: aws.String(s.table),
		Key: map[string]types.AttributeValue{
			attrID:      &types.AttributeValueMemberS{Value: id},
			attrCreated: &types.AttributeValueMemberN{Value: strconv.FormatInt(created, 10)},
		},
		UpdateExpression:          aws.String("SET #kr.#rv = :t"),
		ConditionExpression:       aws.String("attribute_exists(#id)"),
		ExpressionAttributeNames:  map[string]string{"#kr": attrKeyRecord, "#rv": attrRevoked, "#id": attrID},
		ExpressionAttributeValues: map[string]types.AttributeValue{":t": &types.AttributeValueMemberBOOL{Value: true}},
	})
	if err != nil {
		var ccf *types.ConditionalCheckFailedException
		if errors.As(err, &ccf) {
			return fmt.Errorf("dynamostore: %s (created %d): %w", id, created, envelope.ErrNotFound)
		}
		return s.opErr(c, "UpdateItem", id, err)
	}
	return nil
}

// List returns every key whose id starts with idPrefix (all keys for ""),
// with ID set, sorted by id and then created time. It scans the whole
// table with a filter, so it costs a full table read: it is meant for
// administration, not for the data path.
func (s *Store) List(ctx context.Context, idPrefix string) ([]*envelope.EnvelopeKeyRecord, error) {
	var errs []error
	for _, c := range s.clients {
		recs, err := s.list(ctx, c, idPrefix)
		if err == nil {
			return recs, nil
		}
		errs = append(errs, s.opErr(c, "Scan", idPrefix+"*", err))
		if ctx.Err() != nil {
			break
		}
	}
	return nil, regionErrors(errs)
}

func (s *Store) list(ctx context.Context, c regional, idPrefix string) ([]*envelope.EnvelopeKeyRecord, error) {
	in := &dynamodb.ScanInput{
		TableName:      aws.String(s.table),
		ConsistentRead: aws.Bool(true),
	}
	if idPrefix != "" {
		in.FilterExpression = aws.String("begins_with(#id, :p)")
		in.ExpressionAttributeNames = map[string]string{"#id": attrID}
		in.ExpressionAttributeValues = map[string]types.AttributeValue{":p": &types.AttributeValueMemberS{Value: idPrefix}}
	}
	var recs []*envelope.EnvelopeKeyRecord
	p := dynamodb.NewScanPaginator(c.api, in)
	for p.HasMorePages() {
		page, err := p.NextPage(ctx)
		if err != nil {
			return nil, err
		}
		for _, item := range page.Items {
			id, ok := item[attrID].(*types.AttributeValueMemberS)
			if !ok {
				return nil, fmt.Errorf("%w: no %s string", ErrMalformedItem, attrID)
			}
			rec, err := decodeItem(item)
			if err != nil {
				return nil, fmt.Errorf("item %s: %w", id.Value, err)
			}
			rec.ID = id.Value
			recs = append(recs, rec)
		}
	}
	slices.SortFunc(recs, func(a, b *envelope.EnvelopeKeyRecord) int {
		return cmp.Or(cmp.Compare(a.ID, b.ID), cmp.Compare(a.Created, b.Created))
	})
	return recs, nil
}

// Delete removes every item of id from the preferred region (a global
// table replicates the deletes) and returns how many it removed. When it
// fails part-way, the count says how many were removed before the error.
func (s *Store) Delete(ctx context.Context, id string) (int, error) {
	c := s.clients[0]
	p := dynamodb.NewQueryPaginator(c.api, &dynamodb.QueryInput{
		TableName:                 aws.String(s.table),
		KeyConditionExpression:    aws.String("#id = :id"),
		ExpressionAttributeNames:  map[string]string{"#id": attrID, "#c": attrCreated},
		ExpressionAttributeValues: map[string]types.AttributeValue{":id": &types.AttributeValueMemberS{Value: id}},
		ProjectionExpression:      aws.String("#id, #c"),
		ConsistentRead:            aws.Bool(true),
	})
	var keys []map[string]types.AttributeValue
	for p.HasMorePages() {
		page, err := p.NextPage(ctx)
		if err != nil {
			return 0, s.opErr(c, "Query", id, err)
		}
		keys = append(keys, page.Items...)
	}
	n := 0
	for _, k := range keys {
		if _, err := c.api.DeleteItem(ctx, &dynamodb.DeleteItemInput{TableName: aws.String(s.table), Key: k}); err != nil {
			return n, s.opErr(c, "DeleteItem", id, err)
		}
		n++
	}
	return n, nil
}
