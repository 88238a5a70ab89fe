// Package redact hides the secrets that metastore specifications, DSNs
// and URLs carry (passwords, secret-looking query parameters) in messages
// and logs. It is shared by the command line and the SQL metastore's
// server connector, so that every message redacts the same way.
package redact

import (
	"net/url"
	"regexp"
	"slices"
	"strings"
)

// A metastore specification can carry secrets in three places:
// the password of a URL (postgres://USER:PASS@HOST/DB), the password of a
// go-sql-driver DSN (USER:PASS@tcp(HOST)/DB), and query parameters
// (?password=…&sslpassword=…, or AWS-style ?aws_secret_access_key=…,
// X-Amz-Signature=…). DSN hides all three; Secrets lists the
// values, so that messages from drivers, which may quote a DSN in any form,
// can be scrubbed of them.

// redacted replaces a secret in messages.
const redacted = "xxxxx"

// secretParam reports whether a query parameter's name suggests that its
// value is a secret. A bare "key" does not: messages say "KEY=VALUE".
func secretParam(name string) bool {
	n := strings.ToLower(name)
	switch n {
	case "sig":
		return true
	case "key":
		return false
	}
	for _, s := range []string{"pass", "pwd", "secret", "token", "key", "auth", "credential", "signature", "private"} {
		if strings.Contains(n, s) {
			return true
		}
	}
	return false
}

// DSN returns s, a metastore specification, DSN or URL as given,
// with every password and every secret-looking query parameter value
// replaced by "xxxxx". It works on strings that do not parse too.
func DSN(s string) string {
	if rest, ok := strings.CutPrefix(s, "mysql://"); ok {
		return "mysql://" + redactMySQL(rest)
	}
	if looksLikeMySQL(s) {
		return redactMySQL(s)
	}
	if u, err := url.Parse(s); err == nil && u.Scheme != "" {
		if _, has := u.User.Password(); has {
			u.User = url.UserPassword(u.User.Username(), redacted)
		}
		u.RawQuery = redactQuery(u.RawQuery)
		return u.String()
	}
	return Text(s)
}

// looksLikeMySQL reports whether s is in go-sql-driver's DSN form.
func looksLikeMySQL(s string) bool {
	return strings.Contains(s, "@tcp(") || strings.Contains(s, "@unix(") || strings.Contains(s, "@/")
}

// splitMySQL splits USER[:PASS]@NET(ADDR)/DB?PARAMS as go-sql-driver does:
// the database starts at the last "/", the address at the last "@" before
// it, and the password at the first ":" of what precedes.
func splitMySQL(dsn string) (user, pass, rest string, hasPass bool) {
	slash := strings.LastIndex(dsn, "/")
	if slash < 0 {
		return "", "", dsn, false
	}
	at := strings.LastIndex(dsn[:slash], "@")
	if at < 0 {
		return "", "", dsn, false
	}
	userinfo := dsn[:at]
	user, pass, hasPass = strings.Cut(userinfo, ":")
	return user, pass, dsn[at:], hasPass
}

func redactMySQL(dsn string) string {
	user, _, rest, hasPass := splitMySQL(dsn)
	if hasPass {
		dsn = user + ":" + redacted + rest
	}
	if base, query, ok := strings.Cut(dsn, "?"); ok {
		return base + "?" + redactQuery(query)
	}
	return dsn
}

// redactQuery replaces the values of secret parameters in a raw query,
// leaving the rest byte for byte.
func redactQuery(q string) string {
	if q == "" {
		return q
	}
	parts := strings.Split(q, "&")
	for i, p := range parts {
		k, _, ok := strings.Cut(p, "=")
		name, err := url.QueryUnescape(k)
		if err != nil {
			name = k
		}
		if ok && secretParam(name) {
			parts[i] = k + "=" + redacted
		}
	}
	return strings.Join(parts, "&")
}

var (
	// textUserinfo matches the USER:PASS@ of a URL inside any text.
	textUserinfo = regexp.MustCompile(`(://[^:@/\s]*):[^@\s]*@`)
	// textParam matches NAME=VALUE pairs inside any text (query
	// parameters, key=value DSNs, driver messages).
	textParam = regexp.MustCompile(`([A-Za-z0-9_.-]+)(\s*=\s*)('[^']*'|[^\s&;,'"]+)`)
)

// Text redacts URL passwords and secret NAME=VALUE pairs in text
// that does not parse as a DSN.
func Text(s string) string {
	s = textUserinfo.ReplaceAllString(s, "${1}:"+redacted+"@")
	return textParam.ReplaceAllStringFunc(s, func(m string) string {
		sub := textParam.FindStringSubmatch(m)
		if !secretParam(sub[1]) {
			return m
		}
		return sub[1] + sub[2] + redacted
	})
}

// Secrets returns the secret values held by s (a specification, DSN,
// URL, or a command-line argument such as --metastore=URL): passwords and
// the values of secret-looking parameters, each as written and decoded.
// Values that cannot be secrets (booleans, numbers, shorter than 3 bytes)
// are left out, so that scrubbing them from a message does not garble it.
func Secrets(s string) []string {
	if strings.HasPrefix(s, "-") {
		_, v, ok := strings.Cut(s, "=")
		if !ok {
			return nil
		}
		s = v
	}
	var out []string
	add := func(v string) {
		for _, w := range []string{v, unescape(v)} {
			if w != "" && len(w) >= 3 && !trivial(w) && !slices.Contains(out, w) {
				out = append(out, w)
			}
		}
	}
	body := strings.TrimPrefix(s, "mysql://")
	if body != s || looksLikeMySQL(s) {
		if _, pass, _, ok := splitMySQL(body); ok {
			add(pass)
		}
	} else if u, err := url.Parse(s); err == nil {
		if p, ok := u.User.Password(); ok {
			add(p)
		}
	}
	for _, m := range textUserinfo.FindAllString(s, -1) {
		_, pass, _ := strings.Cut(strings.TrimPrefix(m, "://"), ":")
		add(strings.TrimSuffix(pass, "@"))
	}
	for _, sub := range textParam.FindAllStringSubmatch(s, -1) {
		if secretParam(sub[1]) {
			add(strings.Trim(sub[3], "'"))
		}
	}
	return out
}

func unescape(s string) string {
	if u, err := url.QueryUnescape(s); err == nil {
		return u
	}
	return s
}

// trivial reports whether v is a boolean or a number.
func trivial(v string) bool {
	switch strings.ToLower(v) {
	case "true", "false", "yes", "no", "on", "off":
		return true
	}
	return strings.Trim(v, "0123456789.") == ""
}

// Scrub replaces every secret in secrets (see Secrets) found in msg by
// "xxxxx", then redacts what still looks like a URL password or a secret
// NAME=VALUE pair.
func Scrub(msg string, secrets []string) string {
	// Longest first, so that a secret containing another is hidden whole.
	sorted := slices.Clone(secrets)
	slices.SortFunc(sorted, func(a, b string) int { return len(b) - len(a) })
	for _, s := range sorted {
		msg = strings.ReplaceAll(msg, s, redacted)
	}
	return Text(msg)
}
