#!/usr/bin/env bash
# The VPC Lattice launch post's walkthrough, end to end, against a running Trellis, with the AWS CLI:
#
#   1. starts the post's Flask app (app.py, "Hello from the instance") on 127.0.0.1:APP_PORT;
#   2. deploys the post's Node.js function (function/index.js, "Hello from the function") with
#      `aws lambda create-function`;
#   3. creates two target groups: the app as an IP target (INSTANCE targets come with client
#      networks) and the function in a LAMBDA group;
#   4. creates the service with an HTTPS listener on LISTENER_PORT whose default action sends
#      weight 20 to the app and 10 to the function, rule priority 10 `/to-instance` (the app) and
#      rule priority 20 `/to-function` (the function);
#   5. creates a service network and associates the service with it, and a client VPC (a
#      loopback /24 of the run's own, CLIENT_NET) the calls come from;
#   6. waits until Trellis's data plane has applied all of it, resolves the service's generated
#      DNS name through Trellis's DNS and calls it with curl (trusting the Trellis CA): REQUESTS
#      times on `/`, printing the split, then `/to-instance` and `/to-function`;
#   7. deletes everything it created (unless --keep) and stops the app.
#
# Usage: run.sh [--check] [--keep] | run.sh --cleanup
#   --check    also fail unless the instance's share of `/` is within 5 standard deviations of
#              2/3 (binomial, p = 20/30)
#   --keep     leave the resources and the Flask app running to explore them; run.sh --cleanup
#              deletes them later
#   --cleanup  delete the leftovers of earlier --keep runs (everything named `walkthrough-…`), then exit
#
# Exits non-zero if any call fails, if any answer comes from neither side (an error), if
# `/to-instance` or `/to-function` ever answers from the wrong side, or (--check) if the split is out
# of bounds. Every run uses fresh names, so runs never collide with each other.
#
# Settings (environment; the defaults match `cargo run --release -- serve` in the repository root):
#   TRELLIS_ENDPOINT             http://127.0.0.1:9460   the API address
#   TRELLIS_DATA_DIR             ./trellis-data          the server's --data-dir (credentials, CA)
#   AWS_SHARED_CREDENTIALS_FILE  $TRELLIS_DATA_DIR/credentials (AWS_ACCESS_KEY_ID etc. win if set)
#   TRELLIS_CA                   $TRELLIS_DATA_DIR/ca.pem
#   TRELLIS_DNS                  127.0.0.1:9453          the server's --dns-listen
#   AWS_DEFAULT_REGION           us-west-2               the server's --region
#   LISTENER_PORT                8443                    the HTTPS listener's port (443 needs root)
#   APP_PORT                     8080                    where the Flask app listens (127.0.0.1)
#   REQUESTS                     300                     calls to `/` for the split
#   RULE_REQUESTS                20                      calls to each of `/to-instance`, `/to-function`
#   PYTHON                       python3                 runs the Flask app (needs `flask`)
set -euo pipefail

usage() { sed -n '/^# Usage:/,/^set -euo/p' "${BASH_SOURCE[0]}" | sed '$d; s/^# \{0,1\}//'; }

CHECK=0 KEEP=0 CLEANUP_ONLY=0
for arg in "$@"; do
  case "$arg" in
    --check) CHECK=1 ;;
    --keep) KEEP=1 ;;
    --cleanup) CLEANUP_ONLY=1 ;;
    -h | --help) usage; exit 0 ;;
    *) echo "run.sh: unknown argument: $arg" >&2; usage >&2; exit 2 ;;
  esac
done

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
TRELLIS_ENDPOINT=${TRELLIS_ENDPOINT:-http://127.0.0.1:9460}
TRELLIS_ENDPOINT=${TRELLIS_ENDPOINT%/}
TRELLIS_DATA_DIR=${TRELLIS_DATA_DIR:-./trellis-data}
TRELLIS_CA=${TRELLIS_CA:-$TRELLIS_DATA_DIR/ca.pem}
TRELLIS_DNS=${TRELLIS_DNS:-127.0.0.1:9453}
DNS_HOST=${TRELLIS_DNS%:*} DNS_HOST=${DNS_HOST#[} DNS_HOST=${DNS_HOST%]} DNS_PORT=${TRELLIS_DNS##*:}
export AWS_SHARED_CREDENTIALS_FILE=${AWS_SHARED_CREDENTIALS_FILE:-$TRELLIS_DATA_DIR/credentials}
export AWS_DEFAULT_REGION=${AWS_DEFAULT_REGION:-us-west-2} AWS_PAGER=""
LISTENER_PORT=${LISTENER_PORT:-8443}
APP_PORT=${APP_PORT:-8080}
REQUESTS=${REQUESTS:-300}
RULE_REQUESTS=${RULE_REQUESTS:-20}
PYTHON=${PYTHON:-python3}
PREFIX=walkthrough
# Any role ARN does: Trellis records a function's role and never assumes it.
ROLE=arn:aws:iam::111122223333:role/walkthrough-function-role
APPLY_TIMEOUT_S=30 HEALTHY_TIMEOUT_S=30 APP_START_TIMEOUT_S=15

say() { printf '%s\n' "$*"; }
step() { printf '\n== %s\n' "$*"; }
die() { printf 'run.sh: %s\n' "$*" >&2; exit 1; }

# Prints a command the way it could be typed (arguments with JSON or spaces in single quotes).
show() {
  local out="\$" arg
  for arg in "$@"; do
    if [[ "$arg" =~ ^[A-Za-z0-9_./:=@,+%-]+$ ]]; then out+=" $arg"; else out+=" '${arg//\'/\'\\\'\'}'"; fi
  done
  printf '%s\n' "$out"
}

# The AWS CLI against Trellis: every command is shown, then run with the endpoint override.
# (Shown on fd 3, the script's stdout, so that commands inside $(…) are shown too. fd 4 keeps
# its stderr, for the exit handler, which may run inside a command whose output is redirected.)
exec 3>&1 4>&2
lattice() { show aws vpc-lattice "$@" >&3; aws vpc-lattice --endpoint-url "$TRELLIS_ENDPOINT" "$@"; }
lambda() { show aws lambda "$@" >&3; aws lambda --endpoint-url "$TRELLIS_ENDPOINT" "$@"; }
# The same, unshown, for the bookkeeping calls (polls, cleanup).
quiet_lattice() { aws vpc-lattice --endpoint-url "$TRELLIS_ENDPOINT" "$@"; }
quiet_lambda() { aws lambda --endpoint-url "$TRELLIS_ENDPOINT" "$@"; }
ec2() { show aws ec2 "$@" >&3; aws ec2 --endpoint-url "$TRELLIS_ENDPOINT" "$@"; }
quiet_ec2() { aws ec2 --endpoint-url "$TRELLIS_ENDPOINT" "$@"; }

# ---------------------------------------------------------------------------------------------
# Preflight: the tools, the server, the credentials.

missing=()
for tool in aws curl dig "$PYTHON"; do command -v "$tool" >/dev/null 2>&1 || missing+=("$tool"); done
[ ${#missing[@]} -eq 0 ] || die "missing tools: ${missing[*]} (see the README's \"The launch walkthrough\")"
for n in REQUESTS RULE_REQUESTS LISTENER_PORT APP_PORT DNS_PORT; do
  [[ "${!n}" =~ ^[1-9][0-9]*$ ]] || die "$n must be a positive number, not '${!n}'"
done
curl -fsS -o /dev/null --max-time 5 "$TRELLIS_ENDPOINT/_trellis/revision" 2>/dev/null ||
  die "Trellis does not answer at $TRELLIS_ENDPOINT: start it first (\`cargo run --release -- serve\` in the repository root), or set TRELLIS_ENDPOINT"
if [ -z "${AWS_ACCESS_KEY_ID:-}" ] && [ ! -f "$AWS_SHARED_CREDENTIALS_FILE" ]; then
  die "no credentials: $AWS_SHARED_CREDENTIALS_FILE does not exist (run this from the directory Trellis was started in, or set TRELLIS_DATA_DIR or AWS_SHARED_CREDENTIALS_FILE)"
fi
[ "$CLEANUP_ONLY" = 1 ] || [ -f "$TRELLIS_CA" ] ||
  die "no Trellis CA at $TRELLIS_CA (set TRELLIS_DATA_DIR, or TRELLIS_CA to a file with what \`trellis ca\` prints)"

# ---------------------------------------------------------------------------------------------
# Deleting: what this run created (on exit), or every walkthrough-* leftover (--cleanup).

delete_network() { # id: its VPC associations, then the network
  local sn=$1 id
  for id in $(quiet_lattice list-service-network-vpc-associations --service-network-identifier "$sn" \
    --query 'items[].id' --output text); do
    quiet_lattice delete-service-network-vpc-association \
      --service-network-vpc-association-identifier "$id" >/dev/null
  done
  quiet_lattice delete-service-network --service-network-identifier "$sn" >/dev/null
}

delete_service() { # id: its associations, its listeners (with their rules), then the service
  local svc=$1 id
  for id in $(quiet_lattice list-service-network-service-associations --service-identifier "$svc" \
    --query 'items[].id' --output text); do
    quiet_lattice delete-service-network-service-association \
      --service-network-service-association-identifier "$id" >/dev/null
  done
  for id in $(quiet_lattice list-listeners --service-identifier "$svc" --query 'items[].id' --output text); do
    quiet_lattice delete-listener --service-identifier "$svc" --listener-identifier "$id" >/dev/null
  done
  quiet_lattice delete-service --service-identifier "$svc" >/dev/null
}

cleanup_leftovers() {
  local id name failed=0
  step "Deleting every $PREFIX-* resource and function left by earlier runs"
  for id in $(quiet_lattice list-services --query "items[?starts_with(name, '$PREFIX-')].id" --output text); do
    delete_service "$id" && say "deleted service $id" || failed=1
  done
  for id in $(quiet_lattice list-target-groups --query "items[?starts_with(name, '$PREFIX-')].id" --output text); do
    quiet_lattice delete-target-group --target-group-identifier "$id" >/dev/null && say "deleted target group $id" || failed=1
  done
  for id in $(quiet_lattice list-service-networks --query "items[?starts_with(name, '$PREFIX-')].id" --output text); do
    delete_network "$id" && say "deleted service network $id" || failed=1
  done
  for id in $(quiet_ec2 describe-vpcs --filters "Name=tag:Name,Values=$PREFIX-*" --query 'Vpcs[].VpcId' --output text); do
    quiet_ec2 delete-vpc --vpc-id "$id" && say "deleted VPC $id" || failed=1
  done
  for name in $(quiet_lambda list-functions --query "Functions[?starts_with(FunctionName, '$PREFIX-')].FunctionName" --output text); do
    quiet_lambda delete-function --function-name "$name" >/dev/null && say "deleted function $name" || failed=1
  done
  say "A Flask app left running by --keep is not stopped here: stop it with the kill command the --keep run printed."
  return $failed
}

if [ "$CLEANUP_ONLY" = 1 ]; then
  cleanup_leftovers
  exit
fi

RUN_ID=$(od -An -N4 -tx1 /dev/urandom | tr -d ' \n')
NAME=$PREFIX-$RUN_ID
# The client network: a loopback /24 of this run's own as the VPC curl calls from (127.0.0.1 is
# outside it, so runs kept side by side never overlap: two VPCs with one CIDR on one ingress
# address are refused as ambiguous).
CLIENT_NET=${CLIENT_NET:-127.$((16#${RUN_ID:0:2} % 254 + 1)).$((16#${RUN_ID:2:2})).0/24}
CLIENT_ADDRESS=${CLIENT_NET%.0/24}.1
WORK=$(mktemp -d "${TMPDIR:-/tmp}/trellis-walkthrough.XXXXXX")
APP_PID="" FUNCTION_NAME="" TG_INSTANCE="" TG_FUNCTION="" SERVICE="" NETWORK="" VPC=""

on_exit() {
  local rc=$?
  set +e
  exec 1>&3 2>&4
  if [ "$KEEP" = 1 ]; then
    step "Kept (--keep): delete with \`$0 --cleanup\`"
    say "service $NAME ${DNS_NAME:+(https://$DNS_NAME:$LISTENER_PORT)}, network $NAME-network,"
    say "target groups $NAME-instance and $NAME-function, function $FUNCTION_NAME, VPC $VPC"
    if [ -n "$APP_PID" ]; then
      say "the Flask app still runs on 127.0.0.1:$APP_PORT (log $WORK/flask.log): stop it with kill $APP_PID"
    else
      rm -rf "$WORK"
    fi
    exit "$rc"
  fi
  if [ -n "$SERVICE$TG_INSTANCE$TG_FUNCTION$NETWORK$FUNCTION_NAME$VPC" ]; then
    step "Deleting what this run created"
    [ -z "$SERVICE" ] || { delete_service "$SERVICE" && say "deleted service $NAME"; }
    [ -z "$TG_INSTANCE" ] || { quiet_lattice delete-target-group --target-group-identifier "$TG_INSTANCE" >/dev/null && say "deleted target group $NAME-instance"; }
    [ -z "$TG_FUNCTION" ] || { quiet_lattice delete-target-group --target-group-identifier "$TG_FUNCTION" >/dev/null && say "deleted target group $NAME-function"; }
    [ -z "$NETWORK" ] || { delete_network "$NETWORK" && say "deleted service network $NAME-network"; }
    [ -z "$VPC" ] || { quiet_ec2 delete-vpc --vpc-id "$VPC" && say "deleted VPC $VPC"; }
    [ -z "$FUNCTION_NAME" ] || { quiet_lambda delete-function --function-name "$FUNCTION_NAME" >/dev/null && say "deleted function $FUNCTION_NAME"; }
  fi
  if [ -n "$APP_PID" ]; then
    kill "$APP_PID" 2>/dev/null && wait "$APP_PID" 2>/dev/null
    say "stopped the Flask app"
  fi
  rm -rf "$WORK"
  exit "$rc"
}
trap on_exit EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

say "Trellis: API $TRELLIS_ENDPOINT, DNS $DNS_HOST:$DNS_PORT, CA $TRELLIS_CA"
say "Every aws command below runs with --endpoint-url $TRELLIS_ENDPOINT. This run's names: $NAME-*"

# ---------------------------------------------------------------------------------------------
step "1. The instance: the post's Flask app on 127.0.0.1:$APP_PORT"

app_answer() { curl -sS --max-time 2 "http://127.0.0.1:$APP_PORT/" 2>/dev/null || true; }
if [ "$(app_answer)" = "Hello from the instance" ]; then
  say "already running (left by an earlier --keep run): reusing it"
else
  "$PYTHON" -c 'import flask' 2>/dev/null ||
    die "Flask is not installed for $PYTHON: pip3 install -r $HERE/requirements.txt"
  show "HOST=127.0.0.1" "PORT=$APP_PORT" "$PYTHON" app.py
  # The post runs it with nohup so that it survives the terminal; --keep relies on that too.
  # (Its output goes to a file, and it does not hold fds 3 and 4: a caller reading this script's
  # output must not wait for an app that --keep leaves running.)
  (cd "$HERE" && HOST=127.0.0.1 PORT=$APP_PORT exec nohup "$PYTHON" app.py </dev/null >"$WORK/flask.log" 2>&1 3>&- 4>&-) &
  APP_PID=$!
  deadline=$((SECONDS + APP_START_TIMEOUT_S))
  until [ "$(app_answer)" = "Hello from the instance" ]; do
    if ! kill -0 "$APP_PID" 2>/dev/null; then
      APP_PID=""
      cat "$WORK/flask.log" >&2
      die "the Flask app exited (is port $APP_PORT taken? set APP_PORT)"
    fi
    [ $SECONDS -lt $deadline ] || { cat "$WORK/flask.log" >&2; die "the Flask app did not answer on port $APP_PORT in ${APP_START_TIMEOUT_S}s"; }
    sleep 0.2
  done
  say "pid $APP_PID answers: $(app_answer)"
fi

# ---------------------------------------------------------------------------------------------
step "2. The function: the post's Node.js handler, deployed with the Lambda API"

(cd "$HERE/function" && "$PYTHON" -m zipfile -c "$WORK/function.zip" index.js)
FUNCTION_ARN=$(lambda create-function --function-name "$NAME-function" --runtime nodejs20.x \
  --handler index.handler --role "$ROLE" --zip-file "fileb://$WORK/function.zip" \
  --query FunctionArn --output text)
FUNCTION_NAME=$NAME-function
say "created $FUNCTION_ARN"
lambda invoke --function-name "$FUNCTION_NAME" "$WORK/invoke.json" --query StatusCode --output text >/dev/null
say "a direct invocation returns: $(cat "$WORK/invoke.json")"

# ---------------------------------------------------------------------------------------------
step "3. Two target groups: the app (IP target 127.0.0.1:$APP_PORT) and the function (LAMBDA)"

# The client VPC, which curl (below) calls from ($CLIENT_ADDRESS).
VPC=$(ec2 create-vpc --cidr-block "$CLIENT_NET" \
  --tag-specifications "ResourceType=vpc,Tags=[{Key=Name,Value=$NAME}]" --query Vpc.VpcId --output text)
TG_INSTANCE=$(lattice create-target-group --name "$NAME-instance" --type IP \
  --config "{\"port\": $APP_PORT, \"protocol\": \"HTTP\", \"protocolVersion\": \"HTTP1\", \"vpcIdentifier\": \"$VPC\"}" \
  --query id --output text)
lattice register-targets --target-group-identifier "$TG_INSTANCE" \
  --targets "[{\"id\": \"127.0.0.1\", \"port\": $APP_PORT}]" >/dev/null
TG_FUNCTION=$(lattice create-target-group --name "$NAME-function" --type LAMBDA --query id --output text)
lattice register-targets --target-group-identifier "$TG_FUNCTION" --targets "[{\"id\": \"$FUNCTION_ARN\"}]" >/dev/null
say "instance group $TG_INSTANCE, function group $TG_FUNCTION"

# ---------------------------------------------------------------------------------------------
step "4. The service: an HTTPS listener on port $LISTENER_PORT, default 20/10, rules 10 and 20"

read -r SERVICE DNS_NAME < <(lattice create-service --name "$NAME" --query '[id, dnsEntry.domainName]' --output text)
LISTENER=$(lattice create-listener --service-identifier "$SERVICE" --name "https-$LISTENER_PORT" \
  --protocol HTTPS --port "$LISTENER_PORT" \
  --default-action "{\"forward\": {\"targetGroups\": [{\"targetGroupIdentifier\": \"$TG_INSTANCE\", \"weight\": 20}, {\"targetGroupIdentifier\": \"$TG_FUNCTION\", \"weight\": 10}]}}" \
  --query id --output text)
lattice create-rule --service-identifier "$SERVICE" --listener-identifier "$LISTENER" \
  --name to-instance --priority 10 \
  --match '{"httpMatch": {"pathMatch": {"match": {"prefix": "/to-instance"}}}}' \
  --action "{\"forward\": {\"targetGroups\": [{\"targetGroupIdentifier\": \"$TG_INSTANCE\"}]}}" >/dev/null
lattice create-rule --service-identifier "$SERVICE" --listener-identifier "$LISTENER" \
  --name to-function --priority 20 \
  --match '{"httpMatch": {"pathMatch": {"match": {"prefix": "/to-function"}}}}' \
  --action "{\"forward\": {\"targetGroups\": [{\"targetGroupIdentifier\": \"$TG_FUNCTION\"}]}}" >/dev/null
say "service $SERVICE, listener $LISTENER"

# ---------------------------------------------------------------------------------------------
step "5. A service network with the service and the VPC associated"

NETWORK=$(lattice create-service-network --name "$NAME-network" --query id --output text)
lattice create-service-network-service-association --service-network-identifier "$NETWORK" \
  --service-identifier "$SERVICE" --query status --output text >/dev/null
# The post associates the instance's VPC with the service network: only clients in it get in.
lattice create-service-network-vpc-association --service-network-identifier "$NETWORK" \
  --vpc-identifier "$VPC" --query status --output text >/dev/null
say "service network $NETWORK; the service's domain name: $DNS_NAME"

# ---------------------------------------------------------------------------------------------
step "6. Waiting for the data plane to apply the configuration"

# GET /_trellis/revision: {"store": N, "applied": M}; wait for applied >= the store's N.
revision() {
  local r
  r=$(curl -fsS --max-time 5 "$TRELLIS_ENDPOINT/_trellis/revision" |
    "$PYTHON" -c 'import json, sys; r = json.load(sys.stdin); print(r["store"], r["applied"])') ||
    die "cannot read $TRELLIS_ENDPOINT/_trellis/revision"
  read -r STORE APPLIED <<<"$r"
}
revision
STORE_REVISION=$STORE
deadline=$((SECONDS + APPLY_TIMEOUT_S))
while [ "$APPLIED" -lt "$STORE_REVISION" ]; do
  [ $SECONDS -lt $deadline ] || die "the data plane did not apply revision $STORE_REVISION in ${APPLY_TIMEOUT_S}s (applied: $APPLIED)"
  sleep 0.1
  revision
done
say "applied revision $APPLIED (store revision $STORE_REVISION)"
failed=$(curl -sS --max-time 5 "$TRELLIS_ENDPOINT/_trellis/health" | "$PYTHON" -c '
import json, sys
port = int(sys.argv[1])
print("; ".join(p["error"] for p in json.load(sys.stdin).get("failedPorts", []) if p["port"] == port))' "$LISTENER_PORT")
[ -z "$failed" ] || die "Trellis cannot listen on port $LISTENER_PORT ($failed): choose another LISTENER_PORT"

# The post's console shows the instance target healthy after its first health check; Trellis
# routes to a group whose targets are all still INITIAL anyway (fail open), so this only waits
# to show the status.
deadline=$((SECONDS + HEALTHY_TIMEOUT_S))
until status=$(quiet_lattice list-targets --target-group-identifier "$TG_INSTANCE" --query 'items[0].status' --output text) &&
  [ "$status" = HEALTHY ] || [ $SECONDS -ge $deadline ]; do
  sleep 0.5
done
say "instance target 127.0.0.1:$APP_PORT: $status; function target: $(quiet_lattice list-targets \
  --target-group-identifier "$TG_FUNCTION" --query 'items[0].status' --output text)"

# ---------------------------------------------------------------------------------------------
step "7. Calling the service by its generated name"

# Asked from the client VPC's address: Trellis's DNS answers a VPC's clients the names of its
# service network's services, and nobody else.
show dig -b "$CLIENT_ADDRESS" "@$DNS_HOST" -p "$DNS_PORT" "$DNS_NAME" +short
ADDRESS=$(dig -b "$CLIENT_ADDRESS" "@$DNS_HOST" -p "$DNS_PORT" "$DNS_NAME" A +short +time=2 +tries=3 | grep -E '^[0-9.]+$' | head -n1 || true)
[ -n "$ADDRESS" ] || die "Trellis's DNS at $DNS_HOST:$DNS_PORT did not resolve $DNS_NAME"
say "$ADDRESS"

BASE=https://$DNS_NAME:$LISTENER_PORT
CURL=(curl -sS --max-time 10 --interface "$CLIENT_ADDRESS" --cacert "$TRELLIS_CA" --resolve "$DNS_NAME:$LISTENER_PORT:$ADDRESS")

# call PATH: sets STATUS, BODY and SIDE (instance, function or other) for one request.
call() {
  local out
  if out=$("${CURL[@]}" -w '\n%{http_code}' "$BASE$1" 2>&1); then
    STATUS=${out##*$'\n'} BODY=${out%$'\n'*}
  else
    STATUS=000 BODY=$out
  fi
  case "$STATUS:$BODY" in
    200:*"Hello from the instance"*) SIDE=instance ;;
    200:*"Hello from the function"*) SIDE=function ;;
    *) SIDE=other ;;
  esac
}

show "${CURL[@]}" "$BASE/"
call /
say "$BODY"

say ""
say "Calling it $REQUESTS times..."
N_INSTANCE=0 N_FUNCTION=0 N_OTHER=0
ERRORS=()
for ((i = 0; i < REQUESTS; i++)); do
  call /
  case $SIDE in
    instance) N_INSTANCE=$((N_INSTANCE + 1)) ;;
    function) N_FUNCTION=$((N_FUNCTION + 1)) ;;
    *) N_OTHER=$((N_OTHER + 1)) ;;
  esac
  if [ "$SIDE" = other ] && [ ${#ERRORS[@]} -lt 3 ]; then
    answer="HTTP $STATUS: ${BODY:0:300}" seen=0
    for e in ${ERRORS[@]+"${ERRORS[@]}"}; do [ "$e" != "$answer" ] || seen=1; done
    [ $seen = 1 ] || ERRORS+=("$answer")
  fi
done
pct() { awk -v a="$1" -v n="$REQUESTS" 'BEGIN { printf "%.1f%%", 100 * a / n }'; }
say "split over $REQUESTS requests to / (default action, weights 20/10):"
printf '  instance  %5d  %6s\n' "$N_INSTANCE" "$(pct "$N_INSTANCE")"
printf '  function  %5d  %6s\n' "$N_FUNCTION" "$(pct "$N_FUNCTION")"
[ "$N_OTHER" = 0 ] || printf '  errors    %5d  %6s\n' "$N_OTHER" "$(pct "$N_OTHER")"

FAILURES=()
if [ "$N_OTHER" != 0 ]; then
  FAILURES+=("$N_OTHER of $REQUESTS calls to / answered from neither side, with:")
  FAILURES+=("${ERRORS[@]/#/    }")
fi

say ""
for rule in to-instance:instance to-function:function; do
  path=/${rule%%:*} want=${rule##*:} right=0 first="" wrong=""
  for ((i = 0; i < RULE_REQUESTS; i++)); do
    call "$path"
    [ -n "$first" ] || first=$BODY
    if [ "$SIDE" = "$want" ]; then
      right=$((right + 1))
    elif [ -z "$wrong" ]; then
      if [ "$SIDE" = other ]; then wrong="from neither side"; else wrong="from the $SIDE"; fi
      wrong+=" (HTTP $STATUS): ${BODY:0:300}"
    fi
  done
  printf '%-13s -> %s   (%d of %d from the %s)\n' "$path" "$first" "$right" "$RULE_REQUESTS" "$want"
  [ "$right" = "$RULE_REQUESTS" ] ||
    FAILURES+=("$path: $((RULE_REQUESTS - right)) of $RULE_REQUESTS answers not from the $want; the first $wrong")
done

if [ "$CHECK" = 1 ]; then
  read -r LOW HIGH < <(awk -v n="$REQUESTS" 'BEGIN {
    p = 2 / 3; m = n * p; s = sqrt(n * p * (1 - p)); lo = m - 5 * s; hi = m + 5 * s
    lo = (lo == int(lo)) ? lo : int(lo) + 1; if (lo < 0) lo = 0; if (hi > n) hi = n
    printf "%d %d\n", lo, int(hi) }')
  if [ "$N_INSTANCE" -ge "$LOW" ] && [ "$N_INSTANCE" -le "$HIGH" ]; then
    say ""
    say "check: $N_INSTANCE from the instance is within [$LOW, $HIGH] (2/3 of $REQUESTS, 5 standard deviations): OK"
  else
    FAILURES+=("check: $N_INSTANCE from the instance is outside [$LOW, $HIGH] (2/3 of $REQUESTS, 5 standard deviations)")
  fi
fi

if [ ${#FAILURES[@]} -gt 0 ]; then
  say ""
  printf 'FAILED: %s\n' "${FAILURES[0]}"
  [ ${#FAILURES[@]} -eq 1 ] || printf '        %s\n' "${FAILURES[@]:1}"
  say "(the function's own output: trellis logs function $FUNCTION_NAME --data-dir $TRELLIS_DATA_DIR)"
  exit 1
fi
say ""
say "OK: about two thirds from the instance, one third from the function; /to-instance and /to-function always from the right one."
