#!/usr/bin/env bash
# Real servers for enc-pipe's integration tests, on 127.0.0.1 only.
#
#   bash .ci/services.sh install          install and build what the servers need (idempotent)
#   bash .ci/services.sh start            install if needed, start every server, write the env file
#   bash .ci/services.sh envfile          print the path of the env file (export VAR=value lines)
#   bash .ci/services.sh stop             stop every server this state dir started
#   bash .ci/services.sh stop-one NAME    stop one server (fault tests)
#   bash .ci/services.sh start-one NAME   start one server and wait until it is ready
#   bash .ci/services.sh status           list the servers and whether they run
#
# NAME is one of: pg mysql dynamo kms-a kms-b s3 kafka
#
#   pg      PostgreSQL (Debian)          127.0.0.1:15432   ENCPIPE_TEST_PG_DSN
#   mysql   MariaDB (Debian)             127.0.0.1:13306   ENCPIPE_TEST_MYSQL_DSN
#   dynamo  dynalite (npm)               127.0.0.1:18000   ENCPIPE_TEST_DYNAMODB
#   kms-a   local-kms, us-west-2         127.0.0.1:18080   ENCPIPE_TEST_KMS
#   kms-b   local-kms, us-east-1         127.0.0.1:18081   ENCPIPE_TEST_KMS
#   s3      versitygw (posix backend)    127.0.0.1:17070   ENCPIPE_TEST_S3 (+ credentials)
#   kafka   kfake, 4 partitions          127.0.0.1:19092   ENCPIPE_TEST_KAFKA
#
# Settings (environment):
#   ENCPIPE_CI_STATE      state dir: data, logs, pid files, env file (default /tmp/encpipe-ci)
#   ENCPIPE_CI_TEMPLATES  where freshly initialised PostgreSQL and MariaDB data dirs are
#                         kept and copied from, which is faster than initdb and
#                         mariadb-install-db for every new state dir (default
#                         /tmp/encpipe-ci-templates)
#   ENCPIPE_CI_<NAME>_PORT  port of one server (PG, MYSQL, DYNAMO, KMS_A, KMS_B, S3, KAFKA);
#                         with a separate state dir, tests start private instances this way
#                         so that stopping them cannot disturb other tests.
#
# Servers keep their data in the state dir (dynalite and local-kms on disk too), so a
# stop-one/start-one pair keeps tables and KMS keys. pid files are
# $STATE/NAME.pid; logs are $STATE/NAME.log (PostgreSQL: $STATE/pg/server.log,
# MariaDB: $STATE/my/error.log). See shared docs test-servers.md for the reasons
# behind each flag. Must run as root (PostgreSQL and MariaDB run as their own users).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
BIN="$ROOT/.ci/bin"
STATE="${ENCPIPE_CI_STATE:-/tmp/encpipe-ci}"
TEMPLATES="${ENCPIPE_CI_TEMPLATES:-/tmp/encpipe-ci-templates}"
HOST=127.0.0.1

PG_PORT="${ENCPIPE_CI_PG_PORT:-15432}"
MYSQL_PORT="${ENCPIPE_CI_MYSQL_PORT:-13306}"
DYNAMO_PORT="${ENCPIPE_CI_DYNAMO_PORT:-18000}"
KMS_A_PORT="${ENCPIPE_CI_KMS_A_PORT:-18080}"
KMS_B_PORT="${ENCPIPE_CI_KMS_B_PORT:-18081}"
S3_PORT="${ENCPIPE_CI_S3_PORT:-17070}"
KAFKA_PORT="${ENCPIPE_CI_KAFKA_PORT:-19092}"
KMS_A_REGION=us-west-2
KMS_B_REGION=us-east-1

DB_USER=encpipe
DB_PASS=encpipe
DB_NAME=encpipe
S3_ACCESS=encpipe
S3_SECRET=encpipe-secret

VERSITYGW_VERSION=v1.8.0
ALL="pg mysql dynamo kms-a kms-b s3 kafka"

log() { echo "services: $*" >&2; }
die() { log "$*"; exit 1; }

pg_bindir() {
	local d
	for d in /usr/lib/postgresql/*/bin; do
		[ -x "$d/initdb" ] && { echo "$d"; return 0; }
	done
	return 1
}

# ---------------------------------------------------------------- install

apt_missing() {
	local missing=()
	pg_bindir >/dev/null || missing+=(postgresql)
	command -v mariadbd >/dev/null || [ -x /usr/sbin/mariadbd ] || missing+=(mariadb-server)
	# Every MariaDB command this script runs, not one of them: a partly
	# removed install can leave mariadb but not mariadb-admin behind.
	local c
	for c in mariadb mariadb-admin; do
		command -v "$c" >/dev/null || { missing+=(mariadb-client); break; }
	done
	command -v mariadb-install-db >/dev/null || missing+=(mariadb-server)
	command -v gdb >/dev/null || missing+=(gdb)
	command -v hyperfine >/dev/null || missing+=(hyperfine)
	command -v node >/dev/null || missing+=(nodejs)
	command -v npm >/dev/null || missing+=(npm)
	command -v curl >/dev/null || missing+=(curl)
	echo "${missing[@]}"
}

install_apt() {
	local missing
	missing="$(apt_missing)"
	[ -z "$missing" ] && return 0
	log "apt-get install $missing"
	export DEBIAN_FRONTEND=noninteractive
	# A fresh machine has no package lists; stale lists can name files that
	# are gone, so an install that fails is retried once after an update.
	if ! ls /var/lib/apt/lists/*_Packages* >/dev/null 2>&1; then
		apt-get update -q
	fi
	# shellcheck disable=SC2086
	if ! apt-get install -y -q --no-install-recommends $missing; then
		apt-get update -q
		# shellcheck disable=SC2086
		apt-get install -y -q --no-install-recommends $missing
	fi
	missing="$(apt_missing)"
	[ -z "$missing" ] || die "still missing after apt-get install: $missing"
}

install_dynalite() {
	local dir="$ROOT/tools/dynalite"
	if [ -f "$dir/node_modules/dynalite/cli.js" ] && [ "$dir/node_modules/.package-lock.json" -nt "$dir/package-lock.json" ]; then
		return 0
	fi
	log "npm ci (dynalite)"
	(cd "$dir" && npm ci --no-audit --no-fund --loglevel=error)
}

install_testservers() {
	local src="$ROOT/tools/testservers"
	if [ -x "$BIN/kfake" ] && [ -x "$BIN/kms" ] &&
		[ -z "$(find "$src" -newer "$BIN/kms" -type f 2>/dev/null | head -1)" ] &&
		[ -z "$(find "$src" -newer "$BIN/kfake" -type f 2>/dev/null | head -1)" ]; then
		return 0
	fi
	log "go build kfake kms (tools/testservers)"
	mkdir -p "$BIN"
	(cd "$src" && go build -trimpath -o "$BIN/" ./cmd/kfake ./cmd/kms)
	touch "$BIN/kfake" "$BIN/kms"
}

install_versitygw() {
	local stamp="$BIN/versitygw.version"
	if [ -x "$BIN/versitygw" ] && [ "$(cat "$stamp" 2>/dev/null)" = "$VERSITYGW_VERSION" ]; then
		return 0
	fi
	log "go install versitygw@$VERSITYGW_VERSION"
	mkdir -p "$BIN"
	(cd "$ROOT/tools/testservers" && GOBIN="$BIN" go install -trimpath "github.com/versity/versitygw/cmd/versitygw@$VERSITYGW_VERSION")
	echo "$VERSITYGW_VERSION" >"$stamp"
}

cmd_install() {
	command -v go >/dev/null || export PATH="/usr/local/go/bin:$PATH"
	install_apt
	install_dynalite
	install_testservers
	install_versitygw
}

# ---------------------------------------------------------------- helpers

# A process that has exited but not been reaped yet (pid 1 here reaps
# orphans slowly) is a zombie: it counts as stopped.
running() { # PID
	local st
	[ -n "$1" ] && kill -0 "$1" 2>/dev/null || return 1
	st="$(awk '{print $3}' "/proc/$1/stat" 2>/dev/null)" || return 1
	[ -n "$st" ] && [ "$st" != Z ] && [ "$st" != X ]
}

# pid_alive NAME -> 0 when NAME's pid file names a live process that is
# that server of this state dir (after a reboot the pid may belong to
# something else).
pid_alive() {
	local f="$STATE/$1.pid" pid cmd marker
	[ -f "$f" ] || return 1
	pid="$(head -1 "$f" 2>/dev/null)"
	running "$pid" || return 1
	cmd="$(tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null)" || return 1
	case "$1" in
	kafka) marker="kfake -ports $KAFKA_PORT " ;;
	*) marker="$STATE/" ;;
	esac
	[[ "$cmd" == *"$marker"* ]]
}

port_of() {
	case "$1" in
	pg) echo "$PG_PORT" ;;
	mysql) echo "$MYSQL_PORT" ;;
	dynamo) echo "$DYNAMO_PORT" ;;
	kms-a) echo "$KMS_A_PORT" ;;
	kms-b) echo "$KMS_B_PORT" ;;
	s3) echo "$S3_PORT" ;;
	kafka) echo "$KAFKA_PORT" ;;
	*) die "unknown service $1 (want one of: $ALL)" ;;
	esac
}

tcp_open() { (exec 3<>"/dev/tcp/$HOST/$1") 2>/dev/null; }

wait_ready() { # NAME
	local name="$1" port i
	port="$(port_of "$name")"
	for i in $(seq 1 300); do
		if ! pid_alive "$name"; then
			log "$name exited while starting"
			return 1
		fi
		case "$name" in
		pg) "$(pg_bindir)/pg_isready" -q -h "$HOST" -p "$port" && return 0 ;;
		mysql) mariadb-admin --no-defaults --socket="$STATE/my/mysqld.sock" -uroot ping >/dev/null 2>&1 && return 0 ;;
		dynamo) curl -fs -o /dev/null "http://$HOST:$port/" && return 0 ;;
		*) tcp_open "$port" && return 0 ;;
		esac
		sleep 0.1
	done
	log "$name not ready on port $port after 30 s"
	return 1
}

# Background servers get their own session and no inherited descriptors, so a
# caller that reads this script's output (a Go test) is not kept waiting.
spawn() { # NAME CMD...
	local name="$1"
	shift
	setsid "$@" </dev/null >>"$STATE/$name.log" 2>&1 &
	echo $! >"$STATE/$name.pid"
}

# ---------------------------------------------------------------- start

# from_template KIND DEST INITFN: copy the pristine data dir of KIND to DEST,
# creating it first with INITFN (under a lock, so that concurrent starts
# share one).
from_template() {
	local kind="$1" dest="$2" init="$3" tpl
	tpl="$TEMPLATES/$kind-$(template_version "$kind")"
	mkdir -p "$TEMPLATES"
	chmod 755 "$TEMPLATES"
	(
		flock 9
		if [ ! -f "$tpl/.complete" ]; then
			rm -rf "$tpl"
			"$init" "$tpl" || exit 1
			touch "$tpl/.complete"
		fi
	) 9>"$TEMPLATES/$kind.lock" || return 1
	cp -a "$tpl" "$dest"
	rm -f "$dest/.complete"
}

template_version() {
	case "$1" in
	pg) basename "$(dirname "$(pg_bindir)")" ;;
	my) mariadbd --version 2>/dev/null | awk '{print $3}' ;;
	esac
}

init_pg_template() {
	local bindir
	bindir="$(pg_bindir)"
	install -d -o postgres -g postgres -m 700 "$1"
	runuser -u postgres -- "$bindir/initdb" -D "$1" -U postgres --auth-local=trust \
		--auth-host=scram-sha-256 -E UTF8 --locale=C.UTF-8 -N >"$STATE/pg-initdb.log" 2>&1 ||
		{ cat "$STATE/pg-initdb.log" >&2; return 1; }
}

init_my_template() {
	install -d -o mysql -g mysql -m 750 "$1"
	mariadb-install-db --no-defaults --user=mysql --datadir="$1" \
		--auth-root-authentication-method=socket --skip-test-db >"$STATE/my-install.log" 2>&1 ||
		{ cat "$STATE/my-install.log" >&2; return 1; }
}

start_pg() {
	local bindir data="$STATE/pg"
	bindir="$(pg_bindir)" || die "PostgreSQL is not installed (run: bash .ci/services.sh install)"
	if [ ! -f "$data/PG_VERSION" ]; then
		rm -rf "$data"
		from_template pg "$data" init_pg_template
	fi
	rm -f "$data/postmaster.pid" # stale: pg_alive said no server runs on it
	runuser -u postgres -- "$bindir/pg_ctl" -D "$data" -l "$data/server.log" -w -t 60 \
		-o "-c listen_addresses=$HOST -p $PG_PORT -k $data -c fsync=off -c synchronous_commit=off -c full_page_writes=off -c max_connections=200" \
		start </dev/null >"$STATE/pg.log" 2>&1 || { cat "$STATE/pg.log" >&2; return 1; }
	head -1 "$data/postmaster.pid" >"$STATE/pg.pid"
	wait_ready pg
	local psql=("$bindir/psql" -X -q -h "$data" -p "$PG_PORT" -U postgres -v ON_ERROR_STOP=1 -d postgres)
	if [ "$(runuser -u postgres -- "${psql[@]}" -tAc "SELECT 1 FROM pg_roles WHERE rolname='$DB_USER'")" != 1 ]; then
		runuser -u postgres -- "${psql[@]}" -c "CREATE ROLE $DB_USER LOGIN CREATEDB PASSWORD '$DB_PASS'"
	fi
	if [ "$(runuser -u postgres -- "${psql[@]}" -tAc "SELECT 1 FROM pg_database WHERE datname='$DB_NAME'")" != 1 ]; then
		runuser -u postgres -- "${psql[@]}" -c "CREATE DATABASE $DB_NAME OWNER $DB_USER"
	fi
}

start_mysql() {
	local data="$STATE/my"
	command -v mariadbd >/dev/null || [ -x /usr/sbin/mariadbd ] || die "MariaDB is not installed (run: bash .ci/services.sh install)"
	if [ ! -d "$data/mysql" ]; then
		rm -rf "$data"
		from_template my "$data" init_my_template
	fi
	rm -f "$data/mysqld.pid" "$data/mysqld.sock" "$data/mysqld.sock.lock"
	spawn mysql "$(command -v mariadbd || echo /usr/sbin/mariadbd)" --no-defaults --user=mysql --datadir="$data" \
		--bind-address=$HOST --port="$MYSQL_PORT" --socket="$data/mysqld.sock" \
		--pid-file="$data/mysqld.pid" --log-error="$data/error.log" --skip-name-resolve \
		--innodb-flush-log-at-trx-commit=0 --max-connections=300
	wait_ready mysql
	mariadb --no-defaults --socket="$data/mysqld.sock" -uroot -e "
		CREATE DATABASE IF NOT EXISTS $DB_NAME;
		CREATE USER IF NOT EXISTS '$DB_USER'@'$HOST' IDENTIFIED BY '$DB_PASS';
		GRANT ALL ON *.* TO '$DB_USER'@'$HOST';
		FLUSH PRIVILEGES;"
}

start_dynamo() {
	local cli="$ROOT/tools/dynalite/node_modules/dynalite/cli.js"
	[ -f "$cli" ] || die "dynalite is not installed (run: bash .ci/services.sh install)"
	mkdir -p "$STATE/dynamo"
	spawn dynamo node "$cli" --host "$HOST" --port "$DYNAMO_PORT" --path "$STATE/dynamo" \
		--createTableMs 0 --deleteTableMs 0 --updateTableMs 0
	wait_ready dynamo
}

start_kms() { # NAME PORT REGION
	[ -x "$BIN/kms" ] || die "kms wrapper is not built (run: bash .ci/services.sh install)"
	mkdir -p "$STATE/$1"
	spawn "$1" "$BIN/kms" -addr "$HOST:$2" -region "$3" -data "$STATE/$1"
	wait_ready "$1"
}

start_s3() {
	[ -x "$BIN/versitygw" ] || die "versitygw is not installed (run: bash .ci/services.sh install)"
	mkdir -p "$STATE/s3"
	spawn s3 "$BIN/versitygw" --port "$HOST:$S3_PORT" --access "$S3_ACCESS" --secret "$S3_SECRET" --quiet \
		posix "$STATE/s3"
	wait_ready s3
}

start_kafka() {
	[ -x "$BIN/kfake" ] || die "kfake wrapper is not built (run: bash .ci/services.sh install)"
	spawn kafka "$BIN/kfake" -ports "$KAFKA_PORT" -partitions 4
	wait_ready kafka
}

start_one() {
	local name="$1"
	port_of "$name" >/dev/null
	if pid_alive "$name"; then
		wait_ready "$name"
		return 0
	fi
	mkdir -p "$STATE"
	chmod 755 "$STATE"
	case "$name" in
	pg) start_pg ;;
	mysql) start_mysql ;;
	dynamo) start_dynamo ;;
	kms-a) start_kms kms-a "$KMS_A_PORT" "$KMS_A_REGION" ;;
	kms-b) start_kms kms-b "$KMS_B_PORT" "$KMS_B_REGION" ;;
	s3) start_s3 ;;
	kafka) start_kafka ;;
	esac
}

# ---------------------------------------------------------------- stop

stop_one() {
	local name="$1" pid i
	port_of "$name" >/dev/null
	if ! pid_alive "$name"; then
		rm -f "$STATE/$name.pid"
		return 0
	fi
	pid="$(head -1 "$STATE/$name.pid")"
	case "$name" in
	pg) runuser -u postgres -- "$(pg_bindir)/pg_ctl" -D "$STATE/pg" -m fast -w -t 60 stop >/dev/null ||
		kill "$pid" 2>/dev/null || true ;;
	*) kill "$pid" 2>/dev/null || true ;;
	esac
	for i in $(seq 1 300); do
		running "$pid" || break
		sleep 0.05
	done
	if running "$pid"; then
		log "$name (pid $pid) did not stop after 30 s; killing it"
		kill -9 "$pid" 2>/dev/null || true
	fi
	rm -f "$STATE/$name.pid"
}

# ---------------------------------------------------------------- env file

write_env() {
	local f="$STATE/env.sh"
	cat >"$f.tmp" <<EOF
# Written by .ci/services.sh start: the servers of $STATE.
export ENCPIPE_TEST_STATE='$STATE'
export ENCPIPE_TEST_PG_DSN='postgres://$DB_USER:$DB_PASS@$HOST:$PG_PORT/$DB_NAME?sslmode=disable'
export ENCPIPE_TEST_MYSQL_DSN='$DB_USER:$DB_PASS@tcp($HOST:$MYSQL_PORT)/$DB_NAME?parseTime=true'
export ENCPIPE_TEST_DYNAMODB='http://$HOST:$DYNAMO_PORT'
export ENCPIPE_TEST_KMS='$KMS_A_REGION=http://$HOST:$KMS_A_PORT,$KMS_B_REGION=http://$HOST:$KMS_B_PORT'
export ENCPIPE_TEST_S3='http://$HOST:$S3_PORT'
export ENCPIPE_TEST_S3_ACCESS_KEY='$S3_ACCESS'
export ENCPIPE_TEST_S3_SECRET_KEY='$S3_SECRET'
export ENCPIPE_TEST_KAFKA='$HOST:$KAFKA_PORT'
# The AWS SDK's default chain must find these and never look further (no
# instance metadata lookups from a test).
export AWS_ACCESS_KEY_ID='$S3_ACCESS'
export AWS_SECRET_ACCESS_KEY='$S3_SECRET'
export AWS_REGION='$KMS_A_REGION'
export AWS_EC2_METADATA_DISABLED=true
EOF
	mv "$f.tmp" "$f"
}

show_logs() {
	local f
	for f in "$STATE"/*.log "$STATE/pg/server.log" "$STATE/my/error.log"; do
		[ -f "$f" ] || continue
		echo "----- tail $f" >&2
		tail -n 25 "$f" >&2
	done
}

cmd_start() {
	cmd_install
	mkdir -p "$STATE"
	chmod 755 "$STATE"
	local name failed=""
	# Each start runs in its own bash so that set -e applies inside it.
	for name in $ALL; do
		"$BASH" "${BASH_SOURCE[0]}" _start-one "$name" || failed="$failed $name"
	done
	if [ -n "$failed" ]; then
		log "failed to start:$failed"
		show_logs
		exit 1
	fi
	write_env
	log "all servers ready ($STATE); env file: $STATE/env.sh"
}

cmd_stop() {
	local name
	for name in $ALL; do
		stop_one "$name" || log "failed to stop $name"
	done
}

cmd_status() {
	local name
	for name in $ALL; do
		if pid_alive "$name"; then
			echo "$name running pid $(head -1 "$STATE/$name.pid") port $(port_of "$name")"
		else
			echo "$name stopped"
		fi
	done
}

case "${1:-}" in
install) cmd_install ;;
start) cmd_start ;;
stop) cmd_stop ;;
envfile) echo "$STATE/env.sh" ;;
start-one)
	[ $# -eq 2 ] || die "usage: $0 start-one NAME"
	if ! "$BASH" "${BASH_SOURCE[0]}" _start-one "$2"; then
		show_logs
		exit 1
	fi
	;;
_start-one) start_one "$2" ;;
stop-one)
	[ $# -eq 2 ] || die "usage: $0 stop-one NAME"
	stop_one "$2"
	;;
status) cmd_status ;;
*)
	echo "usage: $0 install|start|stop|envfile|status|start-one NAME|stop-one NAME (NAME: $ALL)" >&2
	exit 2
	;;
esac
