package dynamostore_test

import (
	"bytes"
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/enc-pipe/enc-pipe/envelope"
	"github.com/enc-pipe/enc-pipe/envelope/metastore/dynamostore"
)

func sk(created int64, key string) *envelope.EnvelopeKeyRecord {
	return &envelope.EnvelopeKeyRecord{Created: created, EncryptedKey: []byte(key)}
}

func ik(created int64, key string, parent int64) *envelope.EnvelopeKeyRecord {
	return &envelope.EnvelopeKeyRecord{Created: created, EncryptedKey: []byte(key), ParentKeyMeta: &envelope.KeyMeta{ID: "_SK_svc_prod", Created: parent}}
}

func sameRecord(a, b *envelope.EnvelopeKeyRecord) bool {
	if a.Revoked != b.Revoked || a.Created != b.Created || !bytes.Equal(a.EncryptedKey, b.EncryptedKey) {
		return false
	}
	if (a.ParentKeyMeta == nil) != (b.ParentKeyMeta == nil) {
		return false
	}
	return a.ParentKeyMeta == nil || *a.ParentKeyMeta == *b.ParentKeyMeta
}

func TestServerStoreLoad(t *testing.T) {
	c := client("us-west-2", dynamoEndpoint(t))
	table := newTable(t, c)
	s, err := dynamostore.New(c, dynamostore.WithTableName(table))
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if s.Region() != "us-west-2" || s.GetRegionSuffix() != "" || s.TableName() != table {
		t.Fatalf("Region %q, suffix %q, table %q", s.Region(), s.GetRegionSuffix(), s.TableName())
	}

	if _, err := s.Load(ctx, "_SK_svc_prod", 60); !errors.Is(err, envelope.ErrNotFound) {
		t.Fatalf("Load of a missing key = %v, want ErrNotFound", err)
	}
	if _, err := s.LoadLatest(ctx, "_SK_svc_prod"); !errors.Is(err, envelope.ErrNotFound) {
		t.Fatalf("LoadLatest of a missing key = %v, want ErrNotFound", err)
	}
	// Out of order, so that LoadLatest must sort rather than take the last.
	for _, created := range []int64{120, 180, 60} {
		if err := s.Store(ctx, "_SK_svc_prod", created, sk(created, "sk-"+string(rune('0'+created/60)))); err != nil {
			t.Fatal(err)
		}
	}
	want := ik(120, "ik", 180)
	if err := s.Store(ctx, "_IK_p_svc_prod", 120, want); err != nil {
		t.Fatal(err)
	}

	// Duplicates are ErrKeyExists and leave the first record in place.
	err = s.Store(ctx, "_SK_svc_prod", 120, sk(120, "other"))
	if !errors.Is(err, envelope.ErrKeyExists) {
		t.Fatalf("duplicate Store = %v, want ErrKeyExists", err)
	}
	got, err := s.Load(ctx, "_SK_svc_prod", 120)
	if err != nil || string(got.EncryptedKey) != "sk-2" || got.ID != "_SK_svc_prod" {
		t.Fatalf("Load after a duplicate = %+v, %v", got, err)
	}

	latest, err := s.LoadLatest(ctx, "_SK_svc_prod")
	if err != nil || latest.Created != 180 || string(latest.EncryptedKey) != "sk-3" || latest.ParentKeyMeta != nil {
		t.Fatalf("LoadLatest = %+v, %v; want created 180", latest, err)
	}
	got, err = s.Load(ctx, "_IK_p_svc_prod", 120)
	if err != nil || !sameRecord(got, want) || got.ID != "_IK_p_svc_prod" {
		t.Fatalf("Load IK = %+v, %v", got, err)
	}
	if _, err := s.Load(ctx, "_IK_p_svc_prod", 121); !errors.Is(err, envelope.ErrNotFound) {
		t.Fatalf("Load with another created = %v, want ErrNotFound", err)
	}

	// A canceled context fails the call.
	cctx, cancel := context.WithCancel(ctx)
	cancel()
	if _, err := s.Load(cctx, "_IK_p_svc_prod", 120); !errors.Is(err, context.Canceled) {
		t.Fatalf("Load with a canceled context = %v", err)
	}
	if err := s.Store(cctx, "_IK_p_svc_prod", 999, want); !errors.Is(err, context.Canceled) {
		t.Fatalf("Store with a canceled context = %v", err)
	}
}

// TestServerItemLayout reads back with raw GetItem what Store wrote and
// checks it attribute by attribute against Asherah's layout.
func TestServerItemLayout(t *testing.T) {
	c := client("us-west-2", dynamoEndpoint(t))
	table := newTable(t, c)
	s, err := dynamostore.New(c, dynamostore.WithTableName(table))
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	key := []byte{0xfb, 0xff, 0x00, 0x01, 0x3e, 0x3f} // base64 "+/8AAT4/" uses + and /
	if err := s.Store(ctx, "_SK_svc_prod", 1795749120, &envelope.EnvelopeKeyRecord{Created: 1795749120, EncryptedKey: key}); err != nil {
		t.Fatal(err)
	}
	revokedIK := &envelope.EnvelopeKeyRecord{Revoked: true, Created: 1795749180, EncryptedKey: key, ParentKeyMeta: &envelope.KeyMeta{ID: "_SK_svc_prod", Created: 1795749120}}
	if err := s.Store(ctx, "_IK_p_svc_prod", 1795749180, revokedIK); err != nil {
		t.Fatal(err)
	}

	get := func(id, created string) map[string]types.AttributeValue {
		out, err := c.GetItem(ctx, &dynamodb.GetItemInput{TableName: aws.String(table), ConsistentRead: aws.Bool(true),
			Key: map[string]types.AttributeValue{"Id": &types.AttributeValueMemberS{Value: id}, "Created": &types.AttributeValueMemberN{Value: created}}})
		if err != nil || out.Item == nil {
			t.Fatalf("GetItem %s: %v", id, err)
		}
		return out.Item
	}
	skItem := get("_SK_svc_prod", "1795749120")
	if len(skItem) != 3 {
		t.Errorf("SK item has attributes %v, want Id, Created, KeyRecord", keys(skItem))
	}
	kr := skItem["KeyRecord"].(*types.AttributeValueMemberM).Value
	if len(kr) != 2 {
		t.Errorf("SK KeyRecord has %v, want only Created and Key (no Revoked, no ParentKeyMeta)", keys(kr))
	}
	if v := kr["Created"].(*types.AttributeValueMemberN).Value; v != "1795749120" {
		t.Errorf("KeyRecord.Created = %s", v)
	}
	if v := kr["Key"].(*types.AttributeValueMemberS).Value; v != "+/8AAT4/" {
		t.Errorf("KeyRecord.Key = %q, want standard padded base64 %q", v, "+/8AAT4/")
	}
	if v := skItem["Id"].(*types.AttributeValueMemberS).Value; v != "_SK_svc_prod" {
		t.Errorf("Id = %q", v)
	}

	ikItem := get("_IK_p_svc_prod", "1795749180")
	kr = ikItem["KeyRecord"].(*types.AttributeValueMemberM).Value
	if len(kr) != 4 || !kr["Revoked"].(*types.AttributeValueMemberBOOL).Value {
		t.Errorf("IK KeyRecord has %v, want Revoked true, Created, Key, ParentKeyMeta", keys(kr))
	}
	pkm := kr["ParentKeyMeta"].(*types.AttributeValueMemberM).Value
	if pkm["KeyId"].(*types.AttributeValueMemberS).Value != "_SK_svc_prod" || pkm["Created"].(*types.AttributeValueMemberN).Value != "1795749120" || len(pkm) != 2 {
		t.Errorf("ParentKeyMeta = %v", pkm)
	}
}

func keys(m map[string]types.AttributeValue) []string {
	var ks []string
	for k := range m {
		ks = append(ks, k)
	}
	return ks
}

func TestServerMalformedItems(t *testing.T) {
	c := client("us-west-2", dynamoEndpoint(t))
	table := newTable(t, c)
	s, err := dynamostore.New(c, dynamostore.WithTableName(table))
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	n := func(v string) types.AttributeValue { return &types.AttributeValueMemberN{Value: v} }
	str := func(v string) types.AttributeValue { return &types.AttributeValueMemberS{Value: v} }
	m := func(v map[string]types.AttributeValue) types.AttributeValue {
		return &types.AttributeValueMemberM{Value: v}
	}
	for i, kr := range []types.AttributeValue{
		nil, // no KeyRecord at all
		str("not a map"),
		m(map[string]types.AttributeValue{"Key": str("AAAA")}),                                                     // no Created
		m(map[string]types.AttributeValue{"Created": n("1"), "Key": str("not base64!")}),                           // bad base64
		m(map[string]types.AttributeValue{"Created": n("1"), "Key": str("")}),                                      // empty key
		m(map[string]types.AttributeValue{"Created": n("1"), "Key": str("AAAA"), "Revoked": str("yes")}),           // Revoked not BOOL
		m(map[string]types.AttributeValue{"Created": n("1"), "Key": str("AAAA"), "ParentKeyMeta": m(nil)}),         // parent without KeyId
		m(map[string]types.AttributeValue{"Created": n("1.5"), "Key": str("AAAA")}),                                // created not integer
		m(map[string]types.AttributeValue{"Created": n("1"), "Key": str("AAAA"), "ParentKeyMeta": str("_SK_x_y")}), // parent not a map
	} {
		item := map[string]types.AttributeValue{"Id": str("_IK_bad"), "Created": n(string(rune('0' + i)))}
		if kr != nil {
			item["KeyRecord"] = kr
		}
		if _, err := c.PutItem(ctx, &dynamodb.PutItemInput{TableName: aws.String(table), Item: item}); err != nil {
			t.Fatal(err)
		}
		_, err := s.Load(ctx, "_IK_bad", int64(i))
		if !errors.Is(err, dynamostore.ErrMalformedItem) {
			t.Errorf("item %d: Load = %v, want ErrMalformedItem", i, err)
		} else if strings.Contains(err.Error(), "\n") {
			t.Errorf("item %d: multi-line error %q", i, err)
		}
	}
}

func TestServerAdmin(t *testing.T) {
	c := client("us-west-2", dynamoEndpoint(t))
	table := newTable(t, c)
	s, err := dynamostore.New(c, dynamostore.WithTableName(table))
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	rows := []struct {
		id      string
		created int64
	}{{"_IK_a_svc_prod", 60}, {"_IK_a_svc_prod", 120}, {"_IK_ab_svc_prod", 60}, {"_SK_svc_prod", 60}, {"_IK_a%_svc_prod", 60}}
	for _, r := range rows {
		if err := s.Store(ctx, r.id, r.created, ik(r.created, r.id, 60)); err != nil {
			t.Fatal(err)
		}
	}

	if err := s.Revoke(ctx, "_IK_a_svc_prod", 60); err != nil {
		t.Fatal(err)
	}
	if err := s.Revoke(ctx, "_IK_a_svc_prod", 60); err != nil {
		t.Fatalf("second Revoke: %v", err)
	}
	got, err := s.Load(ctx, "_IK_a_svc_prod", 60)
	if err != nil || !got.Revoked || !sameRecord(got, &envelope.EnvelopeKeyRecord{Revoked: true, Created: 60, EncryptedKey: []byte("_IK_a_svc_prod"), ParentKeyMeta: &envelope.KeyMeta{ID: "_SK_svc_prod", Created: 60}}) {
		t.Fatalf("after Revoke: %+v %v", got, err)
	}
	if got, _ := s.Load(ctx, "_IK_a_svc_prod", 120); got.Revoked {
		t.Fatal("Revoke changed another row")
	}
	if err := s.Revoke(ctx, "_IK_a_svc_prod", 999); !errors.Is(err, envelope.ErrNotFound) {
		t.Fatalf("Revoke of a missing key = %v, want ErrNotFound", err)
	}
	if _, err := s.Load(ctx, "_IK_a_svc_prod", 999); !errors.Is(err, envelope.ErrNotFound) {
		t.Fatalf("Revoke of a missing key created an item: %v", err)
	}

	list := func(prefix string) string {
		t.Helper()
		recs, err := s.List(ctx, prefix)
		if err != nil {
			t.Fatal(err)
		}
		var out []string
		for _, r := range recs {
			out = append(out, r.ID+"@"+string(rune('0'+r.Created/60)))
		}
		return strings.Join(out, " ")
	}
	if got, want := list(""), "_IK_a%_svc_prod@1 _IK_a_svc_prod@1 _IK_a_svc_prod@2 _IK_ab_svc_prod@1 _SK_svc_prod@1"; got != want {
		t.Errorf("List(\"\") = %s, want %s", got, want)
	}
	// "_" and "%" are not wildcards.
	if got, want := list("_IK_a_"), "_IK_a_svc_prod@1 _IK_a_svc_prod@2"; got != want {
		t.Errorf("List(_IK_a_) = %s, want %s", got, want)
	}
	if got := list("_IK_z"); got != "" {
		t.Errorf("List(_IK_z) = %s, want nothing", got)
	}

	n, err := s.Delete(ctx, "_IK_a_svc_prod")
	if err != nil || n != 2 {
		t.Fatalf("Delete = %d, %v; want 2", n, err)
	}
	if _, err := s.LoadLatest(ctx, "_IK_a_svc_prod"); !errors.Is(err, envelope.ErrNotFound) {
		t.Fatalf("after Delete: LoadLatest = %v", err)
	}
	if n, err := s.Delete(ctx, "_IK_a_svc_prod"); err != nil || n != 0 {
		t.Fatalf("second Delete = %d, %v", n, err)
	}
	if got, want := list(""), "_IK_a%_svc_prod@1 _IK_ab_svc_prod@1 _SK_svc_prod@1"; got != want {
		t.Errorf("after Delete: List = %s, want %s", got, want)
	}
}

// TestServerOpenDefaultChain opens the store the way the CLI does, with
// the default AWS configuration (credentials from the environment) and
// only the endpoint overridden, and uses it with the region suffix.
func TestServerOpenDefaultChain(t *testing.T) {
	endpoint := dynamoEndpoint(t)
	table := newTable(t, client("us-west-2", endpoint))
	t.Setenv("AWS_ACCESS_KEY_ID", "encpipe")
	t.Setenv("AWS_SECRET_ACCESS_KEY", "encpipe-secret")
	t.Setenv("AWS_SESSION_TOKEN", "")
	t.Setenv("AWS_PROFILE", "")
	t.Setenv("AWS_CONFIG_FILE", t.TempDir()+"/none")
	t.Setenv("AWS_SHARED_CREDENTIALS_FILE", t.TempDir()+"/none")
	t.Setenv("AWS_EC2_METADATA_DISABLED", "true")
	s, err := dynamostore.Open(context.Background(), dynamostore.Config{Table: table, Region: "eu-west-1", Endpoint: endpoint, RegionSuffix: true})
	if err != nil {
		t.Fatal(err)
	}
	// The table exists already (newTable): CreateTable leaves it alone.
	if err := s.CreateTable(context.Background()); err != nil {
		t.Fatalf("CreateTable of an existing table: %v", err)
	}
	if s.GetRegionSuffix() != "eu-west-1" || s.TableName() != table {
		t.Fatalf("suffix %q, table %q", s.GetRegionSuffix(), s.TableName())
	}
	ctx := context.Background()
	if err := s.Store(ctx, "_SK_svc_prod_eu-west-1", 60, sk(60, "k")); err != nil {
		t.Fatal(err)
	}
	if got, err := s.LoadLatest(ctx, "_SK_svc_prod_eu-west-1"); err != nil || string(got.EncryptedKey) != "k" {
		t.Fatalf("LoadLatest = %+v, %v", got, err)
	}
}
