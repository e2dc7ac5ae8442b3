#!/usr/bin/env bash
# The legal desk on the built-in sample data: builds the demo store (sample/demo.sh), adds
# two desk users, prints the address and a login, then serves until Ctrl-C.
#
#   EVIDENCE       the evidence command (default: evidence)
#   EVIDENCE_HOME  the demo's store (default: demo-home in the repository root); wiped first
#   HOST, PORT     where to listen (default 127.0.0.1:8080)
#
#   EVIDENCE=.venv/bin/evidence bash sample/serve.sh     (what `make serve` runs)
set -euo pipefail

repo_root=$(cd -- "$(dirname -- "${BASH_SOURCE[0]}")/.." && pwd -P)
evidence_cmd=${EVIDENCE:-evidence}
[[ $evidence_cmd == */* && $evidence_cmd != /* ]] && evidence_cmd=$PWD/$evidence_cmd
export EVIDENCE_HOME=${EVIDENCE_HOME:-$repo_root/demo-home}
[[ $EVIDENCE_HOME == /* ]] || EVIDENCE_HOME=$PWD/$EVIDENCE_HOME
host=${HOST:-127.0.0.1}
port=${PORT:-8080}

echo "building the sample store in $EVIDENCE_HOME (sample/demo.sh)..."
demo_log=$(mktemp)
EVIDENCE=$evidence_cmd OUTPUT=$EVIDENCE_HOME/sample-dossier.pdf bash "$repo_root/sample/demo.sh" \
    >"$demo_log" 2>&1 || { cat "$demo_log" >&2; rm -f "$demo_log"; exit 1; }
rm -f "$demo_log"
unset EVIDENCE_DATABASE_URL
export EVIDENCE_TIMEZONE=Europe/Helsinki

password=sample-desk-$(od -An -N4 -tx4 /dev/urandom | tr -d ' ')
printf '%s\n' "$password" | "$evidence_cmd" user add laura --role legal --lang en --password-stdin
printf '%s\n' "$password" | "$evidence_cmd" user add ville --role viewer --lang fi --password-stdin

cat <<TEXT

The legal desk on the sample data (store in $EVIDENCE_HOME):

    address:  http://$host:$port/
    login:    laura / $password   (legal; ville / the same password is a viewer)

Stop with Ctrl-C.
TEXT
exec "$evidence_cmd" serve --host "$host" --port "$port"
